"""The version number a forced republish takes when its own number already holds other content.

A published version may be serving (labelled, listed in the model server config, or the highest under
TF Serving's default ``latest`` policy), and TF Serving keeps serving a version while its files are
there. So ``force`` never replaces one in place: the new content gets a **fresh number, higher than
every number in use at the destination** — a numbered folder of any graph, a commit marker, a lock, a
building folder — and the old version stays exactly as it was (retention retires it like any other).

Idempotent: a rerun of the same forced publication takes the number it took before — a version above
the requested one whose commit marker names the same content (already published: 0 bytes move), or the
highest number in use when it is unmarked and everything in it is a file of this export (a killed
attempt: resumed). Anything else gets the next number; an abandoned attempt's folder is collected by
retention.
"""

from __future__ import annotations

from collections.abc import Mapping

from components.artifacts import FileEntry
from components.layout import (
    BOOKKEEPING,
    BUILDING_PATH,
    LEASE_SUFFIX,
    PUBLISHED_SUFFIX,
    TEMP_PREFIX,
    version_of,
)
from components.publish.layout import (
    VERSION_PATTERN,
    Layout,
    building_dir,
    marker_uri,
    version_dir,
)
from components.publish.marker import read_marker
from components.storage import Storage
from components.transfer.pool import matches


def versions_in_use(storage: Storage, base: str, graphs: tuple[str | None, ...]) -> set[int]:
    """Every version number anything at ``base`` uses: numbered folders (of each graph of a set),
    commit markers, locks and building folders."""
    names: list[str] = []
    for graph in graphs:
        names += storage.list_names(storage.join(base, graph) if graph else base)
    for name in storage.list_names(storage.join(base, BOOKKEEPING)):
        version = version_of(name, PUBLISHED_SUFFIX) or version_of(name, LEASE_SUFFIX)
        if version is not None:
            names.append(version)
    building = storage.join(base, BUILDING_PATH)
    for name in storage.list_names(building):
        names += [name] if VERSION_PATTERN.match(name) else storage.list_names(storage.join(building, name))
    return {int(n) for n in names if VERSION_PATTERN.match(n)}


def fresh_version(
    storage: Storage,
    layout: Layout,
    content: Mapping[str, str | None],
    files: Mapping[str | None, tuple[FileEntry, ...]],
) -> str:
    """The number to publish ``content`` (graph name or "" -> manifest CRC32C; ``files`` per graph) under,
    now that ``layout.version`` holds other content."""
    requested = int(layout.version)
    in_use = versions_in_use(storage, layout.base, layout.graphs)
    above = sorted((v for v in in_use if v > requested), reverse=True)
    for version in above:
        marker = read_marker(storage, marker_uri(storage, layout.base, str(version)))
        if marker is not None and marker.content == dict(content):
            return str(version)  # this publication, done before
    if above and _killed_attempt_of_ours(storage, layout, str(above[0]), files):
        return str(above[0])
    return str(max(in_use | {requested}) + 1)


def _killed_attempt_of_ours(
    storage: Storage, layout: Layout, version: str, files: Mapping[str | None, tuple[FileEntry, ...]]
) -> bool:
    """Unmarked, and every object of its version and building folders is one of our files (at least one
    is there): an attempt of this publication that stopped before its marker."""
    if storage.stat(marker_uri(storage, layout.base, version)) is not None:
        return False
    found = 0
    for graph, entries in files.items():
        by_path = {e.path: e for e in entries}
        for folder in (version_dir(storage, layout.base, version, graph), building_dir(storage, layout.base, version, graph)):
            root = folder.rstrip("/")
            for info in storage.list(root):
                relative = info.uri[len(root) + 1 :]
                if relative.rsplit("/", 1)[-1].startswith(TEMP_PREFIX):
                    continue  # a killed writer's temp file: the publish removes it
                entry = by_path.get(relative)
                if entry is None or not matches(storage, info, entry):
                    return False
                found += 1
    return found > 0
