"""Storage back-ends chosen by URI scheme: local disk by default, GCS for ``gs://``."""

from __future__ import annotations

from components.storage.base import (
    CredentialsSource,
    ObjectInfo,
    ProgressCallback,
    Storage,
    StorageOptions,
    crc32c_of_bytes,
    crc32c_of_file,
)
from components.storage.errors import (
    BucketNotFound,
    InvalidStorageOptions,
    InvalidURI,
    ObjectNotFound,
    PreconditionFailed,
    StorageError,
    StorageFull,
    TransientStorageError,
    UnsupportedScheme,
    UploadChecksumMismatch,
    UploadSessionLost,
)
from components.storage.registry import scheme_of, storage_for

__all__ = [
    "BucketNotFound",
    "CredentialsSource",
    "InvalidStorageOptions",
    "InvalidURI",
    "ObjectInfo",
    "ObjectNotFound",
    "PreconditionFailed",
    "ProgressCallback",
    "Storage",
    "StorageError",
    "StorageFull",
    "StorageOptions",
    "TransientStorageError",
    "UnsupportedScheme",
    "UploadChecksumMismatch",
    "UploadSessionLost",
    "crc32c_of_bytes",
    "crc32c_of_file",
    "scheme_of",
    "storage_for",
]
