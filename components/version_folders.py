"""Version folders on local disk: is one complete, and the one retention helper (keep the newest N
version directories, remove crashed temp dirs).

Below export and staging, which both keep versions this way: the export library and the pipeline's
export write them, staging keeps them on local disk until publication.

tf.estimator's exporters each carry their own garbage collection, count only 10-digit names and never
remove the ``temp-<timestamp>`` folders a crash leaves behind. Every export path here (the pipeline's
staging folders, ``LatestExporter``, ``BestExporter``, the library ``export_*`` functions) goes through
:func:`prune_export_versions` instead:

* **versions** are integer-named directories (any number of digits); the newest ``keep`` by number are
  kept, plus any name in ``protect`` (e.g. exported but not yet published);
* **temp dirs** are ours (``.tmp-<label>-<pid>@<host>``, see :func:`temp_dir_name`) or TensorFlow's
  (``temp-<digits>``). Ours are judged by the rule publish applies to its leases: the holder is the
  named host and process, and the claim expires ``stale_after`` seconds after the folder last
  changed: on this host it is removed as soon as its process is gone; a folder named after
  another host (a staging folder shared over NFS) only once it expired — a pid is never checked on a
  host that does not own it. TensorFlow's and other ``.tmp-*`` ones (the old ``.tmp-<label>-<pid>``,
  which names no host) are removed when older than ``stale_after`` seconds.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import shutil
import socket
import time
from collections.abc import Collection

from components.layout import GRAPH_FILES, SET_MANIFEST, TEMP_PREFIX

log = logging.getLogger(__name__)

_OUR_TEMP = re.compile(r"^\.tmp-(?P<label>.+)-(?P<pid>\d+)@(?P<host>[A-Za-z0-9.\-_]+)$")
_TF_TEMP = re.compile(r"^temp-\d+$")
DEFAULT_STALE_AFTER = 6 * 3600.0


@dataclasses.dataclass(frozen=True)
class RetentionResult:
    kept: tuple[str, ...]
    removed_versions: tuple[str, ...]
    removed_temp_dirs: tuple[str, ...]


def temp_dir_name(label: str) -> str:
    """The temp folder name for ``label`` written by this process on this host (recognised by retention)."""
    return f"{TEMP_PREFIX}{label}-{os.getpid()}@{_host()}"


def is_complete(path: str) -> bool:
    """A version folder that holds a SavedModel or a set document (only ever renamed in complete)."""
    return os.path.isdir(path) and any(os.path.isfile(os.path.join(path, name)) for name in (*GRAPH_FILES, SET_MANIFEST))


def version_dirs(base: str) -> list[str]:
    """Integer-named subdirectories of ``base``, oldest first (by number, not by string)."""
    try:
        names = os.listdir(base)
    except FileNotFoundError:
        return []
    versions = [n for n in names if n.isdigit() and os.path.isdir(os.path.join(base, n))]
    return sorted(versions, key=int)


def prune_export_versions(
    base: str,
    keep: int | None = None,
    *,
    protect: Collection[str] = (),
    stale_after: float = DEFAULT_STALE_AFTER,
    now: float | None = None,
) -> RetentionResult:
    """Remove all but the newest ``keep`` versions (``None`` keeps all) and every crashed temp dir."""
    if keep is not None and keep <= 0:
        raise ValueError(f"keep must be a positive number of versions or None, got {keep!r}")
    versions = version_dirs(base)
    protected = {str(p) for p in protect}
    doomed: list[str] = []
    if keep is not None and len(versions) > keep:
        doomed = [v for v in versions[: len(versions) - keep] if v not in protected]
    for version in doomed:
        shutil.rmtree(os.path.join(base, version), ignore_errors=True)
        log.info("retention: removed version %s from %s (keeping the newest %s)", version, base, keep)
    temps = _crashed_temp_dirs(base, stale_after, time.time() if now is None else now)
    for name in temps:
        shutil.rmtree(os.path.join(base, name), ignore_errors=True)
        log.info("retention: removed crashed temp dir %s from %s", name, base)
    return RetentionResult(
        kept=tuple(v for v in versions if v not in doomed),
        removed_versions=tuple(doomed),
        removed_temp_dirs=tuple(temps),
    )


def _crashed_temp_dirs(base: str, stale_after: float, now: float) -> list[str]:
    try:
        names = sorted(os.listdir(base))
    except FileNotFoundError:
        return []
    crashed = []
    for name in names:
        path = os.path.join(base, name)
        if not os.path.isdir(path):
            continue
        try:
            changed = os.stat(path).st_mtime
        except FileNotFoundError:
            continue
        ours = _OUR_TEMP.match(name)
        if ours:
            host, pid = ours.group("host"), int(ours.group("pid"))
            if not _is_ours_now(host, pid) and not _still_held(host, pid, changed + stale_after, now):
                crashed.append(name)
            continue
        if (_TF_TEMP.match(name) or name.startswith(TEMP_PREFIX)) and now - changed > stale_after:
            crashed.append(name)
    return crashed


def _is_ours_now(host: str, pid: int) -> bool:
    """This very process (its own folder is never crashed, whatever its age)."""
    return host == _host() and pid == os.getpid()


def _still_held(host: str, pid: int, expires_at: float, now: float) -> bool:
    """Not expired and, when the holder is on this host, its process still exists.

    A pid is only checked on the host that owns it. The export library keeps this rule to itself
    rather than importing publish's lease, so it stays free of the pipeline (tests/test_layers.py).
    """
    if expires_at <= now:
        return False
    if host == _host():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except (PermissionError, OverflowError):
            return True
    return True


def _host() -> str:
    """This host's name as it may appear in a folder name."""
    return re.sub(r"[^A-Za-z0-9.\-_]", "_", socket.gethostname()) or "localhost"
