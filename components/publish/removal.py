"""Taking versions away at the destination, under the version lock: ``unpublish`` (retention retires a
version) and ``collect_abandoned_builds`` (a killed run's building folder nobody resumes). The order of
removal keeps the protocol's promise (protocol.py): nothing half-present is ever loadable."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from components.layout import BUILDING_PATH, GRAPH_FILES, graph_order
from components.publish.errors import PublishInProgress
from components.publish.layout import VERSION_PATTERN, building_dir, lock_uri, marker_uri, version_dir
from components.storage import Storage
from components.transfer.lock import VersionLock

log = logging.getLogger(__name__)


def unpublish(storage: Storage, base: str, version: str, graphs: Iterable[str | None]) -> int:
    """Make a version unloadable, then remove it: ``saved_model.pb`` (entry graph first), every other
    object, the commit marker last. Interrupted, it leaves a marked version without graph files, which
    retention recognises as not loadable and finishes. The caller holds the version's lock."""
    names = list(graphs)
    dirs = {g: version_dir(storage, base, version, g) for g in names}
    removed = 0
    for graph in reversed(graph_order(names)):
        for name in GRAPH_FILES:
            uri = storage.join(dirs[graph], name)
            info = storage.stat(uri)
            if info is not None:
                storage.delete(uri, if_generation_match=info.generation)
                removed += 1
    for graph in names:
        removed += storage.delete_prefix(dirs[graph])
        storage.delete_prefix(building_dir(storage, base, version, graph))  # a half-built rebuild, if any
    marker = storage.stat(marker_uri(storage, base, version))
    if marker is not None:
        storage.delete(marker.uri, if_generation_match=marker.generation)
        removed += 1
    return removed


def collect_abandoned_builds(storage: Storage, base: str, ttl: float = 300.0) -> list[str]:
    """Remove the building folders that no live run owns (a killed run's half-built version), each under
    the version's lock so a publisher starting now waits or fails fast. Returns the versions collected."""
    root = storage.join(base, BUILDING_PATH)
    graphs_of: dict[str, list[str | None]] = {}
    for name in storage.list_names(root):
        if VERSION_PATTERN.match(name):
            graphs_of.setdefault(name, []).append(None)
        else:
            for child in storage.list_names(storage.join(root, name)):
                if VERSION_PATTERN.match(child):
                    graphs_of.setdefault(child, []).append(name)
    collected = []
    for version, graphs in sorted(graphs_of.items()):
        try:
            lock = VersionLock.acquire(storage, lock_uri(storage, base, version), ttl, "retire")
        except PublishInProgress:
            continue  # being built right now
        try:
            for graph in graphs:
                storage.delete_prefix(building_dir(storage, base, version, graph))
        finally:
            lock.release()
        log.info("removed the abandoned building folder of %s version %s", base, version)
        collected.append(version)
    return collected
