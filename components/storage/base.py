"""The Storage protocol: the few verbs exportflow needs from a blob store or a filesystem.

URIs are plain strings: a local absolute path, or ``scheme://bucket/key``. Every back-end reports
sizes and CRC32C (base64, as GCS does) so checksums can be compared across back-ends.

Writes take ``if_generation_match``: ``0`` creates only if absent, a generation replaces only that
generation (compare-and-swap). Callers that always send one can retry a write safely, which is why
the GCS back-end passes the SDK's retry policy on them.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, runtime_checkable

MiB = 1024 * 1024
UPLOAD_CHUNK_QUANTUM = 256 * 1024  # resumable upload chunks must be multiples of this

# Called with the number of bytes newly sent since the previous call (never negative).
ProgressCallback = Callable[[int], None]


@dataclasses.dataclass(frozen=True)
class ObjectInfo:
    """A stored object: its full URI, size, CRC32C (when the back-end knows it cheaply) and generation."""

    uri: str
    size: int
    crc32c: str | None = None
    generation: int | None = None


@runtime_checkable
class CredentialsSource(Protocol):
    """Google credentials that come from outside the config, e.g. an Airflow connection.

    The orchestrator supplies one (``plugins/credentials.py``); ``components/model_storage.py`` puts it
    into ``StorageOptions``. Implementations are hashable (clients are cached per source) and resolve the
    credentials only when a client is first built.
    """

    def describe(self) -> str:
        """Where the credentials come from, safe to log: never key material."""
        ...

    def google_credentials(self) -> Any:
        """A ``google.auth.credentials.Credentials`` for a GCS client."""
        ...


@dataclasses.dataclass(frozen=True)
class StorageOptions:
    """How a back-end talks to its store. Hashable: back-ends are cached per (scheme, options).

    Credentials for GCS, first that applies: ``credentials_path`` (a service-account key file; anonymous
    instead when ``STORAGE_EMULATOR_HOST`` points at an emulator), ``credentials`` (a source such as an
    Airflow connection; used as given, with an emulator too), then Application Default Credentials
    (anonymous with an emulator). Key contents are never logged nor put into an error message.
    """

    project: str | None = None
    credentials_path: str | None = None
    credentials: CredentialsSource | None = None
    connect_timeout: float = 10.0  # seconds to open a connection
    timeout: float = 120.0  # seconds to wait for any one response (or to push one chunk)
    retry_deadline: float = 300.0  # seconds one call keeps retrying transient errors
    retry_initial_delay: float = 1.0  # first back-off, doubling up to 60 s
    chunk_size: int = 32 * MiB  # resumable upload chunk; files above 8 MiB upload in chunks
    pool_size: int = 16  # HTTP connections kept per host (>= the transfer parallelism)
    # Local files: flush each upload to disk before it counts as written, so a machine crash cannot
    # leave a loadable version with empty files. GCS acknowledges only durable writes, so it ignores this.
    durable: bool = True

    def __post_init__(self) -> None:
        from components.storage.errors import InvalidStorageOptions

        if self.chunk_size <= 0 or self.chunk_size % UPLOAD_CHUNK_QUANTUM:
            raise InvalidStorageOptions(
                f"chunk_size {self.chunk_size} must be a positive multiple of 256 KiB ({UPLOAD_CHUNK_QUANTUM})"
            )
        for name in ("connect_timeout", "timeout", "retry_deadline", "retry_initial_delay"):
            if getattr(self, name) <= 0:
                raise InvalidStorageOptions(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.pool_size <= 0:
            raise InvalidStorageOptions(f"pool_size must be positive, got {self.pool_size!r}")


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

    def list_files(self, prefix: str) -> list[ObjectInfo]:
        """The files (objects) immediately below ``prefix`` with their sizes, folders left out, in one
        listing: no per-file stat on GCS (sizes come in the list response)."""
        ...

    def stat(self, uri: str) -> ObjectInfo | None: ...

    def checksum(self, uri: str) -> str:
        """CRC32C of the object, base64 big-endian."""
        ...

    def read_bytes(self, uri: str) -> bytes: ...

    def read_range(self, uri: str, start: int, length: int) -> bytes:
        """``length`` bytes from ``start`` (fewer at the end of the object): one ranged GET on GCS, so a
        header or trailer is judged without downloading the object."""
        ...

    def read_versioned(self, uri: str) -> tuple[bytes, int] | None:
        """Content and generation, or None when absent (for compare-and-swap updates)."""
        ...

    def write_bytes(self, uri: str, data: bytes, *, if_generation_match: int | None = None) -> ObjectInfo:
        """Write atomically; ``if_generation_match=0`` creates only if absent."""
        ...

    def upload_file(
        self,
        local_path: str,
        uri: str,
        *,
        if_generation_match: int | None = None,
        crc32c: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> ObjectInfo:
        """Upload a local file. With ``crc32c`` the store rejects content that does not match it.

        Returns the stored object with the CRC32C the store computed (or this process, for local disk).
        Durable only after ``sync``.
        """
        ...

    def download_file(self, uri: str, local_path: str) -> None: ...

    def sync(self, uris: Iterable[str]) -> None:
        """Make these objects durable. Uploads and copies may return before their bytes are on stable
        storage (local disk: not fsynced, so many files share one flush); ``write_bytes`` is durable."""
        ...

    def copy(self, src_uri: str, dst_uri: str, *, if_generation_match: int | None = None) -> ObjectInfo:
        """Copy within the back-end: server-side on GCS (no bytes through this process); on local disk a
        hard link when on the same filesystem (then ``crc32c`` is None: the bytes are the source's), else
        a copy."""
        ...

    def delete(self, uri: str, *, if_generation_match: int | None = None) -> None:
        """Delete; absent is fine. With a generation, only that generation is deleted."""
        ...

    def delete_prefix(self, prefix: str) -> int: ...


def crc32c_of_bytes(data: bytes) -> str:
    import google_crc32c

    return base64.b64encode(google_crc32c.value(data).to_bytes(4, "big")).decode("ascii")


def crc32c_of_file(path: str, chunk_size: int = 1024 * 1024) -> str:
    import google_crc32c

    checksum = google_crc32c.Checksum()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            checksum.update(chunk)
    return base64.b64encode(checksum.digest()).decode("ascii")
