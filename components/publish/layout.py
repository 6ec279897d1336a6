"""Where every piece of a published version lives at the destination, and the checks that keep it there.

The names and the multi-graph layout are components/layout.py's (the served form of a set; import
on-disk names from there); this module joins them to a destination with its storage and checks them.
Layout under ``<destination>/<servable>/`` (the servable's *base*)::

    <version>/...                         a single-graph version (TF Serving's model base path is <base>)
    <graph>/<version>/...                 a multi-graph set (DistributedExporter): each graph is its own
                                          TF Serving model with base path <base>/<graph>
    .exportflow/<version>.lease.json      the version lock: who is publishing (or removing) it, until when
    .exportflow/<version>.published.json  the commit marker: the version is complete and verified
    .exportflow/building/[<graph>/]<version>/...  a version being assembled, out of TF Serving's sight
    .exportflow/current                   optional: the version serving uses now (retention keeps it)

TF Serving takes every integer-named child of a model base path as a version and ignores ``.exportflow``:
that is why bookkeeping and half-built versions live there. Names are checked before any write so a
version can never reach outside the configured destination.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable

from components.layout import BOOKKEEPING, ENTRY_GRAPH, building_path, lock_path, marker_path, served_path
from components.publish.errors import DestinationError
from components.storage import InvalidURI, Storage, scheme_of

SEGMENT_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")  # one folder name
VERSION_PATTERN = re.compile(r"^[0-9]{1,19}$")  # what TF Serving loads as a version


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where every piece of one version goes."""

    storage: Storage
    destination: str
    servable: str
    version: str
    graphs: tuple[str | None, ...]

    @property
    def base(self) -> str:
        return self.storage.join(self.destination, self.servable)

    def graph_dir(self, graph: str | None) -> str:
        return version_dir(self.storage, self.base, self.version, graph)

    def building_dir(self, graph: str | None) -> str:
        """Where a graph's version is assembled out of TF Serving's sight (same filesystem as its place)."""
        return building_dir(self.storage, self.base, self.version, graph)

    @property
    def primary_dir(self) -> str:
        """The version folder that stands for the set: the entry graph's, or the only one."""
        return self.graph_dir(ENTRY_GRAPH if ENTRY_GRAPH in self.graphs else self.graphs[0])

    @property
    def graph_uris(self) -> dict[str, str]:
        return {g or "": self.graph_dir(g) for g in self.graphs}

    @property
    def marker(self) -> str:
        return marker_uri(self.storage, self.base, self.version)

    @property
    def lock(self) -> str:
        return lock_uri(self.storage, self.base, self.version)


def marker_uri(storage: Storage, base: str, version: str) -> str:
    return storage.join(base, marker_path(version))


def lock_uri(storage: Storage, base: str, version: str) -> str:
    return storage.join(base, lock_path(version))


def version_dir(storage: Storage, base: str, version: str, graph: str | None) -> str:
    """Where TF Serving loads a graph's version from: ``<base>/[<graph>/]<version>``."""
    return storage.join(base, served_path(version, graph))


def building_dir(storage: Storage, base: str, version: str, graph: str | None) -> str:
    return storage.join(base, building_path(version, graph))


def check_segment(kind: str, value: str) -> str:
    if not isinstance(value, str) or not SEGMENT_PATTERN.match(value) or value in (".", ".."):
        raise DestinationError(
            f"{kind} {value!r} must be one folder name (letters, digits, '_', '-', '.'); "
            "a version may not reach outside the configured destination"
        )
    return value


def check_destination(storage: Storage, destination: str) -> None:
    """A well-formed destination: ``gs://<bucket>/<path>`` or an absolute local path."""
    scheme = scheme_of(destination)
    if scheme == "file":
        path = destination.removeprefix("file://")
        if not os.path.isabs(path):
            raise DestinationError(f"destination {destination!r} must be an absolute path or a gs:// URI")
        return
    if scheme == "gs":
        from components.storage.gcs import split_gcs_uri

        try:
            split_gcs_uri(destination)
        except InvalidURI as exc:
            raise DestinationError(f"destination {exc}") from exc


def layout_for(
    storage: Storage, destination: str, servable: str, version: str, graphs: Iterable[str | None]
) -> Layout:
    """Validated layout: every name one segment, the version an integer, every path inside ``destination``."""
    check_destination(storage, destination)
    check_segment("servable", servable)
    if not isinstance(version, str) or not VERSION_PATTERN.match(version):
        raise DestinationError(f"version {version!r} must be a non-negative integer (TF Serving loads only those)")
    names = tuple(graphs)
    for graph in names:
        if graph is not None:
            check_segment("graph", graph)
            if graph == BOOKKEEPING:
                raise DestinationError(f"graph name {graph!r} is reserved")
    if len(set(names)) != len(names) or (None in names and len(names) > 1):
        raise DestinationError(f"graph names {list(names)} must be distinct, or a single unnamed graph")
    layout = Layout(storage, destination, servable, version, names)
    root = storage.join(destination, "")  # normalised, with a trailing separator (file:// stripped)
    for target in [layout.marker, layout.lock, *(d for g in names for d in (layout.graph_dir(g), layout.building_dir(g)))]:
        if not target.startswith(root) or "/../" in target:
            raise DestinationError(f"{target} is outside the configured destination {destination}")
    return layout

