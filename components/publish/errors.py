"""Errors of the publish stage: each names what is wrong and what is (not) left at the destination."""

from __future__ import annotations

from components.errors import RetryableError

# The transfer machinery's errors (components/transfer/errors.py) are this family's base and three of its
# members; they are the same classes, so ``except PublishError`` catches them all.
from components.transfer.errors import ChecksumMismatch, ExportIncomplete, PublishError, PublishInProgress

__all__ = [
    "ChecksumMismatch",
    "DestinationError",
    "DestinationFull",
    "DestinationNotFound",
    "ExportIncomplete",
    "PublishError",
    "PublishInProgress",
    "TransferFailed",
    "VersionConflict",
]


class DestinationError(PublishError, ValueError):
    """The destination URI is malformed, or a version would land outside the configured destination."""


class DestinationNotFound(DestinationError):
    """The destination bucket does not exist (or cannot be seen with these credentials)."""


class DestinationFull(PublishError):
    """The destination ran out of room (disk full, quota, file-size limit)."""


class VersionConflict(PublishError):
    """The destination already holds a loadable version of that number with different content."""


class TransferFailed(RetryableError, PublishError):
    """Transfers kept failing on transient errors after every retry; a rerun resumes where this stopped."""
