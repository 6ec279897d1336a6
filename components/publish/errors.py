"""Errors of the publish stage: each names what is wrong and what is (not) left at the destination."""

from __future__ import annotations

from components.errors import ExportflowError, RetryableError


class PublishError(ExportflowError):
    """A version could not be published; serving hosts never see it partially."""


class DestinationError(PublishError, ValueError):
    """The destination URI is malformed, or a version would land outside the configured destination."""


class DestinationNotFound(DestinationError):
    """The destination bucket does not exist (or cannot be seen with these credentials)."""


class DestinationFull(PublishError):
    """The destination ran out of room (disk full, quota, file-size limit)."""


class ExportIncomplete(PublishError):
    """The export folder lacks a file its SavedModel or manifest needs, or a file changed since."""


class ChecksumMismatch(PublishError):
    """A copied file does not match the export's manifest."""


class VersionConflict(PublishError):
    """The destination already holds a loadable version of that number with different content."""


class PublishInProgress(RetryableError, PublishError):
    """Another run holds the version's lock (publishing or removing it); retry later."""


class TransferFailed(RetryableError, PublishError):
    """Transfers kept failing on transient errors after every retry; a rerun resumes where this stopped."""
