"""Step 4 of the publish protocol (protocol.py): where each graph is assembled, and what is already there
to reuse — this version's folders, and identical objects elsewhere (the dedupe index)."""

from __future__ import annotations

import dataclasses
import logging
import posixpath
from concurrent.futures import ThreadPoolExecutor

from components.layout import GRAPH_FILES, TEMP_PREFIX
from components.publish.attempt import Attempt
from components.storage import ObjectInfo, Storage, scheme_of
from components.transfer.dedupe import DedupeIndex, build_index

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Inventory:
    """What each graph's version folder and building folder hold, by relative path."""

    final: dict[str | None, dict[str, ObjectInfo]]
    building: dict[str | None, dict[str, ObjectInfo]]


def choose_work_folders(run: Attempt) -> None:
    """Local disk: a graph already loadable at its version folder is repaired in place (it is visible
    anyway); any other numbered folder of this version (a partial one left by an older exportflow or
    another tool) is moved into the building folder at once, so TF Serving stops seeing it."""
    if run.renamer is None:
        return
    run.in_place = set()
    for graph in run.graphs:
        final, building = run.layout.graph_dir(graph.name), run.layout.building_dir(graph.name)
        if any(run.storage.stat(run.storage.join(final, name)) for name in GRAPH_FILES):
            run.in_place.add(graph.name)
        elif run.storage.list_names(final):
            if run.storage.list_names(building):  # a newer attempt is already under way there
                run.storage.delete_prefix(final)
                log.warning("removed %s: a numbered folder without saved_model.pb", final)
            else:
                run.renamer.rename_folder(final, building)
                log.warning("moved %s (a numbered folder without saved_model.pb) to %s", final, building)


def take_inventory(run: Attempt) -> Inventory:
    """Objects in every folder this attempt may reuse, by relative path, listed concurrently; leftover
    temp files of a killed writer are removed."""
    wanted: list[tuple[str, str | None, str]] = []
    for graph in run.graphs:
        if not run.renames or graph.name in run.in_place:
            wanted.append(("final", graph.name, run.layout.graph_dir(graph.name)))
        if graph.name not in run.in_place and not run.direct:  # direct: nothing is built elsewhere
            wanted.append(("building", graph.name, run.layout.building_dir(graph.name)))
    with ThreadPoolExecutor(max_workers=len(wanted), thread_name_prefix="publish-inventory") as pool:
        listed = list(pool.map(lambda w: _list_folder(run.storage, w[2]), wanted))
    found: dict[str, dict[str | None, dict[str, ObjectInfo]]] = {"final": {}, "building": {}}
    for graph in run.graphs:
        found["final"][graph.name], found["building"][graph.name] = {}, {}
    for (kind, graph_name, _), objects in zip(wanted, listed, strict=True):
        found[kind][graph_name] = objects
    return Inventory(found["final"], found["building"])


def _list_folder(storage: Storage, folder: str) -> dict[str, ObjectInfo]:
    root = folder.rstrip("/")
    found: dict[str, ObjectInfo] = {}
    for info in storage.list(root):
        relative = info.uri[len(root) + 1 :]
        if posixpath.basename(relative).startswith(TEMP_PREFIX):
            storage.delete(info.uri, if_generation_match=info.generation)  # a killed writer's
            continue
        found[relative] = info
    return found


def dedupe_index(run: Attempt, checkpoint_uri: str | None) -> DedupeIndex | None:
    """Identical objects of other versions and the checkpoint, to copy instead of upload (never this
    version's own folders, so it can be built while they are inventoried)."""
    if scheme_of(run.layout.destination) == "file" and run.settings.link_local:
        return None  # the export's own files are linked: nothing cheaper to find
    return build_index(
        run.storage,
        servable_base=run.layout.base,
        exclude=[run.layout.graph_dir(g.name) for g in run.graphs],
        destination_scheme=scheme_of(run.layout.destination),
        checkpoint_uri=checkpoint_uri,
    )
