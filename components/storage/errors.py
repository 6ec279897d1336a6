"""Errors of the storage layer: one family, wrapping the back-ends' own exceptions once."""

from __future__ import annotations

from components.errors import ExportflowError, RetryableError


class StorageError(ExportflowError):
    """A storage operation failed."""


class ObjectNotFound(StorageError, FileNotFoundError):
    """The object or file does not exist."""


class BucketNotFound(ObjectNotFound):
    """The bucket (or the local folder a write needs) does not exist."""


class PreconditionFailed(StorageError):
    """A conditional write lost: someone else created or changed the object first."""


class TransientStorageError(RetryableError, StorageError):
    """A storage call failed in a way a retry may fix (network, 5xx, throttling)."""


class UploadChecksumMismatch(StorageError):
    """The stored or sent bytes do not match the CRC32C the caller expected; nothing was stored."""


class UploadSessionLost(TransientStorageError):
    """A resumable upload session expired or fell out of step with the server; start the upload over."""


class StorageFull(StorageError):
    """The destination has no room: disk full, quota exceeded, or a file size limit (ENOSPC, EDQUOT, EFBIG)."""


class InvalidURI(StorageError, ValueError):
    """A URI is malformed for its scheme (e.g. ``gs://`` without a bucket)."""


class InvalidStorageOptions(StorageError, ValueError):
    """Storage options are out of range (e.g. a chunk size that is not a multiple of 256 KiB)."""


class UnsupportedScheme(StorageError, ValueError):
    """No storage back-end is registered for a URI's scheme."""
