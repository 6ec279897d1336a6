"""Errors of the warmup stage."""

from __future__ import annotations

from components.errors import ExportflowError


class WarmupError(ExportflowError):
    """Warmup requests could not be built, or do not fit the exported model."""
