"""Errors of the export stage."""

from __future__ import annotations

from components.errors import ExportflowError


class ExportError(ExportflowError):
    """An export failed; nothing partial is left in the staging folder."""


class VerificationError(ExportError):
    """An exported SavedModel does not load under one of its tags."""


class UnknownStrategyError(ExportError, ValueError):
    """A config names a strategy kind that is not registered."""
