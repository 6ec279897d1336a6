"""Steps 5-6 of the publish protocol (protocol.py) up to the graph files: data and manifests written out
of sight, made durable, placed (no-rename stores), and verified against the manifests."""

from __future__ import annotations

from components.artifacts import FileEntry
from components.layout import GRAPH_FILES
from components.publish.attempt import Attempt
from components.publish.errors import PublishError
from components.publish.inventory import Inventory
from components.publish.plan import Plan
from components.storage import ObjectInfo
from components.transfer.pool import TransferResult, run_transfers
from components.transfer.progress import Progress


def transfer_and_place(run: Attempt, plan: Plan, progress: Progress) -> tuple[list[TransferResult], list[TransferResult]]:
    """Upload (or link, or copy) the data and manifests, make them durable, then (no-rename stores) copy
    every missing object into the version folder. Returns the results counted for the outcome and the
    placements (what the store answered for each object it made in the version folder: the copies into
    place, or with direct placement every write)."""
    storage, observer = run.storage, run.observer
    results = run_transfers(storage, plan.uploads, parallelism=run.settings.parallelism, progress=progress, observer=observer)
    storage.sync(run.targets(graph_files=False))  # durable before anything makes them loadable
    # No-rename stores: from the first placement on, the version folder holds objects but no graph
    # file yet — the window the protocol documents. Only server-side copies happen inside it.
    placed = run_transfers(storage, plan.placements, parallelism=run.metadata_parallelism, observer=observer)
    for result in placed:  # a copy of our own upload is not counted twice (a fallback upload is)
        if result.transfer.target not in plan.from_building or result.method == "uploaded":
            results.append(result)
            progress.object_done(result.method, result.info.size)
    # Direct placement: the uploads (and store copies) themselves made the version folder's objects.
    return results, results if run.direct else placed


def verify_assembled(run: Attempt, inventory: Inventory, placed: list[TransferResult]) -> None:
    """Every non-graph object is where the graph files will make it loadable, as the manifest says: local
    disk by one listing of each work folder, no-rename stores by what the store answered."""
    if run.renames:
        _verify_by_listing(run)
    else:
        _verify_from_responses(run, inventory, placed)


def problems(run: Attempt, dirs: dict[str | None, str], *, graph_files: bool) -> list[str]:
    """What ``dirs`` (a folder per graph) lack now, by one listing each: missing objects, or objects
    whose size (or CRC32C, where the store lists it) differs from the manifest. ``graph_files=False``
    leaves ``saved_model.pb`` out."""
    found_problems = []
    for graph in run.graphs:
        root = dirs[graph.name].rstrip("/")
        found = {info.uri[len(root) + 1 :]: info for info in run.storage.list(root)}
        for entry in graph.files:
            if entry.path in GRAPH_FILES and not graph_files:
                continue
            info = found.get(entry.path)
            if info is None:
                found_problems.append(f"{root}/{entry.path} is missing")
            elif _differs(info, entry):
                found_problems.append(f"{root}/{entry.path} differs from the manifest")
    return found_problems


def _verify_from_responses(run: Attempt, inventory: Inventory, placed: list[TransferResult]) -> None:
    """No-rename stores: every non-graph object of each version folder has the manifest's size and
    CRC32C as the store reported it — in the response to the copy or upload that made it, or in the
    inventory listing that found it already in place — all under this run's lock (retention and other
    publishers take it too). Nothing is listed again."""
    made = {r.transfer.target: r.info for r in placed}
    found_problems = []
    for graph in run.graphs:
        folder = run.layout.graph_dir(graph.name)
        for entry in graph.files:
            if entry.path in GRAPH_FILES:
                continue
            uri = run.storage.join(folder, entry.path)
            info = made.get(uri) or inventory.final[graph.name].get(entry.path)
            if info is None:
                found_problems.append(f"{uri} was never placed")
            elif _differs(info, entry):
                found_problems.append(f"{uri} differs from the manifest")
    if found_problems:
        raise PublishError(f"{'; '.join(found_problems[:3])}; saved_model.pb was not written")


def _verify_by_listing(run: Attempt) -> None:
    """Every non-graph file is still in place (retention or another writer could have interfered)."""
    found_problems = problems(run, run.assembly_dirs(), graph_files=False)
    if found_problems:
        raise PublishError(
            f"{'; '.join(found_problems[:3])} after it was verified — is retention or another run changing "
            "this version? saved_model.pb was not written"
        )


def _differs(info: ObjectInfo, entry: FileEntry) -> bool:
    """Not the manifest's bytes by what the store said: another size, or a CRC32C it listed that differs
    (nothing is read: ``transfer.pool.matches`` would compute a missing CRC32C)."""
    return info.size != entry.size or (info.crc32c is not None and info.crc32c != entry.crc32c)
