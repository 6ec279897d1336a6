"""Bounded parallel transfers, each one verified against the manifest before it counts as done.

One transfer makes one destination object from a manifest entry, by the cheapest means available:

1. ``copy_from`` — an object with the same size and CRC32C already on the same back-end (an earlier
   version, the checkpoint): a server-side rewrite on GCS, a hard link on local disk. No bytes pass
   through this process. If the source vanished or turns out different, fall back to 2.
2. an upload of the local file (resumable above 8 MiB on GCS), with the manifest's CRC32C sent along so
   the store refuses different bytes.

The source is a local file, or an object on the destination's store (an export staged there,
``copy_source``): then 1 is the only way, and a source that vanished or changed is ``ExportIncomplete``.

Every write carries a generation precondition (``0`` = create; or the generation of a wrong object it
replaces), so the SDK may retry it and a concurrent writer cannot be clobbered. A precondition failure
is resolved by looking: an object with our size and CRC32C is ours (a retried create whose first
response was lost) or identical, and is accepted; anything else is a conflict. A transfer that still
fails on a transient error after the SDK's own retries is started once more from scratch (a new upload
session), then the error is raised.

The pool is a ``ThreadPoolExecutor`` of ``parallelism`` threads sharing one client; the first failure
cancels the transfers not yet started and is raised once the running ones finish.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Literal

from components.artifacts import FileEntry
from components.storage import (
    ObjectInfo,
    ObjectNotFound,
    PreconditionFailed,
    Storage,
    TransientStorageError,
    scheme_of,
)
from components.transfer.errors import ChecksumMismatch, ExportIncomplete, PublishInProgress
from components.transfer.progress import Progress

log = logging.getLogger(__name__)
_FRESH_STARTS = 2  # whole-object restarts after the SDK's retries gave up on a transient error


@dataclasses.dataclass(frozen=True)
class Transfer:
    """Make ``target`` hold the bytes of ``entry`` (the local file ``source``)."""

    entry: FileEntry
    source: str
    target: str
    copy_from: str | None = None  # an object with the same bytes on the destination's back-end
    replace_generation: int = 0  # 0: create; else the generation of a wrong object to replace


@dataclasses.dataclass(frozen=True)
class TransferResult:
    transfer: Transfer
    info: ObjectInfo
    method: Literal["uploaded", "copied", "linked"]

    @property
    def bytes_moved(self) -> int:
        """Bytes that went through this process."""
        return self.info.size if self.method == "uploaded" else 0

    @property
    def bytes_copied(self) -> int:
        """Bytes the store duplicated on its own (server-side copy, hard link)."""
        return 0 if self.method == "uploaded" else self.info.size

    @property
    def bytes_linked(self) -> int:
        """The hard-linked part of ``bytes_copied``."""
        return self.info.size if self.method == "linked" else 0


@dataclasses.dataclass(frozen=True)
class PublishEvent:
    """One object written at the destination (a transfer, a manifest, a graph, a marker, a lock file)."""

    kind: str
    uri: str
    size: int = 0


Observer = Callable[[PublishEvent], None]


def copy_source(source: str, destination: str, link_local: bool) -> str | None:
    """Where the store itself can make the object from: the local file when hard links are wanted, the
    staged object when the export is staged on the destination's object store; else None."""
    if scheme_of(source) == "file":
        return source if link_local else None
    return source if scheme_of(source) == scheme_of(destination) else None


def matches(storage: Storage, info: ObjectInfo, entry: FileEntry) -> bool:
    """Does the stored object hold the entry's bytes? Size first; CRC32C from the listing or computed."""
    if info.size != entry.size:
        return False
    if entry.crc32c is None:
        return True
    crc = info.crc32c if info.crc32c is not None else storage.checksum(info.uri)
    return crc == entry.crc32c


