"""A Keras checkpoint file on this worker's disk: the lease's copy, else the original.

On local disk the file is read where it is. On an object store it is fetched through the worker's
scratch cache (``components.staging.cache``): downloaded once per worker into a temporary name, checked
against the CRC32C and size the store reports, then renamed, so a failed or corrupted download leaves
nothing under the cache's name; ``folder`` gets a hard link to it, and the caller removes ``folder``.
"""

from __future__ import annotations

import dataclasses
import logging
import os

from components.artifacts import CheckpointArtifact
from components.discovery.errors import CheckpointUnreadable, CheckpointVanished
from components.discovery.single_files import single_file_objects
from components.keras.errors import CheckpointFetchFailed
from components.staging.cache import ScratchCache
from components.staging.errors import StagedVersionCorrupt
from components.storage import StorageError, TransientStorageError, scheme_of, storage_for

log = logging.getLogger(__name__)


def local_checkpoint_file(checkpoint: CheckpointArtifact, folder: str, cache: ScratchCache) -> str:
    """A local path of the checkpoint's one file (the pinned copy when it is still there)."""
    readable = checkpoint.readable_prefix
    storage = storage_for(readable)
    try:
        objects = single_file_objects(storage, checkpoint)
        if checkpoint.pinned_uri and not objects:
            checkpoint = dataclasses.replace(checkpoint, pinned_uri=None)
            objects = single_file_objects(storage_for(checkpoint.uri), checkpoint)
            if not objects:
                raise CheckpointVanished(
                    f"{checkpoint.label}: both its lease {readable} and the original are gone "
                    "(lease expired: raise discovery.lease_ttl_hours?)"
                )
            log.warning("%s: its lease %s is gone; reading the original", checkpoint.label, readable)
        elif not objects:
            raise CheckpointVanished(f"{checkpoint.label}: the file is gone (the trainer's retention removed it?)")
        if scheme_of(checkpoint.readable_prefix) == "file":
            return checkpoint.readable_prefix
        name = checkpoint.readable_prefix.rstrip("/").rpartition("/")[2]
        os.makedirs(folder, exist_ok=True)
        cache.materialize(storage_for(checkpoint.readable_prefix), {name: objects[0]}, folder)
        return os.path.join(folder, name)
    except (TransientStorageError, StagedVersionCorrupt) as exc:
        raise CheckpointFetchFailed(f"{checkpoint.label}: fetching {checkpoint.readable_prefix} failed: {exc}") from exc
    except StorageError as exc:
        raise CheckpointUnreadable(f"{checkpoint.label}: cannot fetch {checkpoint.readable_prefix}: {exc}") from exc
