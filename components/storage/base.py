"""The Storage protocol: the few verbs exportflow needs from a blob store or a filesystem.

URIs are plain strings: a local absolute path, or ``scheme://bucket/key``. Every back-end reports
sizes and CRC32C (base64, as GCS does) so checksums can be compared across back-ends.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Iterator
from typing import Protocol, runtime_checkable


@dataclasses.dataclass(frozen=True)
class ObjectInfo:
    """A stored object: its full URI, size, CRC32C (when the back-end knows it cheaply) and generation."""

    uri: str
    size: int
    crc32c: str | None = None
    generation: int | None = None


@runtime_checkable
class Storage(Protocol):
    """What a back-end implements. Implementations wrap their own exceptions in ``StorageError``."""

    def join(self, base: str, *parts: str) -> str: ...

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object below ``prefix`` (a folder-like prefix), recursively."""
        ...

    def list_names(self, prefix: str) -> list[str]:
        """Immediate children names below ``prefix`` (files and folders), without recursion."""
        ...

    def stat(self, uri: str) -> ObjectInfo | None: ...

    def checksum(self, uri: str) -> str:
        """CRC32C of the object, base64 big-endian."""
        ...

    def read_bytes(self, uri: str) -> bytes: ...

    def read_versioned(self, uri: str) -> tuple[bytes, int] | None:
        """Content and generation, or None when absent (for compare-and-swap updates)."""
        ...

    def write_bytes(self, uri: str, data: bytes, *, if_generation_match: int | None = None) -> None:
        """Write atomically; ``if_generation_match=0`` creates only if absent."""
        ...

    def upload_file(self, local_path: str, uri: str, *, if_generation_match: int | None = None) -> None: ...

    def download_file(self, uri: str, local_path: str) -> None: ...

    def copy(self, src_uri: str, dst_uri: str) -> None:
        """Copy within the back-end (server-side on GCS, hard link or copy on local disk)."""
        ...

    def delete(self, uri: str) -> None: ...

    def delete_prefix(self, prefix: str) -> int: ...


def crc32c_of_bytes(data: bytes) -> str:
    import google_crc32c

    return base64.b64encode(google_crc32c.value(data).to_bytes(4, "big")).decode("ascii")


def crc32c_of_file(path: str, chunk_size: int = 8 * 1024 * 1024) -> str:
    import google_crc32c

    checksum = google_crc32c.Checksum()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            checksum.update(chunk)
    return base64.b64encode(checksum.digest()).decode("ascii")