def transfer_one(storage: Storage, transfer: Transfer, progress: Progress | None = None) -> TransferResult:
    """Run one transfer and verify the result against the manifest entry."""
    generation = transfer.replace_generation
    if transfer.copy_from is not None:
        result = _try_copy(storage, transfer, generation)
        if isinstance(result, TransferResult):
            return result
        generation = result
    if scheme_of(transfer.source) != "file":
        raise ExportIncomplete(
            f"{transfer.source} could not be copied to {transfer.target} (gone, or different from the manifest); "
            "rerun the export so it is staged again"
        )
    meter = _Meter(progress)
    for attempt in range(_FRESH_STARTS + 1):
        try:
            info = storage.upload_file(
                transfer.source,
                transfer.target,
                if_generation_match=generation,
                crc32c=transfer.entry.crc32c,
                progress=meter.attempt(),
            )
            break
        except PreconditionFailed:
            info = _resolve_precondition(storage, transfer)
            break
        except ObjectNotFound as exc:
            if not os.path.exists(transfer.source):
                raise ExportIncomplete(f"{transfer.source} vanished from the export while publishing") from exc
            raise
        except TransientStorageError as exc:
            if attempt == _FRESH_STARTS:
                raise
            log.warning("upload of %s failed after retries (%s); starting it over", transfer.target, exc)
            # A lost response may hide a finished upload: the object may be there already.
            found = storage.stat(transfer.target)
            if found is not None and matches(storage, found, transfer.entry):
                info = found
                break
            generation = found.generation if found is not None and found.generation else generation
    _verify(storage, transfer, info)
    return TransferResult(transfer, info, "uploaded")


def run_transfers(
    storage: Storage,
    transfers: Sequence[Transfer],
    *,
    parallelism: int,
    progress: Progress | None = None,
    observer: Observer | None = None,
) -> list[TransferResult]:
    """Run ``transfers`` on at most ``parallelism`` threads, largest first; raise the first failure."""
    if not transfers:
        return []
    ordered = sorted(transfers, key=lambda t: -t.entry.size)
    results: list[TransferResult] = []
    lock = threading.Lock()

    def run(transfer: Transfer) -> TransferResult:
        result = transfer_one(storage, transfer, progress)
        if progress is not None:
            progress.object_done(result.method, result.info.size)
        with lock:
            results.append(result)
            if observer is not None:
                observer(PublishEvent(result.method, transfer.target, result.info.size))
        return result

    pool = ThreadPoolExecutor(max_workers=max(1, min(parallelism, len(ordered))), thread_name_prefix="publish")
    try:
        futures = [pool.submit(run, t) for t in ordered]
        wait(futures, return_when=FIRST_EXCEPTION)
        failed = next((f for f in futures if f.done() and f.exception() is not None), None)
        if failed is not None:
            for future in futures:
                future.cancel()
            wait(futures)
            raise failed.exception()  # type: ignore[misc]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return results


def _try_copy(storage: Storage, transfer: Transfer, generation: int) -> TransferResult | int:
    """Copy from ``copy_from``; on success the result, else the generation the upload must replace."""
    try:
        info = storage.copy(transfer.copy_from, transfer.target, if_generation_match=generation)  # type: ignore[arg-type]
    except ObjectNotFound:
        log.info("copy source %s is gone; uploading %s instead", transfer.copy_from, transfer.target)
        return generation
    except PreconditionFailed:
        info = _resolve_precondition(storage, transfer)
        return TransferResult(transfer, info, "copied")
    method: Literal["copied", "linked"] = "linked" if info.crc32c is None else "copied"
    if info.size == transfer.entry.size and (info.crc32c is None or info.crc32c == transfer.entry.crc32c):
        return TransferResult(transfer, info, method)
    log.warning("copy of %s from %s does not match the manifest; uploading instead", transfer.target, transfer.copy_from)
    return info.generation or generation


def _resolve_precondition(storage: Storage, transfer: Transfer) -> ObjectInfo:
    """Someone (maybe our own retried request) created the target first: accept it if it is identical."""
    found = storage.stat(transfer.target)
    if found is not None and matches(storage, found, transfer.entry):
        return found
    raise PublishInProgress(
        f"{transfer.target} was written by another writer while this run published it; "
        "two runs are publishing the same version — let one finish, then rerun"
    )


def _verify(storage: Storage, transfer: Transfer, info: ObjectInfo) -> None:
    """The object must have the manifest's size and CRC32C; a wrong one is removed before raising."""
    if matches(storage, info, transfer.entry):
        return
    storage.delete(transfer.target, if_generation_match=info.generation)
    raise ChecksumMismatch(
        f"{transfer.target} holds {info.size} bytes with crc32c {info.crc32c}; the manifest says "
        f"{transfer.entry.size} bytes with crc32c {transfer.entry.crc32c} (was {transfer.source} changed?)"
    )


class _Meter:
    """Counts one transfer's bytes into the shared progress once, however many times it is restarted."""

    def __init__(self, progress: Progress | None) -> None:
        self._progress, self._reported = progress, 0

    def attempt(self) -> Callable[[int], None] | None:
        if self._progress is None:
            return None
        sent = 0

        def add(count: int) -> None:
            nonlocal sent
            sent += count
            if sent > self._reported:
                self._progress.add_bytes(sent - self._reported)  # type: ignore[union-attr]
                self._reported = sent

        return add
