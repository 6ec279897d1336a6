"""Errors of the discovery stage."""

from __future__ import annotations

from components.errors import ExportflowError, RetryableError


class DiscoveryError(ExportflowError):
    """Checkpoints could not be discovered."""


class ModelDirError(DiscoveryError):
    """The model directory is missing, empty or unreadable."""


class CheckpointVanished(RetryableError, DiscoveryError):
    """A checkpoint disappeared (trainer retention) before it could be pinned; a new run picks the next."""
