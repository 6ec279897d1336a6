"""One attempt at publishing one version: what it publishes, how, what it reports, and the state the
protocol's steps share (protocol.py says what the steps are and in which order they write)."""

from __future__ import annotations

import dataclasses
from typing import Literal, Protocol, cast

from components.artifacts import FileEntry
from components.layout import BUILDING_PATH, GRAPH_FILES, MANIFEST_PATH
from components.publish.layout import Layout
from components.publish.marker import CommitMarker
from components.storage import Storage
from components.transfer.lock import VersionLock
from components.transfer.pool import Observer, PublishEvent, TransferResult


@dataclasses.dataclass(frozen=True)
class GraphSource:
    """One graph to publish: its export folder and every file with size and CRC32C.

    ``name`` is None for a single-graph export. ``files`` include the manifest itself. ``local_dir`` is a
    local folder, or a staged folder on the destination's own object store (then every file is a
    server-side copy of it: ``components.transfer.pool.copy_source``).
    """

    name: str | None
    local_dir: str
    files: tuple[FileEntry, ...]

    @property
    def manifest_crc32c(self) -> str | None:
        return next((f.crc32c for f in self.files if f.path == MANIFEST_PATH), None)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


def content_of(graphs: tuple[GraphSource, ...]) -> dict[str, str | None]:
    """What a commit marker records as a version's content: graph name (or "") -> its manifest's CRC32C."""
    return {g.name or "": g.manifest_crc32c for g in graphs}


@dataclasses.dataclass(frozen=True)
class PublishSettings:
    parallelism: int = 8  # concurrent transfers
    # Server-side copies and deletes move no bytes through this process, so they could run wider than
    # ``parallelism`` (never narrower). 8 measured best against the emulator, whose listen backlog of 5
    # turns wider bursts into 1 s SYN retries; on real GCS, 16 or more would cut their round trips.
    metadata_parallelism: int = 8
    link_local: bool = True  # local destination: hard-link the export's files (copy across filesystems)
    lock_ttl: float = 120.0  # seconds a lock lives without renewal
    progress_every: float = 5.0  # seconds between progress log lines
    # Where a no-rename store (GCS) assembles a single-graph version (protocol.py, "Placement"):
    # "building" — out of sight under .exportflow/building, then copied into place (safe under any TF
    # Serving version policy); "direct" — straight into the version folder, safe only when hosts load
    # just the versions exportflow lists after their commit marker (serving.mode: labels). Local disk
    # always renames; a multi-graph set is always built (sets are never listed, see serving.control).
    placement: Literal["building", "direct"] = "building"


@dataclasses.dataclass(frozen=True)
class PublishOutcome:
    uri: str  # the (entry) graph's version directory
    graph_uris: dict[str, str]
    marker_uri: str
    files: int
    bytes_total: int
    bytes_moved: int  # through this process
    bytes_copied: int  # duplicated by the store (server-side copy, hard link)
    already_published: bool
    bytes_linked: int = 0  # the part of bytes_copied that was hard-linked
    version: str = ""  # the number published: the requested one, or a forced republish's fresh one


class RenamesFolders(Protocol):
    """A store that can move a whole folder into place in one step (local disk). Its versions are built
    under ``.exportflow/building/`` and renamed into place; stores without it (GCS) place objects."""

    def rename_folder(self, src_uri: str, dst_uri: str) -> None: ...


def folder_renamer(storage: Storage) -> RenamesFolders | None:
    """``storage`` as a store that renames folders, or None (then objects are copied into place)."""
    return cast(RenamesFolders, storage) if callable(getattr(storage, "rename_folder", None)) else None


class Attempt:
    """The state one attempt's steps share: ``lock`` once taken (step 3), ``in_place`` as the inventory
    chose it (step 4), ``loadable_written`` once a graph file may be visible (nothing is rolled back
    after that)."""

    def __init__(
        self,
        storage: Storage,
        layout: Layout,
        graphs: tuple[GraphSource, ...],
        settings: PublishSettings,
        observer: Observer | None,
    ) -> None:
        self.storage, self.layout, self.graphs, self.settings = storage, layout, graphs, settings
        self.observer = observer
        self.lock: VersionLock | None = None
        self.renamer = folder_renamer(storage)
        self.renames = self.renamer is not None
        self.in_place: set[str | None] = set()  # local disk: graphs already loadable, repaired where they are
        self.loadable_written = False
        # Straight into the version folder (no building folder, no copies into place): see PublishSettings.
        self.direct = not self.renames and settings.placement == "direct" and [g.name for g in graphs] == [None]

    @property
    def metadata_parallelism(self) -> int:
        return max(self.settings.parallelism, self.settings.metadata_parallelism)

    def notify(self, kind: str, uri: str, size: int = 0) -> None:
        if self.observer is not None:
            self.observer(PublishEvent(kind, uri, size))

    def marker_matches(self, marker: CommitMarker) -> bool:
        return marker.content == content_of(self.graphs)

    # ------------------------------------------------------------------------------------ folders
    def graph_names(self) -> list[str | None]:
        return [g.name for g in self.graphs]

    def final_dirs(self) -> dict[str | None, str]:
        return {g.name: self.layout.graph_dir(g.name) for g in self.graphs}

    def work_dir(self, graph: str | None) -> str:
        """Where a graph's data goes first: its building folder, or (local disk, already loadable) the
        version folder itself."""
        if graph in self.in_place:
            return self.layout.graph_dir(graph)
        return self.layout.building_dir(graph)

    def assembly_dirs(self) -> dict[str | None, str]:
        """Where a graph's complete set of files is assembled before its graph file is written."""
        if self.renames:
            return {g.name: self.work_dir(g.name) for g in self.graphs}
        return self.final_dirs()

    def in_building(self, uri: str) -> bool:
        return uri.startswith(self.storage.join(self.layout.base, BUILDING_PATH, ""))

    def targets(self, *, graph_files: bool) -> list[str]:
        """Every object of the version where it is assembled: its graph files, or all the others."""
        dirs = self.assembly_dirs()
        return [
            self.storage.join(dirs[g.name], f.path)
            for g in self.graphs
            for f in g.files
            if (f.path in GRAPH_FILES) == graph_files
        ]

    def outcome(self, results: list[TransferResult], already: bool) -> PublishOutcome:
        return PublishOutcome(
            uri=self.layout.primary_dir,
            graph_uris=self.layout.graph_uris,
            marker_uri=self.layout.marker,
            files=sum(len(g.files) for g in self.graphs),
            bytes_total=sum(g.total_bytes for g in self.graphs),
            bytes_moved=sum(r.bytes_moved for r in results),
            bytes_copied=sum(r.bytes_copied for r in results),
            bytes_linked=sum(r.bytes_linked for r in results),
            already_published=already,
            version=self.layout.version,
        )
