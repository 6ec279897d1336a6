"""Leases: pin a checkpoint for the duration of a run so the trainer's retention cannot delete it.

TensorFlow's ``keep_checkpoint_max`` deletes old checkpoints by name while exportflow may still be
evaluating or exporting them. A lease keeps a second name for every file of the checkpoint:

* local disk: a hard link (O(1), no bytes copied; the data survives the trainer's delete);
* GCS: a server-side copy (rewrite; no bytes pass through this worker).

Layout, under the lease root (``discovery.lease_dir``, default ``<model_dir>/.exportflow-leases``,
on the model's own filesystem or bucket so links and rewrites stay cheap)::

    <root>/<prefix>.<created unix seconds>.<random>/
        model.ckpt-300.index
        model.ckpt-300.data-00000-of-00001
        hold.<strategy>            # one empty marker per strategy that still needs the checkpoint

TensorFlow never looks into that folder: it deletes ``<prefix>.*`` files of the model dir only, and
discovery lists files, not folders. A lease is released when its last hold goes (each strategy's
publish releases its own, so parallel strategies never pull the checkpoint from under each other), or
at once when evaluation does not bless the checkpoint. Leases older than ``discovery.lease_ttl_hours``
are stale (a run that died, a strategy that declined) and are removed by the next discovery.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import secrets
import time
from collections.abc import Iterable, Sequence

from components.artifacts import CheckpointArtifact
from components.config.errors import ConfigError
from components.config.schema import PipelineConfig
from components.discovery.checkpoints import basename
from components.discovery.errors import CheckpointVanished, LeaseError
from components.storage import ObjectNotFound, Storage, StorageError, scheme_of, storage_for

log = logging.getLogger(__name__)
LEASES_FOLDER = ".exportflow-leases"
HOLD_PREFIX = "hold."
_LEASE_NAME = re.compile(r"^(?P<prefix>.+)\.(?P<created>\d{9,12})\.(?P<token>[0-9a-f]{8})$")


def lease_settings(config: PipelineConfig) -> tuple[str, float]:
    """The lease root and TTL (seconds) of a model, from ``discovery.lease_dir`` / ``lease_ttl_hours``."""
    discovery = config.discovery
    if discovery.lease_ttl_hours <= 0:
        raise ConfigError(config.source, "discovery.lease_ttl_hours", "expected a positive number of hours")
    root = discovery.lease_dir
    if root is None:
        root = storage_for(config.model_dir).join(config.model_dir, LEASES_FOLDER)
    elif "://" not in root and not os.path.isabs(root):  # relative to the config file, like other paths
        root = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(config.source)), root))
    return root, discovery.lease_ttl_hours * 3600.0


def pin_all(
    checkpoints: Sequence[CheckpointArtifact], root: str, holders: Sequence[str], ttl_seconds: float
) -> list[CheckpointArtifact]:
    """Remove stale leases under ``root``, then pin every checkpoint; all or none (a vanished one
    releases those already pinned and raises ``CheckpointVanished``)."""
    if not checkpoints:
        return []
    clean_stale(root, ttl_seconds)
    pinned: list[CheckpointArtifact] = []
    try:
        for checkpoint in checkpoints:
            pinned.append(pin(checkpoint, root, holders))
    except BaseException:
        for done in pinned:
            release(done)
        raise
    return pinned


def pin(
    checkpoint: CheckpointArtifact,
    root: str,
    holders: Iterable[str],
    *,
    storage: Storage | None = None,
    now: float | None = None,
) -> CheckpointArtifact:
    """Pin every file of ``checkpoint`` under ``root``; returns it with ``pinned_uri`` set.

    ``CheckpointVanished`` (retryable) when a file is gone before it could be pinned; nothing of the
    half-made lease is left behind.
    """
    storage = storage or storage_for(root)
    source_dir, prefix = _split(checkpoint.uri)
    created = int(now if now is not None else time.time())
    lease_dir = storage.join(root, f"{prefix}.{created}.{secrets.token_hex(4)}")
    pinned_files = []
    source = ""
    try:
        for entry in checkpoint.files:
            source = storage.join(source_dir, entry.path)
            info = storage.copy(source, storage.join(lease_dir, entry.path), if_generation_match=0)
            pinned_files.append(dataclasses.replace(entry, size=info.size))
        source = ""
        for holder in holders:
            storage.write_bytes(storage.join(lease_dir, f"{HOLD_PREFIX}{holder}"), b"")
    except ObjectNotFound as exc:
        _remove(storage, lease_dir)
        if not source or _exists(storage, source):  # the lease folder's bucket or parent is what is missing
            raise LeaseError(f"cannot pin checkpoint {checkpoint.uri} under {root}: {exc}") from exc
        raise CheckpointVanished(
            f"{checkpoint.label} vanished before it could be pinned: {exc}; "
            "the trainer's retention (keep_checkpoint_max) removed it; a retry takes the checkpoints still there"
        ) from exc
    except StorageError as exc:
        _remove(storage, lease_dir)
        raise LeaseError(
            f"cannot pin checkpoint {checkpoint.uri} under {root}: {exc}; "
            "discovery.lease_dir must be writable and on the model_dir's filesystem or bucket"
        ) from exc
    pinned = dataclasses.replace(
        checkpoint, files=tuple(pinned_files), pinned_uri=storage.join(lease_dir, prefix)
    )
    log.info("pinned step %d at %s", checkpoint.step, lease_dir)
    return pinned


def release(
    checkpoint: CheckpointArtifact | None, holder: str | None = None, *, storage: Storage | None = None
) -> bool:
    """Drop ``holder``'s hold (every hold when None); remove the lease when none is left. True if removed."""
    if checkpoint is None or not checkpoint.pinned_uri:
        return False
    lease_dir, _ = _split(checkpoint.pinned_uri)
    storage = storage or storage_for(lease_dir)
    try:
        if holder is not None:
            storage.delete(storage.join(lease_dir, f"{HOLD_PREFIX}{holder}"))
            # Delete first, list second: of two holders releasing at once, the later one sees none left.
            if any(basename(i.uri).startswith(HOLD_PREFIX) for i in storage.list_files(lease_dir)):
                return False
        _remove(storage, lease_dir)
    except StorageError as exc:  # a lease left behind is only disk space: stale cleanup gets it later
        log.warning("could not release the lease %s: %s", lease_dir, exc)
        return False
    log.info("released the lease on step %d (%s)", checkpoint.step, lease_dir)
    return True


