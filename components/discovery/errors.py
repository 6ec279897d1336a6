"""Errors of the discovery stage and of the checkpoints it hands on.

``CheckpointError`` and its subclasses are about one checkpoint: the message names it (its prefix URI)
and the cause, so a failed task says which checkpoint to look at and why. They are raised wherever the
checkpoint is first touched in the way that fails — discovery for what a listing shows, the lease for
what vanishes, evaluation for what only reading the index reveals.
"""

from __future__ import annotations

from components.errors import ExportflowError, RetryableError


class DiscoveryError(ExportflowError):
    """Checkpoints could not be discovered."""


class ModelDirError(DiscoveryError):
    """The model directory is missing, empty or unreadable."""


class CheckpointError(DiscoveryError):
    """One checkpoint cannot be used; the message names it and says why."""


class IncompleteCheckpoint(CheckpointError):
    """The index or a data shard named by the shard count is missing (or empty)."""


class CorruptCheckpoint(CheckpointError):
    """The index is damaged, or a shard is shorter than the index says (truncated)."""


class CheckpointUnreadable(CheckpointError):
    """A checkpoint file exists but cannot be read (permissions, a folder where a file should be)."""


class CheckpointVanished(RetryableError, CheckpointError):
    """A checkpoint disappeared (trainer retention) before it could be pinned; a new run picks the next."""


class LeaseError(DiscoveryError):
    """A checkpoint could not be pinned or released for a reason other than it vanishing."""
