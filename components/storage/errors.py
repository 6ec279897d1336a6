"""Errors of the storage layer: one family, wrapping the back-ends' own exceptions once."""

from __future__ import annotations

from components.errors import ExportflowError, RetryableError


class StorageError(ExportflowError):
    """A storage operation failed."""


class ObjectNotFound(StorageError, FileNotFoundError):
    """The object or file does not exist."""


class PreconditionFailed(StorageError):
    """A conditional write lost: someone else created or changed the object first."""


class TransientStorageError(RetryableError, StorageError):
    """A storage call failed in a way a retry may fix (network, 5xx, throttling)."""


class UnsupportedScheme(StorageError, ValueError):
    """No storage back-end is registered for a URI's scheme."""
