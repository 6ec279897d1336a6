"""The writes of one attempt, phase by phase (protocol.py, steps 5-7), from what the inventory found:
only objects that are missing or wrong are written, each from the cheapest source (a hard link, a
server-side copy of a staged or identical object, or an upload)."""

from __future__ import annotations

import dataclasses
import os

from components.artifacts import FileEntry
from components.layout import GRAPH_FILES, graph_order
from components.publish.attempt import Attempt
from components.publish.inventory import Inventory
from components.storage import ObjectInfo, Storage, scheme_of
from components.transfer.dedupe import DedupeIndex
from components.transfer.pool import Transfer, copy_source, matches


@dataclasses.dataclass(frozen=True)
class Plan:
    """The writes of one attempt, phase by phase (see the protocol's steps 5-7)."""

    uploads: list[Transfer]  # data and manifests into the building folder (direct placement or a loadable
    # folder being repaired: the version folder)
    placements: list[Transfer]  # no-rename stores: server-side copies into the version folder
    graph_files: list[Transfer]  # saved_model.pb, in graph order: the entry graph last
    renames: list[tuple[str, str]]  # local disk: building folder -> version folder, in graph order
    from_building: frozenset[str]  # placement targets whose bytes were already counted as uploads

    @property
    def counted(self) -> list[Transfer]:
        """The transfers that make bytes appear (a placement of our own upload is not counted twice)."""
        return self.uploads + [t for t in self.placements if t.target not in self.from_building] + self.graph_files


def plan_writes(run: Attempt, inventory: Inventory, dedupe: DedupeIndex | None) -> Plan:
    """Local disk: every missing file into the work folder, then a rename. No-rename stores: bytes that
    must be uploaded go to the building folder, every missing object is then copied into the version
    folder by the store (from there, or from an identical object elsewhere), and the graph file is
    uploaded straight to its place; with direct placement every object is uploaded or copied straight
    to its place (no placements)."""
    storage, layout = run.storage, run.layout
    uploads: list[Transfer] = []
    placements: list[Transfer] = []
    graph_files: list[Transfer] = []
    from_building: set[str] = set()
    order = graph_order(run.graph_names())
    for graph in sorted(run.graphs, key=lambda g: order.index(g.name)):
        final, building = inventory.final[graph.name], inventory.building[graph.name]
        final_dir, building_dir = layout.graph_dir(graph.name), layout.building_dir(graph.name)
        work = run.work_dir(graph.name)
        link = run.renames and scheme_of(graph.local_dir) == "file" and _can_link(run, graph.local_dir, work)
        for entry in graph.files:
            source = os.path.join(graph.local_dir, entry.path)
            if run.renames:  # everything into the work folder
                existing = (final if graph.name in run.in_place else building).get(entry.path)
                if existing is not None and matches(storage, existing, entry):
                    continue
                copy_from = copy_source(source, layout.destination, link) or (
                    dedupe.find(entry) if dedupe is not None else None
                )
                transfer = _transfer(storage, entry, source, work, copy_from, existing)
                (graph_files if entry.path in GRAPH_FILES else uploads).append(transfer)
                continue
            placed = final.get(entry.path)
            if placed is not None and matches(storage, placed, entry):
                continue
            # the staged object itself when staging is on this store, else an identical published one
            copy_from = copy_source(source, layout.destination, False) or (
                dedupe.find(entry) if dedupe is not None else None
            )
            if entry.path in GRAPH_FILES:  # the ready signal goes straight to its place, last
                graph_files.append(_transfer(storage, entry, source, final_dir, copy_from, placed))
                continue
            if run.direct:  # straight into place: no host loads this version before its marker
                uploads.append(_transfer(storage, entry, source, final_dir, copy_from, placed))
                continue
            if copy_from is None:  # our own bytes: uploaded out of sight first (unless already there)
                staged = building.get(entry.path)
                if staged is None or not matches(storage, staged, entry):
                    uploads.append(_transfer(storage, entry, source, building_dir, None, staged))
                copy_from = storage.join(building_dir, entry.path)
                from_building.add(storage.join(final_dir, entry.path))
            placements.append(_transfer(storage, entry, source, final_dir, copy_from, placed))
    renames = [(layout.building_dir(g), layout.graph_dir(g)) for g in order if run.renames and g not in run.in_place]
    return Plan(uploads, placements, graph_files, renames, frozenset(from_building))


def _transfer(
    storage: Storage, entry: FileEntry, source: str, folder: str, copy_from: str | None, existing: ObjectInfo | None
) -> Transfer:
    """Make ``<folder>/<entry.path>``; a wrong object already there is replaced by generation."""
    return Transfer(
        entry=entry,
        source=source,
        target=storage.join(folder, entry.path),
        copy_from=copy_from,
        replace_generation=(existing.generation or 0) if existing is not None else 0,
    )


def _can_link(run: Attempt, local_dir: str, target: str) -> bool:
    """Hard links: a local destination on the export's filesystem, unless turned off."""
    if scheme_of(run.layout.destination) != "file" or not run.settings.link_local:
        return False
    folder = target.removeprefix("file://")
    while not os.path.exists(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    return os.stat(folder).st_dev == os.stat(local_dir).st_dev
