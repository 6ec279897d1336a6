"""Errors of the publish stage."""

from __future__ import annotations

from components.errors import ExportflowError


class PublishError(ExportflowError):
    """A version could not be published; serving hosts never see it partially."""


class DestinationError(PublishError, ValueError):
    """The destination URI is malformed, unreachable, or outside the configured destination."""


class ChecksumMismatch(PublishError):
    """A copied file does not match the export's manifest."""