def clean_stale(
    root: str, ttl_seconds: float, *, storage: Storage | None = None, now: float | None = None
) -> list[str]:
    """Remove leases created more than ``ttl_seconds`` ago; returns their names. One listing of ``root``."""
    storage = storage or storage_for(root)
    now = now if now is not None else time.time()
    try:
        names = storage.list_names(root)
    except StorageError as exc:
        log.warning("cannot list the lease folder %s: %s", root, exc)
        return []
    removed = []
    for name in names:
        match = _LEASE_NAME.match(name)
        if match and now - int(match["created"]) > ttl_seconds:
            _remove(storage, storage.join(root, name))
            removed.append(name)
    if removed:
        log.info("removed %d stale lease(s) under %s: %s", len(removed), root, ", ".join(removed))
    return removed


def local_prefix(checkpoint: CheckpointArtifact, scratch_dir: str, *, storage: Storage | None = None) -> str:
    """A local-disk prefix for TensorFlow to read: the pinned (or original) prefix itself on local disk,
    else a download of the pinned files into ``scratch_dir`` (reused when already there, same sizes)."""
    prefix = checkpoint.readable_prefix
    if scheme_of(prefix) == "file":
        return prefix
    storage = storage or storage_for(prefix)
    folder, name = _split(prefix)
    os.makedirs(scratch_dir, exist_ok=True)
    for entry in checkpoint.files:
        target = os.path.join(scratch_dir, entry.path)
        if os.path.exists(target) and os.path.getsize(target) == entry.size:
            continue
        try:
            storage.download_file(storage.join(folder, entry.path), target)
        except ObjectNotFound as exc:
            raise CheckpointVanished(
                f"checkpoint {checkpoint.uri}: {entry.path} is gone from {folder}: {exc}"
            ) from exc
    return os.path.join(scratch_dir, name)


def pinned_files_present(checkpoint: CheckpointArtifact, *, storage: Storage | None = None) -> bool:
    """Whether the lease still holds the checkpoint's index (a stale-lease cleanup may have removed it)."""
    if not checkpoint.pinned_uri:
        return False
    storage = storage or storage_for(checkpoint.pinned_uri)
    return storage.stat(f"{checkpoint.pinned_uri}.index") is not None


def _split(uri: str) -> tuple[str, str]:
    folder, _, name = uri.rstrip("/").rpartition("/")
    return folder, name


def _exists(storage: Storage, uri: str) -> bool:
    try:
        return storage.stat(uri) is not None
    except StorageError:
        return True  # cannot tell: do not claim the checkpoint vanished


def _remove(storage: Storage, folder: str) -> None:
    try:
        storage.delete_prefix(folder)
    except StorageError as exc:
        log.warning("could not remove %s: %s", folder, exc)
