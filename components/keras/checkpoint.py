"""A Keras checkpoint file on this worker's disk: the lease's copy, else the original, downloaded if remote."""

from __future__ import annotations

import dataclasses
import logging
import os

from components.artifacts import CheckpointArtifact
from components.discovery import lease
from components.discovery.errors import CheckpointError, CheckpointVanished
from components.storage import StorageError, storage_for

log = logging.getLogger(__name__)


def local_checkpoint_file(checkpoint: CheckpointArtifact, scratch_dir: str) -> str:
    """A local path of the checkpoint's one file (the pinned copy when it is still there)."""
    readable = checkpoint.readable_prefix
    storage = storage_for(readable)
    try:
        if checkpoint.pinned_uri and storage.stat(readable) is None:
            if storage_for(checkpoint.uri).stat(checkpoint.uri) is None:
                raise CheckpointVanished(
                    f"{checkpoint.label}: both its lease {checkpoint.pinned_uri} and the original are gone "
                    "(lease expired: raise discovery.lease_ttl_hours?)"
                )
            log.warning("%s: its lease %s is gone; reading the original", checkpoint.label, checkpoint.pinned_uri)
            checkpoint = dataclasses.replace(checkpoint, pinned_uri=None)
        os.makedirs(scratch_dir, exist_ok=True)
        return lease.local_prefix(checkpoint, scratch_dir)
    except StorageError as exc:
        raise CheckpointError(f"{checkpoint.label}: cannot read it: {exc}") from exc
