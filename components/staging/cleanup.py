"""Staging retention: staging holds only versions still on their way to publication.

* A staged version is removed once it is published (``publish_stage``), and at every export any staged
  version the ledger shows as published (a run that died between its publish and this clean-up).
* Unpublished versions beyond a strategy's ``exports_to_keep`` go too (never the one just exported, nor
  one the ledger shows exported and not yet published).
* Abandoned staging (a crashed run) is removed only when nothing live claims it. Local disk: a temp
  folder ``.tmp-<label>-<pid>@<host>`` whose process is gone (this host) or that expired (another host;
  ``components.version_folders``). Object stores: a version folder without ``.staged.json`` whose lock
  can be taken (absent, expired, or naming a process of this host that is gone: ``components.transfer.lock.lock_is_live``)
  — a pid is never checked on a host that does not own it.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from components.layout import LEASE_SUFFIX, version_of
from components.staging.area import StagingArea
from components.staging.handover import remove_version
from components.storage import StorageError
from components.transfer.errors import PublishInProgress
from components.transfer.lock import VersionLock
from components.version_folders import is_complete, prune_export_versions, version_dirs

log = logging.getLogger(__name__)
REAP_LOCK_TTL = 300.0


def is_staged(area: StagingArea, strategy: str, version: str) -> bool:
    """Is the version completely staged (local: renamed into place; object store: ``.staged.json``)?"""
    if area.local:
        return is_complete(area.version_uri(strategy, version))
    return area.read_staged(strategy, version) is not None


def staged_versions(area: StagingArea, strategy: str) -> list[str]:
    """Version folders under the strategy (complete or not), oldest first."""
    base = area.strategy_uri(strategy)
    if area.local:
        return version_dirs(base)
    return sorted((n for n in area.storage.list_names(base) if n.isdigit()), key=int)


def prune_strategy(
    area: StagingArea,
    strategy: str,
    *,
    keep: int | None,
    protect: Collection[str],
    published: Collection[str] = (),
) -> list[str]:
    """Remove published and abandoned staged versions, then all but the newest ``keep`` unpublished ones
    (``protect`` always stays). Returns the removed versions. Never fails the caller's stage."""
    removed: list[str] = []
    try:
        for version in staged_versions(area, strategy):
            if version in published and version not in protect and remove_version(area, strategy, version):
                removed.append(version)
        if area.local:
            result = prune_export_versions(area.strategy_uri(strategy), keep, protect=protect)
            return removed + list(result.removed_versions)
        removed += reap_abandoned(area, strategy, protect=protect)
        remaining = [v for v in staged_versions(area, strategy) if v not in removed]
        if keep is not None and len(remaining) > keep:
            for version in remaining[: len(remaining) - keep]:
                if version not in protect and remove_version(area, strategy, version):
                    removed.append(version)
    except StorageError as exc:
        log.warning("staging clean-up of %s skipped: %s", area.strategy_uri(strategy), exc)
    for version in removed:
        log.info("staging: removed %s", area.version_uri(strategy, version))
    return removed


def reap_abandoned(area: StagingArea, strategy: str, *, protect: Collection[str] = ()) -> list[str]:
    """Object store: remove version folders without ``.staged.json`` that no live lock claims."""
    if area.local:
        return [n for n in prune_export_versions(area.strategy_uri(strategy)).removed_temp_dirs]
    reaped = []
    for version in staged_versions(area, strategy):
        if version in protect or area.read_staged(strategy, version) is not None:
            continue
        try:
            lock = VersionLock.acquire(area.storage, area.lock_uri(strategy, version), REAP_LOCK_TTL, "reap staging")
        except PublishInProgress:
            continue  # someone is staging it now
        try:
            if area.read_staged(strategy, version) is None:  # finished while we looked: keep it
                area.storage.delete_prefix(area.version_uri(strategy, version))
                reaped.append(version)
                log.info("staging: reaped abandoned %s", area.version_uri(strategy, version))
        finally:
            lock.release()
    bookkeeping = area.bookkeeping_uri(strategy)
    for name in area.storage.list_names(bookkeeping):
        if version_of(name, LEASE_SUFFIX) is not None:
            VersionLock.clear_stale(area.storage, area.storage.join(bookkeeping, name))
    return reaped
