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
        owner.json                 # the run that pinned it, and its process when the run lives in one
        hold.<strategy>            # one empty marker per strategy that still needs the checkpoint

TensorFlow never looks into that folder: it deletes ``<prefix>.*`` files of the model dir only, and
discovery lists files, not folders. A lease is released when its last hold goes (each strategy's
publish releases its own, so parallel strategies never pull the checkpoint from under each other), at
once when evaluation does not bless the checkpoint, and on every failure: a stage runs inside
:func:`holding`, which drops its holds when the stage raises (an error, a timeout, SIGTERM turned into
an exception). A retried stage pins the checkpoint again at the same place, so the artifacts that name
the lease stay right.

What no exception reaches (SIGKILL, a lost worker) is reaped by the next discovery, by
:func:`clean_stale`, as soon as it is provably unused: the process that owned its run is gone from this
host, or, when the orchestrator runs one run at a time, the lease belongs to another run. Otherwise
(another host) it goes once older than ``discovery.lease_ttl_hours``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import secrets
import socket
import time
from collections.abc import Iterable, Iterator, Sequence

from components.artifacts import CheckpointArtifact
from components.config.errors import ConfigError
from components.config.schema import PipelineConfig
from components.discovery.checkpoints import basename
from components.discovery.errors import CheckpointVanished, LeaseError
from components.layout import LEASES_FOLDER
from components.storage import (
    ObjectNotFound,
    PreconditionFailed,
    Storage,
    StorageError,
    scheme_of,
    storage_for,
)

log = logging.getLogger(__name__)
HOLD_PREFIX = "hold."
OWNER_FILE = "owner.json"
_LEASE_NAME = re.compile(r"^(?P<prefix>.+)\.(?P<created>\d{9,12})\.(?P<token>[0-9a-f]{8})$")


