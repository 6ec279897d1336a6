"""Errors of the staging hand-over."""

from __future__ import annotations

from components.errors import ExportflowError, RetryableError


class StagingError(ExportflowError):
    """A staged version could not be written, read or removed."""


class StagingUnavailable(StagingError, RetryableError):
    """The staging store failed transiently, or another worker holds the version: a retry may succeed."""


class StagedVersionMissing(StagingError, RetryableError):
    """The version is not (or no longer) staged: rerun its export."""


class StagedVersionCorrupt(StagingError):
    """A staged object differs from what was staged (size or CRC32C)."""
