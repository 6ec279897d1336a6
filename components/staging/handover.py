"""Move a version into staging, and back out to a worker, by URI.

* :func:`stage_version` — export → object store: every file of the local export is uploaded, except
  those whose exact bytes (size + CRC32C) already exist on the same store, such as the pinned checkpoint's
  objects that variables by reference are: those are server-side copies, so no variable byte goes through
  the worker. The staged objects are listed and checked against the local files before ``.staged.json``
  is written; a failure removes what was uploaded.
* :func:`local_view` — object store → this worker: the staged objects as hard links to the scratch cache.
* :func:`push_changes` — the files a stage changed in its view (warmup's file) back to staging.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import socket
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from components.artifacts import FileEntry
from components.manifest import list_export_files
from components.staging.area import LOCK_TTL, StagingArea
from components.staging.errors import (
    StagedVersionCorrupt,
    StagedVersionMissing,
    StagingError,
    StagingUnavailable,
)
from components.storage import ObjectInfo, StorageError, TransientStorageError
from components.transfer.dedupe import DedupeIndex
from components.transfer.errors import PublishError, PublishInProgress
from components.transfer.lock import VersionLock
from components.transfer.pool import Transfer, TransferResult, run_transfers

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class StageOutcome:
    uri: str
    files: int
    bytes_uploaded: int  # through this worker
    bytes_copied: int  # server-side copies (e.g. variables from the checkpoint)
    variables_uploaded: int  # of bytes_uploaded, those under variables/


def stage_version(
    area: StagingArea,
    strategy: str,
    version: str,
    local_dir: str,
    *,
    same_bytes: Iterable[ObjectInfo] = (),
    references: dict[str, ObjectInfo] | None = None,
    info: dict[str, Any] | None = None,
) -> StageOutcome:
    """Stage ``local_dir`` as ``<strategy>/<version>`` on an object store; ``same_bytes``: objects on that
    store that may hold some files' exact bytes (server-side copied instead of uploaded); ``references``:
    files of the export that are not in ``local_dir`` at all but are these objects (relative path →
    object; variables by reference whose data never came to this worker)."""
    target = area.version_uri(strategy, version)
    same_bytes = [*same_bytes, *(references or {}).values()]
    files = list_export_files(local_dir) + [
        FileEntry(rel, obj.size, obj.crc32c or area.storage.checksum(obj.uri)) for rel, obj in sorted((references or {}).items())
    ]
    lock = _lock(area, strategy, version, "stage")
    try:
        with lock.heartbeat():
            results = _upload(area, target, local_dir, files, DedupeIndex(area.storage, same_bytes), references or {})
            _verify(area, target, files)
            lock.check()
            record = {
                "version": version,
                "files": [dataclasses.asdict(f) for f in files],
                "host": socket.gethostname(),
                **(info or {}),
            }
            area.storage.write_bytes(
                area.staged_marker(strategy, version), json.dumps(record, indent=1, sort_keys=True).encode()
            )
    except BaseException as exc:
        _discard(area, target, lock)
        if isinstance(exc, StorageError):
            kind = StagingUnavailable if isinstance(exc, TransientStorageError) else StagingError
            raise kind(f"staging {local_dir} as {target} failed: {exc}; nothing was left staged") from exc
        if isinstance(exc, PublishError):
            raise StagingError(f"staging {target} failed: {exc}; nothing was left staged") from exc
        raise
    lock.release()
    for entry in files:  # this worker holds the bytes: a later stage here reads them without downloading
        if entry.path not in (references or {}):
            area.cache.adopt(os.path.join(local_dir, *entry.path.split("/")), entry.crc32c or "", entry.size)
    area.cache.prune()
    uploaded = [r for r in results if r.method == "uploaded"]
    outcome = StageOutcome(
        uri=target,
        files=len(files),
        bytes_uploaded=sum(r.bytes_moved for r in results),
        bytes_copied=sum(r.bytes_copied for r in results),
        variables_uploaded=sum(r.bytes_moved for r in uploaded if r.transfer.entry.path.startswith("variables/")),
    )
    log.info(
        "staged %s: %d files, %d bytes uploaded (%d of variables), %d bytes copied by the store",
        target, outcome.files, outcome.bytes_uploaded, outcome.variables_uploaded, outcome.bytes_copied,
    )
    return outcome


def staged_objects(area: StagingArea, uri: str) -> dict[str, ObjectInfo]:
    """Objects below a staged folder by relative path (raises when there are none)."""
    root = uri.rstrip("/")
    try:
        found = {info.uri[len(root) + 1 :]: info for info in area.storage.list(root)}
    except StorageError as exc:
        raise StagingUnavailable(f"cannot list the staged export {uri}: {exc}") from exc
    if not found:
        raise StagedVersionMissing(
            f"the staged export {uri} is gone (published and cleaned up, or removed by retention); rerun its export"
        )
    return found


@contextlib.contextmanager
def local_view(area: StagingArea, uri: str, *, skip: Iterable[str] = ()) -> Iterator[tuple[str, dict[str, ObjectInfo]]]:
    """A private local folder holding the staged export at ``uri`` (hard links to the cache), and the
    staged objects it was made from; removed on exit."""
    objects = staged_objects(area, uri)
    wanted = {rel: info for rel, info in objects.items() if rel not in set(skip)}
    folder = area.scratch_path("views", uuid.uuid4().hex[:12], os.path.basename(uri.rstrip("/")))
    try:
        area.cache.materialize(area.storage, wanted, folder)
        yield folder, objects
    except StorageError as exc:
        raise StagingUnavailable(f"cannot fetch the staged export {uri}: {exc}") from exc
    finally:
        shutil.rmtree(os.path.dirname(folder), ignore_errors=True)


def push_changes(area: StagingArea, uri: str, folder: str, before: dict[str, ObjectInfo]) -> int:
    """Upload the files of ``folder`` that differ from ``before`` (the staged objects); returns how many."""
    changed = []
    for entry in list_export_files(folder):
        old = before.get(entry.path)
        if old is None or old.size != entry.size or (old.crc32c or area.storage.checksum(old.uri)) != entry.crc32c:
            changed.append(
                Transfer(
                    entry=entry,
                    source=os.path.join(folder, *entry.path.split("/")),
                    target=area.storage.join(uri, entry.path),
                    replace_generation=(old.generation or 0) if old is not None else 0,
                )
            )
    try:
        run_transfers(area.storage, changed, parallelism=area.parallelism)
    except StorageError as exc:
        raise StagingUnavailable(f"cannot write back into the staged export {uri}: {exc}") from exc
    for transfer in changed:
        area.cache.adopt(transfer.source, transfer.entry.crc32c or "", transfer.entry.size)
    return len(changed)


def remove_version(area: StagingArea, strategy: str, version: str) -> bool:
    """Remove a staged version (no longer needed: published, or retired). Marker first, so it stops
    counting as staged before any object goes. False when another worker holds its lock."""
    uri = area.version_uri(strategy, version)
    if area.local:
        if not os.path.isdir(uri):
            return False
        shutil.rmtree(uri, ignore_errors=True)
        return True
    try:
        lock = _lock(area, strategy, version, "remove")
    except StagingUnavailable as exc:
        log.info("staged %s not removed now: %s", uri, exc)
        return False
    try:
        area.storage.delete(area.staged_marker(strategy, version))
        area.storage.delete_prefix(uri)
    finally:
        lock.release()
    return True


def _lock(area: StagingArea, strategy: str, version: str, purpose: str) -> VersionLock:
    try:
        return VersionLock.acquire(area.storage, area.lock_uri(strategy, version), LOCK_TTL, purpose)
    except PublishInProgress as exc:
        raise StagingUnavailable(f"staged version {area.version_uri(strategy, version)} is busy: {exc}") from exc


def _upload(
    area: StagingArea,
    target: str,
    local_dir: str,
    files: list[FileEntry],
    index: DedupeIndex,
    references: dict[str, ObjectInfo],
) -> list[TransferResult]:
    existing = {info.uri: info for info in area.storage.list(target)}  # a crashed attempt's objects
    wanted = {area.storage.join(target, f.path) for f in files}
    for uri, info in existing.items():
        if uri not in wanted:
            area.storage.delete(uri, if_generation_match=info.generation)
    transfers = []
    for entry in files:
        uri = area.storage.join(target, entry.path)
        found = existing.get(uri)
        if found is not None and found.size == entry.size and found.crc32c == entry.crc32c:
            continue
        transfers.append(
            Transfer(
                entry=entry,
                # a reference has no local file: only the store can make it (a copy), never an upload
                source=references[entry.path].uri if entry.path in references else os.path.join(local_dir, *entry.path.split("/")),
                target=uri,
                copy_from=references[entry.path].uri if entry.path in references else index.find(entry),
                replace_generation=(found.generation or 0) if found is not None else 0,
            )
        )
    return run_transfers(area.storage, transfers, parallelism=area.parallelism)


def _verify(area: StagingArea, target: str, files: list[FileEntry]) -> None:
    root = target.rstrip("/")
    listed = {info.uri[len(root) + 1 :]: info for info in area.storage.list(root)}
    problems = []
    for entry in files:
        info = listed.get(entry.path)
        if info is None:
            problems.append(f"{entry.path} is missing")
            continue
        crc = info.crc32c or area.storage.checksum(info.uri)
        if info.size != entry.size or crc != entry.crc32c:
            problems.append(f"{entry.path} holds {info.size} bytes crc32c {crc}, expected {entry.size} / {entry.crc32c}")
    if problems:
        raise StagedVersionCorrupt(f"staged {target} does not match the export: {'; '.join(problems[:5])}")


def _discard(area: StagingArea, target: str, lock: VersionLock) -> None:
    try:
        area.storage.delete_prefix(target)
        lock.release()
    except StorageError as exc:
        log.warning("could not remove the partly staged %s (the next export reaps it): %s", target, exc)