@dataclasses.dataclass(frozen=True)
class LeaseOwner:
    """Who pinned a lease: the orchestrator's run, and the process when the whole run lives in one.

    ``host`` names one pid namespace on one boot (hostname, boot id, namespace inode), so a pid read on
    another machine, container or boot is never taken for one of ours. None where /proc does not tell.
    """

    run_id: str | None = None
    host: str | None = None
    pid: int | None = None
    pid_started: str | None = None  # the process's start time (clock ticks after boot): pids are reused

    @classmethod
    def of_run(cls, run_id: str | None) -> LeaseOwner:
        """A run whose stages run in processes of their own (Airflow tasks): no process owns the lease."""
        return cls(run_id=run_id, host=host_identity())

    @classmethod
    def this_process(cls, run_id: str | None = None) -> LeaseOwner:
        """A run that lives in this process from discovery to publish (the plain runner)."""
        pid = os.getpid()
        return cls(run_id=run_id, host=host_identity(), pid=pid, pid_started=_process_started(pid))

    def process_gone(self) -> bool:
        """True only when provably so: same host and pid namespace, and no process with that pid and start."""
        if self.pid is None or self.pid_started is None or self.host is None or self.host != host_identity():
            return False
        return _process_started(self.pid) != self.pid_started

    def to_json(self) -> bytes:
        return json.dumps(dataclasses.asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> LeaseOwner | None:
        try:
            fields = json.loads(data)
            return cls(**{f.name: fields.get(f.name) for f in dataclasses.fields(cls)})
        except (ValueError, TypeError, AttributeError):
            return None  # not ours to judge: the TTL decides


def host_identity() -> str | None:
    """This pid namespace on this boot of this host, or None where Linux's /proc does not say."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as handle:
            boot = handle.read().strip()
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None
    return f"{socket.gethostname()}/{boot}/{namespace}"


def _process_started(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat (start time after boot); None when no such process."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            stat = handle.read()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[19]  # fields after the command name start at field 3


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


def check_lease_root(config: PipelineConfig, root: str) -> None:
    """Refuse a lease root a lease cannot be cheap on: another scheme, or another local filesystem.

    A lease is a hard link (local) or a server-side copy (GCS); across filesystems a link is impossible
    and the storage would copy every byte of every checkpoint instead, on every run.
    """
    model_dir = config.model_dir
    fix = (
        f"remove discovery.lease_dir to use the default {LEASES_FOLDER} inside model_dir, or choose a "
        "folder on model_dir's own filesystem or bucket"
    )
    if scheme_of(root) != scheme_of(model_dir):
        raise ConfigError(
            config.source,
            "discovery.lease_dir",
            f"{root} is not on the same storage as model_dir {model_dir}: a lease is a hard link or a "
            f"server-side copy of the checkpoint's files; {fix}",
        )
    if scheme_of(root) != "file" or not os.path.exists(model_dir):
        return  # a missing model_dir is discovery's error to report
    existing = root
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if os.stat(existing).st_dev != os.stat(model_dir).st_dev:
        raise ConfigError(
            config.source,
            "discovery.lease_dir",
            f"{root} is on another filesystem than model_dir {model_dir}: a lease hard-links the "
            f"checkpoint's files, and a hard link cannot cross filesystems; {fix}",
        )


def pin_all(
    checkpoints: Sequence[CheckpointArtifact],
    root: str,
    holders: Sequence[str],
    ttl_seconds: float,
    *,
    owner: LeaseOwner | None = None,
    exclusive_run: bool = False,
) -> list[CheckpointArtifact]:
    """Reap stale leases under ``root`` (see :func:`clean_stale`), then pin every checkpoint for
    ``owner``; all or none (a vanished one releases those already pinned and raises ``CheckpointVanished``)."""
    clean_stale(root, ttl_seconds, current=owner, exclusive_run=exclusive_run)
    pinned: list[CheckpointArtifact] = []
    try:
        for checkpoint in checkpoints:
            pinned.append(pin(checkpoint, root, holders, owner=owner))
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
    owner: LeaseOwner | None = None,
) -> CheckpointArtifact:
    """Pin every file of ``checkpoint`` under ``root``; returns it with ``pinned_uri`` set.

    The owner is written first, so even a lease half made by a killed process can be reaped.
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
        storage.write_bytes(storage.join(lease_dir, OWNER_FILE), (owner or LeaseOwner.of_run(None)).to_json())
        for entry in checkpoint.files:
            source = storage.join(source_dir, entry.path)
            info = storage.copy(source, storage.join(lease_dir, entry.path), if_generation_match=0)
            pinned_files.append(dataclasses.replace(entry, size=info.size))
        source = ""
        for holder in holders:
            storage.write_bytes(storage.join(lease_dir, f"{HOLD_PREFIX}{holder}"), b"")
    except BaseException as exc:
        _remove(storage, lease_dir)
        if isinstance(exc, ObjectNotFound):
            if not source or _exists(storage, source):  # the lease folder's bucket or parent is missing
                raise LeaseError(f"cannot pin checkpoint {checkpoint.uri} under {root}: {exc}") from exc
            raise CheckpointVanished(
                f"{checkpoint.label} vanished before it could be pinned: {exc}; "
                "the trainer's retention (keep_checkpoint_max) removed it; a retry takes the checkpoints still there"
            ) from exc
        if isinstance(exc, StorageError):
            raise LeaseError(
                f"cannot pin checkpoint {checkpoint.uri} under {root}: {exc}; "
                "discovery.lease_dir must be writable and on the model_dir's filesystem or bucket"
            ) from exc
        raise
    pinned = dataclasses.replace(
        checkpoint, files=tuple(pinned_files), pinned_uri=storage.join(lease_dir, prefix)
    )
    log.info("pinned step %d at %s", checkpoint.step, lease_dir)
    return pinned


def ensure_pinned(
    checkpoint: CheckpointArtifact,
    holders: Iterable[str],
    *,
    holds_only_if_gone: bool = False,
    storage: Storage | None = None,
) -> None:
    """Make the checkpoint's lease whole again, with a hold for each of ``holders``.

    A retried stage finds the lease its failed attempt released (or that stale cleanup reaped): the
    checkpoint is pinned again at the same ``pinned_uri``, so every artifact naming it stays right.
    Files another attempt pinned meanwhile are kept (create-if-absent). ``CheckpointVanished`` when the
    trainer's retention removed the checkpoint since; what this call added is removed again.
    ``holds_only_if_gone``: a lease still whole keeps the holds it has (evaluate: the exports that
    already released theirs must not get them back).
    """
    if not checkpoint.pinned_uri:
        return
    lease_dir, _ = _split(checkpoint.pinned_uri)
    storage = storage or storage_for(lease_dir)
    source_dir, _ = _split(checkpoint.uri)
    try:
        present = {basename(i.uri) for i in storage.list_files(lease_dir)}
    except StorageError as exc:
        raise LeaseError(f"cannot list the lease {lease_dir} of {checkpoint.label}: {exc}") from exc
    added: list[str] = []

    def add(name: str, write) -> None:
        if name not in present:
            try:
                write(storage.join(lease_dir, name))
                added.append(storage.join(lease_dir, name))
            except PreconditionFailed:
                pass  # another attempt pinned it meanwhile: the same file

    whole = all(entry.path in present for entry in checkpoint.files)
    if whole and holds_only_if_gone:
        return
    source = ""
    try:
        if not whole:
            log.info("pinning %s again at %s (its lease was released or reaped)", checkpoint.label, lease_dir)
        add(
            OWNER_FILE,
            lambda uri: storage.write_bytes(uri, LeaseOwner.of_run(None).to_json(), if_generation_match=0),
        )
        for entry in checkpoint.files:
            source = storage.join(source_dir, entry.path)
            add(entry.path, lambda uri, source=source: storage.copy(source, uri, if_generation_match=0))
        source = ""
        for holder in holders:
            add(f"{HOLD_PREFIX}{holder}", lambda uri: storage.write_bytes(uri, b""))
    except BaseException as exc:
        for uri in added:
            with contextlib.suppress(StorageError):
                storage.delete(uri)
        if isinstance(exc, ObjectNotFound) and source and not _exists(storage, source):
            raise CheckpointVanished(
                f"{checkpoint.label} is gone: its lease {lease_dir} was released when an earlier attempt "
                "failed, and the trainer's retention (keep_checkpoint_max) removed the checkpoint since; "
                "a new run takes the checkpoints still there"
            ) from exc
        if isinstance(exc, StorageError):
            raise LeaseError(f"cannot pin {checkpoint.label} again under {lease_dir}: {exc}") from exc
        raise


@contextlib.contextmanager
def holding(
    checkpoint: CheckpointArtifact | None,
    holders: Sequence[str],
    *,
    repin: bool = False,
    whole_lease: bool = False,
) -> Iterator[None]:
    """Run a stage's block with ``checkpoint`` pinned for ``holders``; if the block raises anything
    (an error, Airflow's timeout or SIGTERM exceptions, the plain runner's ``RunTerminated``), drop
    their holds — or the whole lease with ``whole_lease``, when no other stage will run for it.

    ``repin``: stages that read the checkpoint first make its lease whole (:func:`ensure_pinned`;
    with ``whole_lease`` the holds are written only when the lease had to be pinned again).
    """
    if repin and checkpoint is not None:
        ensure_pinned(checkpoint, holders, holds_only_if_gone=whole_lease)
    try:
        yield
    except BaseException:
        if whole_lease:
            release(checkpoint)
        else:
            for holder in holders:
                release(checkpoint, holder)
        raise


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
        names = [basename(i.uri) for i in storage.list_files(lease_dir)]
        if not names or (holder is not None and any(n.startswith(HOLD_PREFIX) for n in names)):
            return False
        _remove(storage, lease_dir)
    except StorageError as exc:  # a lease left behind is only disk space: stale cleanup gets it later
        log.warning("could not release the lease %s: %s", lease_dir, exc)
        return False
    log.info("released the lease on step %d (%s)", checkpoint.step, lease_dir)
    return True


def held_by_another_run(
    config: PipelineConfig, checkpoint_uri: str, holder: str, *, own: CheckpointArtifact | None = None
) -> bool:
    """Does a lease on the checkpoint at ``checkpoint_uri`` other than ``own``'s (another run's) still
    hold it for ``holder``? Then that run has not published what it made of the checkpoint yet. A lease
    root that cannot be read answers True (nothing is taken from a run that may need it)."""
    try:
        root, _ = lease_settings(config)
        storage = storage_for(root)
        names = storage.list_names(root)
    except (ConfigError, StorageError) as exc:
        log.warning("cannot tell whether another run holds %s (%s); assuming one does", checkpoint_uri, exc)
        return True
    _, prefix = _split(checkpoint_uri)
    mine = _split(_split(own.pinned_uri)[0])[1] if own is not None and own.pinned_uri else None
    for name in names:
        match = _LEASE_NAME.match(name)
        if match is None or match["prefix"] != prefix or name == mine:
            continue
        if _exists(storage, storage.join(root, name, f"{HOLD_PREFIX}{holder}")):
            return True
    return False


def count_leases(root: str, *, storage: Storage | None = None) -> int:
    """How many leases are under ``root`` (what a failed run must bring back to zero)."""
    storage = storage or storage_for(root)
    return sum(1 for name in storage.list_names(root) if _LEASE_NAME.match(name))


def clean_stale(
    root: str,
    ttl_seconds: float,
    *,
    storage: Storage | None = None,
    now: float | None = None,
    current: LeaseOwner | None = None,
    exclusive_run: bool = False,
) -> list[str]:
    """Remove leases no run can still use; returns their names. One listing of ``root``, one small read
    per lease younger than the TTL.

    A lease goes when it is older than ``ttl_seconds``; or when its owner's process is provably gone
    (same host and pid namespace, no process with its pid and start time: a plain run that was killed);
    or, with ``exclusive_run`` (the orchestrator runs at most one run of this model at a time, and
    ``current`` is that run), when it belongs to another orchestrated run, which must have ended.
    """
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
        if not match:
            continue
        lease_dir = storage.join(root, name)
        if now - int(match["created"]) > ttl_seconds:
            why = "older than discovery.lease_ttl_hours"
        else:
            why = _unused_because(storage, lease_dir, current, exclusive_run)
        if why:
            _remove(storage, lease_dir)
            removed.append(name)
            log.info("removed the stale lease %s: %s", lease_dir, why)
    return removed


def _unused_because(storage: Storage, lease_dir: str, current: LeaseOwner | None, exclusive_run: bool) -> str:
    try:
        owner = LeaseOwner.from_json(storage.read_bytes(storage.join(lease_dir, OWNER_FILE)))
    except StorageError:  # a lease from before owners were recorded, or one being made: the TTL decides
        return ""
    if owner is None:
        return ""
    if owner.process_gone():
        return f"the process that pinned it ({owner.pid}) is gone"
    if (
        exclusive_run
        and current is not None
        and current.run_id is not None
        and owner.pid is None
        and owner.run_id is not None
        and owner.run_id != current.run_id
    ):
        return f"its run {owner.run_id} has ended (one run at a time; this is {current.run_id})"
    return ""


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
