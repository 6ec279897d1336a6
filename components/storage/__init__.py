"""Storage back-ends chosen by URI scheme: local disk by default, GCS for ``gs://``."""

from __future__ import annotations

from components.storage.base import ObjectInfo, Storage, crc32c_of_bytes, crc32c_of_file
from components.storage.errors import ObjectNotFound, PreconditionFailed, StorageError, UnsupportedScheme
from components.storage.registry import storage_for

__all__ = [
    "ObjectInfo",
    "ObjectNotFound",
    "PreconditionFailed",
    "Storage",
    "StorageError",
    "UnsupportedScheme",
    "crc32c_of_bytes",
    "crc32c_of_file",
    "storage_for",
]
