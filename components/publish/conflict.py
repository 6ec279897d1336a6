"""A version number that already holds other content (protocol.py, steps 2 and 4, and *Forced republish*):
never rewritten in place — refused with ``VersionConflict``, or with ``force`` published under a fresh,
higher number (which one: fresh_version.py)."""

from __future__ import annotations

import logging

from components.layout import GRAPH_FILES
from components.publish.attempt import Attempt, GraphSource, content_of
from components.publish.errors import VersionConflict
from components.publish.fresh_version import fresh_version
from components.publish.layout import Layout, layout_for, marker_uri
from components.publish.marker import CommitMarker, read_marker
from components.storage import ObjectInfo, Storage
from components.transfer.pool import matches

log = logging.getLogger(__name__)

FRESH_ATTEMPTS = 4  # the requested number, then fresh ones (another run may take a fresh one first)


class NumberTaken(Exception):
    """``force``: the requested number holds other content; the attempt stops (lock released, nothing
    written) and ``publish_version`` takes a fresh number."""


def refuse_other_content(
    run: Attempt,
    final: dict[str | None, dict[str, ObjectInfo]],
    existing_marker: CommitMarker | None,
    force: bool,
) -> None:
    """A version with other content (a differing marker or loadable graph file) is never rewritten in
    place: ``VersionConflict``, or with ``force`` a fresh number (``NumberTaken``)."""
    different = []
    for graph in run.graphs:
        found = final[graph.name]
        for entry in graph.files:
            if entry.path in GRAPH_FILES and entry.path in found and not matches(run.storage, found[entry.path], entry):
                different.append(run.layout.graph_dir(graph.name))
    marker_differs = existing_marker is not None and not run.marker_matches(existing_marker)
    if not different and not marker_differs:
        return
    if force:
        raise NumberTaken
    what = ", ".join(different) if different else f"marker {run.layout.marker}"
    raise _conflict(run.layout, what)


def _conflict(layout: Layout, what: str) -> VersionConflict:
    return VersionConflict(
        f"version {layout.version} of {layout.servable} is already published with different "
        f"content ({what}); a published version is never rewritten in place — publish a new version, "
        "or rerun with force to publish this content under a fresh, higher version number"
    )


def dry_run_layout(
    storage: Storage, layout: Layout, graphs: tuple[GraphSource, ...], force: bool
) -> tuple[Layout, bool]:
    """A dry run's answer, read-only (no lock, no write): the layout a real run would publish under and
    whether it would find this content already published there. Other content at the number is refused
    as the real run refuses it, or with ``force`` gets the fresh number the real run would take."""
    content = content_of(graphs)
    marker = read_marker(storage, layout.marker)
    if marker is not None:
        if marker.content == content:
            return layout, True
        taken = f"marker {layout.marker}"
    else:
        taken = ", ".join(
            layout.graph_dir(graph.name)
            for graph in graphs
            for entry in graph.files
            if entry.path in GRAPH_FILES
            and (info := storage.stat(storage.join(layout.graph_dir(graph.name), entry.path))) is not None
            and not matches(storage, info, entry)
        )
        if not taken:
            return layout, False
    if not force:
        raise _conflict(layout, taken)
    fresh = fresh_version(storage, layout, content, {g.name: g.files for g in graphs})
    found = read_marker(storage, marker_uri(storage, layout.base, fresh))
    return layout_for(storage, layout.destination, layout.servable, fresh, layout.graphs), found is not None


def fresh_layout(storage: Storage, layout: Layout, graphs: tuple[GraphSource, ...]) -> Layout:
    """``force``, after ``NumberTaken``: the layout of the fresh number this content is published under."""
    fresh = fresh_version(storage, layout, content_of(graphs), {g.name: g.files for g in graphs})
    log.warning(
        "force: %s version %s holds other content and may be serving; it stays as it is and this "
        "content is published as version %s",
        layout.base, layout.version, fresh,
    )
    return layout_for(storage, layout.destination, layout.servable, fresh, layout.graphs)


def fresh_numbers_exhausted(layout: Layout) -> VersionConflict:
    return VersionConflict(
        f"force: every fresh version number tried for {layout.base} was taken by another run meanwhile "
        f"(last: {layout.version}); rerun to take the next one"
    )
