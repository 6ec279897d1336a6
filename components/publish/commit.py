"""Steps 6-7 of the publish protocol (protocol.py) from the graph files on: the ready signals (entry graph
last), the renames into place (local disk), the building objects removed, the commit marker; and what a
failed attempt rolls back."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from components.layout import GRAPH_FILES
from components.ledger.ledger import utc_now
from components.publish.attempt import Attempt
from components.publish.errors import ChecksumMismatch, PublishInProgress
from components.publish.inventory import Inventory
from components.publish.marker import CommitMarker, MarkedExport, MarkedGraph, write_marker
from components.publish.plan import Plan
from components.storage import PreconditionFailed, StorageError, StorageFull, UploadChecksumMismatch
from components.transfer.pool import TransferResult, run_transfers
from components.transfer.progress import Progress

log = logging.getLogger(__name__)

_ROLLBACK_ON = (StorageFull, UploadChecksumMismatch, ChecksumMismatch)


def write_graph_files(run: Attempt, plan: Plan, progress: Progress) -> list[TransferResult]:
    """``saved_model.pb`` of each graph, one at a time in graph order (the entry graph last), then flushed.
    On no-rename stores each closes its graph's window; on local disk they go to the building folder."""
    results: list[TransferResult] = []
    for transfer in plan.graph_files:
        run.loadable_written = run.loadable_written or not run.in_building(transfer.target)
        results += run_transfers(run.storage, [transfer], parallelism=1, progress=progress, observer=run.observer)
    run.storage.sync(run.targets(graph_files=True))
    return results


def rename_into_place(run: Attempt, plan: Plan) -> None:
    """Local disk, the commit: each graph's building folder becomes its version folder, the entry graph
    last; an existing non-empty folder is never replaced."""
    for building, final in plan.renames:
        run.loadable_written = True
        try:
            run.renamer.rename_folder(building, final)  # type: ignore[union-attr]
        except PreconditionFailed as exc:
            raise PublishInProgress(
                f"{final} appeared while this run built it in {building}; is another tool writing there? "
                "rerun to find out"
            ) from exc
        run.notify("renamed", final)


def remove_building(run: Attempt, inventory: Inventory, results: list[TransferResult]) -> None:
    """No-rename stores: the building objects were copied into place; delete them (in parallel, by
    generation). A failure only leaves bookkeeping behind, which retention collects."""
    if run.renames:
        return
    staged = {i.uri: i.generation for objects in inventory.building.values() for i in objects.values()}
    staged.update({r.info.uri: r.info.generation for r in results if run.in_building(r.info.uri)})
    if not staged:
        return
    workers = max(1, min(run.metadata_parallelism, len(staged)))
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="publish-clean") as pool:
            list(pool.map(lambda item: run.storage.delete(item[0], if_generation_match=item[1]), staged.items()))
    except StorageError as exc:
        log.warning("could not remove the building objects of %s version %s: %s", run.layout.base, run.layout.version, exc)


def write_commit_marker(run: Attempt, export: MarkedExport | None) -> None:
    """The commit marker (create-only): the version is complete and verified."""
    layout = run.layout
    marker = CommitMarker(
        servable=layout.servable,
        version=layout.version,
        graphs=tuple(
            MarkedGraph(g.name, layout.graph_dir(g.name), g.manifest_crc32c, len(g.files), g.total_bytes)
            for g in run.graphs
        ),
        published_at=utc_now(),  # UTC, to the second, as every ledger time
        run=run.lock.owner if run.lock else None,
        export=export,
    )
    info = write_marker(run.storage, layout.marker, marker)
    run.notify("marker", layout.marker, info.size)


def after_failure(run: Attempt, exc: BaseException) -> None:
    """Release the lock. After a full disk or bad bytes, and before any graph file became visible,
    also remove the partial version (frees the disk; nothing of it was loadable). Other failures —
    network, a lost lock, a conflict — keep what is there for the rerun to reuse."""
    storage = run.storage
    try:
        if isinstance(exc, _ROLLBACK_ON) and not run.loadable_written:
            for graph in run.graphs:
                if graph.name not in run.in_place:
                    storage.delete_prefix(run.layout.building_dir(graph.name))
                final = run.layout.graph_dir(graph.name)
                if not any(storage.stat(storage.join(final, f)) for f in GRAPH_FILES):
                    storage.delete_prefix(final)
        if run.lock is not None:
            run.lock.release()
    except StorageError as cleanup_error:
        log.warning("cleanup after a failed publish of %s failed too: %s", run.layout.base, cleanup_error)
