"""The publish protocol: how a version appears at the destination so no serving host sees it partially.

Layout under ``<destination>/<servable>/`` (the servable's *base*)::

    <version>/...                         a single-graph version (TF Serving's model base path is <base>)
    <graph>/<version>/...                 a multi-graph set (DistributedExporter): each graph is its own
                                          TF Serving model with base path <base>/<graph>
    .exportflow/<version>.lease.json      who is publishing (or removing) the version, until when
    .exportflow/<version>.published.json  the commit marker: the version is complete and verified
    .exportflow/current                   optional: the version serving uses now (retention keeps it)

TF Serving loads an integer-named directory as soon as it holds ``saved_model.pb``; it ignores
``.exportflow``. GCS has no atomic rename of a prefix, so the protocol makes ``saved_model.pb`` the
ready signal and writes it only when everything else is there and verified:

1. **Check inputs** (before any write): names are single path segments, the version is an integer, the
   target is inside the configured destination, every file of the export is present with the size its
   manifest says.
2. **Already published?** If the commit marker names this exact content (the CRC32C of every graph's
   manifest) and every object is present with the manifest's size and CRC32C (as GCS lists them; on
   local disk the size — each file's CRC32C was checked when it was written), stop: zero bytes moved.
3. **Lease.** Create ``<version>.lease.json`` with ``if_generation_match=0``. If it exists and is live
   (not expired; on this host, its process still runs) another run owns the version:
   ``PublishInProgress``. A stale lease (a killed run) is taken over by compare-and-swap. A heartbeat
   thread renews it; it is checked again before step 6.
4. **Inventory.** List the version directories (the dedupe index of other versions is listed at the
   same time). Leftover ``.tmp-*`` files of a killed run are removed.
   A ``saved_model.pb`` that differs from ours means a different version of that number is loadable
   there: ``VersionConflict`` (with ``force``, it is first made unloadable — graph files, then marker —
   and rebuilt). Objects that already match the manifest are kept; wrong ones are replaced with a
   precondition on their generation.
5. **Data, then manifests.** Every file except ``saved_model.pb`` and the manifest, on a bounded pool,
   largest first (so one big shard does not start last and run alone): server-side copy when an
   identical object exists (``dedupe``), else upload; each verified by size and CRC32C against the
   manifest. Then each graph's ``assets.extra/export_manifest.json``.
6. **Flush, verify, then graphs.** Make every object durable (local disk: each file is flushed by the
   worker that wrote it, then the folders; GCS acknowledges only durable writes). List every version
   directory again; every file must be there with the manifest's size (and CRC32C where the store
   lists it). Then ``saved_model.pb`` of each graph: the *other* graphs (ps shards) first, in name
   order, the ``entry`` graph last; then flush them.
7. **Commit.** Write ``<version>.published.json`` (create-only), then release the lease.

Crash anywhere: before 6 no ``saved_model.pb`` exists, so nothing is loadable; a rerun takes over the
lease and re-uses every object that matches (step 4). Between 6 and 7 the version is complete but
unmarked; a rerun finds every file matching and only writes the marker. Objects are atomic on GCS and
renamed into place on local disk, so no object is ever half-written.

**Multi-graph sets.** All graphs' data files and manifests come before any graph's
``saved_model.pb``, and the entry graph's comes last, so by the time a host can see the new entry graph
every ps graph of the same version is complete and loadable: no host sees a new entry graph beside
missing ps graphs. Residual window (documented, not closed by storage): between the first ps
``saved_model.pb`` and the entry's, a ps host may load the new ps version while entry hosts still serve
the old entry graph; and *loading* is each host's own schedule — an entry host can load version N
before a ps host has. Serving must keep the previous ps version loaded (TF Serving version policy
``latest { num_versions: 2 }`` on ps models) and the entry graph must address ps models by version.

**Concurrency.** Every write carries a generation precondition; the lease makes a second publisher of
the same version fail fast instead of interleaving. Real GCS enforces preconditions; the emulator used
in tests does not, so there the lease and deterministic versions are what keep two runs apart.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import posixpath
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Self

from components.artifacts import FileEntry
from components.manifest import MANIFEST_PATH
from components.publish.dedupe import DedupeIndex, build_index
from components.publish.errors import (
    ChecksumMismatch,
    DestinationError,
    DestinationFull,
    DestinationNotFound,
    PublishError,
    PublishInProgress,
    TransferFailed,
    VersionConflict,
)
from components.publish.progress import Progress
from components.publish.transfer import (
    Observer,
    PublishEvent,
    Transfer,
    TransferResult,
    copy_source,
    matches,
    run_transfers,
)
from components.storage import (
    BucketNotFound,
    InvalidURI,
    ObjectInfo,
    PreconditionFailed,
    Storage,
    StorageError,
    StorageFull,
    TransientStorageError,
    UploadChecksumMismatch,
    scheme_of,
)

log = logging.getLogger(__name__)

GRAPH_FILES = ("saved_model.pb", "saved_model.pbtxt")  # what TF Serving keys on
ENTRY_GRAPH = "entry"  # in a multi-graph set, published last
BOOKKEEPING = ".exportflow"
MARKER_SUFFIX = ".published.json"
LEASE_SUFFIX = ".lease.json"
CURRENT = "current"
MARKER_VERSION = 1
_ROLLBACK_ON = (StorageFull, UploadChecksumMismatch, ChecksumMismatch)
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
_VERSION = re.compile(r"^[0-9]{1,19}$")


@dataclasses.dataclass(frozen=True)
class GraphSource:
    """One graph to publish: its export folder and every file with size and CRC32C.

    ``name`` is None for a single-graph export. ``files`` include the manifest itself. ``local_dir`` is a
    local folder, or a staged folder on the destination's own object store (then every file is a
    server-side copy of it: ``transfer.copy_source``).
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


@dataclasses.dataclass(frozen=True)
class PublishSettings:
    parallelism: int = 8  # concurrent transfers
    link_local: bool = True  # local destination: hard-link the export's files (copy across filesystems)
    lease_ttl: float = 120.0  # seconds a lease lives without renewal
    progress_every: float = 5.0  # seconds between progress log lines


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
        return self.storage.join(self.base, graph, self.version) if graph else self.storage.join(self.base, self.version)

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
    def lease(self) -> str:
        return lease_uri(self.storage, self.base, self.version)


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


def marker_uri(storage: Storage, base: str, version: str) -> str:
    return storage.join(base, BOOKKEEPING, f"{version}{MARKER_SUFFIX}")


def lease_uri(storage: Storage, base: str, version: str) -> str:
    return storage.join(base, BOOKKEEPING, f"{version}{LEASE_SUFFIX}")


def check_segment(kind: str, value: str) -> str:
    if not isinstance(value, str) or not _SEGMENT.match(value) or value in (".", ".."):
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
    if not isinstance(version, str) or not _VERSION.match(version):
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
    for target in [layout.marker, layout.lease, *(layout.graph_dir(g) for g in names)]:
        if not target.startswith(root) or "/../" in target:
            raise DestinationError(f"{target} is outside the configured destination {destination}")
    return layout


def graph_order(graphs: Iterable[str | None]) -> list[str | None]:
    """Publication order of ``saved_model.pb``: other graphs by name, then the entry graph."""
    names = list(graphs)
    return sorted((g for g in names if g != ENTRY_GRAPH), key=lambda g: g or "") + (
        [ENTRY_GRAPH] if ENTRY_GRAPH in names else []
    )


def publish_version(
    storage: Storage,
    *,
    destination: str,
    servable: str,
    version: str,
    graphs: tuple[GraphSource, ...],
    marker_info: dict[str, Any] | None = None,
    checkpoint_uri: str | None = None,
    settings: PublishSettings = PublishSettings(),
    force: bool = False,
    observer: Observer | None = None,
) -> PublishOutcome:
    """Publish ``graphs`` as ``version`` of ``servable`` following the protocol above."""
    layout = layout_for(storage, destination, servable, version, (g.name for g in graphs))
    run = _Run(storage, layout, graphs, settings, observer)
    try:
        return run.publish(marker_info or {}, checkpoint_uri, force)
    except BucketNotFound as exc:
        raise DestinationNotFound(
            f"destination {destination}: {exc}; create the bucket or fix destination.uri (nothing was written)"
        ) from exc
    except StorageFull as exc:
        raise DestinationFull(f"publishing {layout.graph_dir(graphs[0].name)}: {exc}") from exc
    except UploadChecksumMismatch as exc:
        raise ChecksumMismatch(f"{exc} (was the export changed after its manifest was written?)") from exc
    except TransientStorageError as exc:
        raise TransferFailed(f"publishing {layout.base} version {version}: {exc}; a rerun resumes") from exc
    except StorageError as exc:
        raise PublishError(f"publishing {layout.base} version {version} failed: {exc}") from exc


class _Run:
    """One attempt at one version."""

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
        self.lease: Lease | None = None
        self.graph_written = False

    # ----------------------------------------------------------------------------------------------
    def publish(self, marker_info: dict[str, Any], checkpoint_uri: str | None, force: bool) -> PublishOutcome:
        layout, storage = self.layout, self.storage
        existing_marker = read_marker(storage, layout.marker)
        if existing_marker is not None and self._marker_matches(existing_marker):
            if self._all_present():
                log.info("%s version %s is already published; nothing to move", layout.base, layout.version)
                Lease.clear_stale(storage, layout.lease)  # a run killed after its marker leaves one
                return self._outcome([], already=True)
            log.warning("%s version %s is marked published but objects are missing; repairing", layout.base, layout.version)
        self.lease = Lease.acquire(storage, layout.lease, self.settings.lease_ttl, "publish")
        if self.observer is not None:
            self.observer(PublishEvent("lease", layout.lease))
        try:
            with self.lease.heartbeat():
                results = self._publish_locked(existing_marker, marker_info, checkpoint_uri, force)
        except BaseException as exc:
            self._after_failure(exc)
            raise
        self.lease.release()
        return self._outcome(results, already=False)

    def _publish_locked(
        self,
        existing_marker: dict[str, Any] | None,
        marker_info: dict[str, Any],
        checkpoint_uri: str | None,
        force: bool,
    ) -> list[TransferResult]:
        layout, storage = self.layout, self.storage
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="publish-index") as side:
            # Other versions and the checkpoint are indexed while this version is inventoried: the two
            # listings share one round trip. The index never includes this version, so order is free.
            indexed = side.submit(self._dedupe, checkpoint_uri)
            inventory = self._inventory()
            if self._resolve_loadable_conflict(inventory, existing_marker, force):
                inventory = self._inventory()
            dedupe = indexed.result()
        data, manifests, graph_files = self._plan(inventory, dedupe)
        total = sum(t.entry.size for t in data + manifests + graph_files if t.copy_from is None)
        progress = Progress(
            f"publish {layout.base} v{layout.version}",
            total,
            len(data) + len(manifests) + len(graph_files),
            log_every=self.settings.progress_every,
        )
        results = run_transfers(
            storage, data, parallelism=self.settings.parallelism, progress=progress, observer=self.observer
        )
        results += run_transfers(
            storage, manifests, parallelism=self.settings.parallelism, progress=progress, observer=self.observer
        )
        storage.sync(self._targets(graph_files=False))  # durable before anything makes them loadable
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="publish-lease") as side:
            renewed = side.submit(self.lease.check)  # type: ignore[union-attr]
            self._verify_before_graphs()  # both must pass before a graph file; they overlap their round trips
            renewed.result()
        for transfer in graph_files:  # in graph order: the entry graph last
            self.graph_written = True
            results += run_transfers(storage, [transfer], parallelism=1, progress=progress, observer=self.observer)
        storage.sync(self._targets(graph_files=True))
        progress.finish()
        self._write_marker(marker_info)
        return results

    def _targets(self, *, graph_files: bool) -> list[str]:
        """Every object of the version: its graph files, or all the others."""
        return [
            self.storage.join(self.layout.graph_dir(g.name), f.path)
            for g in self.graphs
            for f in g.files
            if (f.path in GRAPH_FILES) == graph_files
        ]

    # ---------------------------------------------------------------------------- inventory & plan
    def _graph_names(self) -> list[str | None]:
        return [g.name for g in self.graphs]

    def _inventory(self) -> dict[str | None, dict[str, ObjectInfo]]:
        """Objects in every version directory by relative path; leftover temp files are removed."""
        inventory: dict[str | None, dict[str, ObjectInfo]] = {}
        for graph in self.graphs:
            root = self.layout.graph_dir(graph.name).rstrip("/")
            found: dict[str, ObjectInfo] = {}
            for info in self.storage.list(root):
                relative = info.uri[len(root) + 1 :]
                if posixpath.basename(relative).startswith(".tmp-"):
                    self.storage.delete(info.uri, if_generation_match=info.generation)  # a killed writer's
                    continue
                found[relative] = info
            inventory[graph.name] = found
        return inventory

    def _resolve_loadable_conflict(
        self,
        inventory: dict[str | None, dict[str, ObjectInfo]],
        existing_marker: dict[str, Any] | None,
        force: bool,
    ) -> bool:
        """A loadable version with other content is never rewritten in place: ``VersionConflict``, or with
        ``force`` it is unpublished first (then True)."""
        different = []
        for graph in self.graphs:
            found = inventory[graph.name]
            for entry in graph.files:
                if entry.path in GRAPH_FILES and entry.path in found and not matches(self.storage, found[entry.path], entry):
                    different.append(self.layout.graph_dir(graph.name))
        marker_differs = existing_marker is not None and not self._marker_matches(existing_marker)
        if not different and not marker_differs:
            return False
        if not force:
            what = ", ".join(different) if different else f"marker {self.layout.marker}"
            raise VersionConflict(
                f"version {self.layout.version} of {self.layout.servable} is already published with different "
                f"content ({what}); a loadable version is never rewritten in place — publish a new version, "
                "or rerun with force to replace it"
            )
        log.warning("force: unpublishing %s version %s before replacing it", self.layout.base, self.layout.version)
        unpublish(self.storage, self.layout.base, self.layout.version, self._graph_names())
        return True

    def _dedupe(self, checkpoint_uri: str | None) -> DedupeIndex | None:
        if scheme_of(self.layout.destination) == "file" and self.settings.link_local:
            return None  # the export's own files are linked: nothing cheaper to find
        return build_index(
            self.storage,
            servable_base=self.layout.base,
            exclude=[self.layout.graph_dir(g.name) for g in self.graphs],
            destination_scheme=scheme_of(self.layout.destination),
            checkpoint_uri=checkpoint_uri,
        )

    def _plan(
        self, inventory: dict[str | None, dict[str, ObjectInfo]], dedupe: DedupeIndex | None
    ) -> tuple[list[Transfer], list[Transfer], list[Transfer]]:
        data: list[Transfer] = []
        manifests: list[Transfer] = []
        graph_files: list[Transfer] = []
        order = graph_order(self._graph_names())
        for graph in sorted(self.graphs, key=lambda g: order.index(g.name)):
            found = inventory[graph.name]
            root = self.layout.graph_dir(graph.name)
            link = scheme_of(graph.local_dir) == "file" and self._can_link(graph.local_dir, root)
            for entry in graph.files:
                existing = found.get(entry.path)
                if existing is not None and matches(self.storage, existing, entry):
                    continue
                source = os.path.join(graph.local_dir, entry.path)
                copy_from = copy_source(source, self.layout.destination, link) or (
                    dedupe.find(entry) if dedupe is not None else None
                )
                transfer = Transfer(
                    entry=entry,
                    source=source,
                    target=self.storage.join(root, entry.path),
                    copy_from=copy_from,
                    replace_generation=(existing.generation or 0) if existing is not None else 0,
                )
                if entry.path in GRAPH_FILES:
                    graph_files.append(transfer)
                elif entry.path == MANIFEST_PATH:
                    manifests.append(transfer)
                else:
                    data.append(transfer)
        return data, manifests, graph_files

    def _can_link(self, local_dir: str, target: str) -> bool:
        """Hard links: a local destination on the export's filesystem, unless turned off."""
        if scheme_of(self.layout.destination) != "file" or not self.settings.link_local:
            return False
        folder = target.removeprefix("file://")
        while not os.path.exists(folder) and os.path.dirname(folder) != folder:
            folder = os.path.dirname(folder)
        return os.stat(folder).st_dev == os.stat(local_dir).st_dev

    # -------------------------------------------------------------------------------- verification
    def _problems(self, *, graph_files: bool) -> list[str]:
        """What the destination lacks now, by one listing per graph: missing objects, or objects whose
        size (or CRC32C, where the store lists it) differs from the manifest. ``graph_files=False``
        leaves ``saved_model.pb`` out."""
        problems = []
        for graph in self.graphs:
            root = self.layout.graph_dir(graph.name).rstrip("/")
            found = {info.uri[len(root) + 1 :]: info for info in self.storage.list(root)}
            for entry in graph.files:
                if entry.path in GRAPH_FILES and not graph_files:
                    continue
                info = found.get(entry.path)
                if info is None:
                    problems.append(f"{root}/{entry.path} is missing")
                elif info.size != entry.size or (info.crc32c is not None and info.crc32c != entry.crc32c):
                    problems.append(f"{root}/{entry.path} differs from the manifest")
        return problems

    def _all_present(self) -> bool:
        return not self._problems(graph_files=True)

    def _verify_before_graphs(self) -> None:
        """Every non-graph file is still in place (retention or another writer could have interfered)."""
        problems = self._problems(graph_files=False)
        if problems:
            raise PublishError(
                f"{'; '.join(problems[:3])} after it was verified — is retention or another run changing this "
                "version? saved_model.pb was not written"
            )

    def _marker_matches(self, marker: dict[str, Any]) -> bool:
        ours = {g.name or "": g.manifest_crc32c for g in self.graphs}
        theirs = {g.get("name") or "": g.get("manifest_crc32c") for g in marker.get("graphs", [])}
        return ours == theirs

    # ------------------------------------------------------------------------------------- marker
    def _write_marker(self, marker_info: dict[str, Any]) -> None:
        marker = {
            "marker_version": MARKER_VERSION,
            "servable": self.layout.servable,
            "version": self.layout.version,
            "graphs": [
                {
                    "name": g.name,
                    "uri": self.layout.graph_dir(g.name),
                    "manifest_crc32c": g.manifest_crc32c,
                    "files": len(g.files),
                    "bytes": g.total_bytes,
                }
                for g in self.graphs
            ],
            "published_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "run": self.lease.owner if self.lease else None,
            **marker_info,
        }
        data = json.dumps(marker, indent=1, sort_keys=True).encode()
        try:  # a new version has no marker: create it in one request
            info = self.storage.write_bytes(self.layout.marker, data, if_generation_match=0)
        except PreconditionFailed:  # repairing a marked version: replace the marker we found
            existing = self.storage.stat(self.layout.marker)
            generation = existing.generation if existing and existing.generation else 0
            info = self.storage.write_bytes(self.layout.marker, data, if_generation_match=generation)
        if self.observer is not None:
            self.observer(PublishEvent("marker", self.layout.marker, info.size))

    def _after_failure(self, exc: BaseException) -> None:
        """Release the lease. After a full disk or bad bytes, and before any graph file was written, also
        remove the partial version (frees the disk; nothing of it was loadable). Other failures — network,
        a lost lease, a conflict — keep what is there for the rerun to reuse."""
        try:
            if isinstance(exc, _ROLLBACK_ON) and not self.graph_written:
                for graph in self.graphs:
                    if not any(self.storage.stat(self.storage.join(self.layout.graph_dir(graph.name), f)) for f in GRAPH_FILES):
                        self.storage.delete_prefix(self.layout.graph_dir(graph.name))
            if self.lease is not None:
                self.lease.release()
        except StorageError as cleanup_error:
            log.warning("cleanup after a failed publish of %s failed too: %s", self.layout.base, cleanup_error)

    def _outcome(self, results: list[TransferResult], already: bool) -> PublishOutcome:
        return PublishOutcome(
            uri=self.layout.primary_dir,
            graph_uris=self.layout.graph_uris,
            marker_uri=self.layout.marker,
            files=sum(len(g.files) for g in self.graphs),
            bytes_total=sum(g.total_bytes for g in self.graphs),
            bytes_moved=sum(r.bytes_moved for r in results),
            bytes_copied=sum(r.bytes_copied for r in results),
            already_published=already,
        )


def read_marker(storage: Storage, uri: str) -> dict[str, Any] | None:
    """The commit marker at ``uri``, or None (absent or unreadable — then the version is not published)."""
    found = storage.read_versioned(uri)
    if found is None:
        return None
    try:
        marker = json.loads(found[0])
    except ValueError:
        log.warning("commit marker %s is not valid JSON; treating the version as unpublished", uri)
        return None
    return marker if isinstance(marker, dict) else None


def unpublish(storage: Storage, base: str, version: str, graphs: Iterable[str | None]) -> int:
    """Make a version unloadable, then remove it: ``saved_model.pb`` (entry graph first), every other
    object, the commit marker last. Interrupted, it leaves a marked version without graph files, which
    retention recognises as not loadable and finishes. The caller holds the version's lease."""
    names = list(graphs)
    dirs = {g: storage.join(base, g, version) if g else storage.join(base, version) for g in names}
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
    marker = storage.stat(marker_uri(storage, base, version))
    if marker is not None:
        storage.delete(marker.uri, if_generation_match=marker.generation)
        removed += 1
    return removed


# ------------------------------------------------------------------------------------------- leases
@dataclasses.dataclass
class Lease:
    """Exclusive right to change one version, held in ``<version>.lease.json``."""

    storage: Storage
    uri: str
    owner: str
    ttl: float
    purpose: str
    generation: int
    lost: BaseException | None = None
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    @classmethod
    def acquire(cls, storage: Storage, uri: str, ttl: float, purpose: str) -> Lease:
        owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        body = _lease_body(owner, ttl, purpose)
        for _attempt in range(5):
            # Look first, then create-if-absent: the precondition closes the race on real GCS; the look
            # keeps a store that ignores preconditions (the emulator) from silently taking a live lease.
            found = storage.read_versioned(uri)
            if found is None:
                try:
                    info = storage.write_bytes(uri, body, if_generation_match=0)
                    return cls(storage, uri, owner, ttl, purpose, info.generation or 0)
                except PreconditionFailed:
                    continue  # created meanwhile: look at it
            data, generation = found
            holder = json_object(data)
            if holder is not None and lease_is_live(holder):
                raise PublishInProgress(
                    f"{uri}: {holder.get('purpose', 'publish')} in progress by {holder.get('owner')} until "
                    f"{holder.get('expires_at')}; retry when it is done"
                )
            log.warning("taking over the stale lease %s (held by %s)", uri, holder.get("owner") if holder else "?")
            try:
                info = storage.write_bytes(uri, body, if_generation_match=generation)
                return cls(storage, uri, owner, ttl, purpose, info.generation or 0)
            except PreconditionFailed:
                continue
        raise PublishInProgress(f"{uri}: the lease kept changing hands; retry later")

    @staticmethod
    def clear_stale(storage: Storage, uri: str) -> None:
        """Remove the lease at ``uri`` if its holder is gone (never a live one)."""
        found = storage.read_versioned(uri)
        if found is None:
            return
        holder = json_object(found[0])
        if holder is None or not lease_is_live(holder):
            try:
                storage.delete(uri, if_generation_match=found[1])
            except PreconditionFailed:
                pass  # renewed or taken over meanwhile

    def renew(self) -> None:
        with self._lock:
            try:
                info = self.storage.write_bytes(
                    self.uri, _lease_body(self.owner, self.ttl, self.purpose), if_generation_match=self.generation
                )
            except PreconditionFailed as exc:
                self.lost = exc
                raise PublishInProgress(f"lease {self.uri} was taken over by another run") from exc
            self.generation = info.generation or 0

    def check(self) -> None:
        """Raise if the lease was lost; else renew it (the next steps must run under a fresh lease)."""
        if self.lost is not None:
            raise PublishInProgress(f"lease {self.uri} was lost: {self.lost}")
        self.renew()

    def release(self) -> None:
        with self._lock:
            try:
                self.storage.delete(self.uri, if_generation_match=self.generation)
            except PreconditionFailed:
                log.warning("lease %s changed hands before release; leaving it", self.uri)

    def heartbeat(self) -> _Heartbeat:
        return _Heartbeat(self)


class _Heartbeat:
    """Renews the lease every third of its TTL in a daemon thread while the ``with`` block runs."""

    def __init__(self, lease: Lease) -> None:
        self.lease = lease
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="publish-lease", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.lease.ttl / 3):
            try:
                self.lease.renew()
            except (PublishInProgress, StorageError) as exc:
                self.lease.lost = exc
                log.warning("could not renew lease %s: %s", self.lease.uri, exc)
                return


def _lease_body(owner: str, ttl: float, purpose: str) -> bytes:
    now = time.time()
    host, pid, _ = owner.split(":", 2)
    return json.dumps(
        {
            "owner": owner,
            "host": host,
            "pid": int(pid),
            "purpose": purpose,
            "renewed_at": now,
            "expires_at": now + ttl,
        },
        sort_keys=True,
    ).encode()


def json_object(data: bytes) -> dict[str, Any] | None:
    """``data`` parsed as a JSON object, or None."""
    try:
        value = json.loads(data)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def lease_is_live(lease: dict[str, Any], now: float | None = None) -> bool:
    """Live: not expired, and — when held on this host — its process still exists."""
    now = time.time() if now is None else now
    if float(lease.get("expires_at", 0)) <= now:
        return False
    if lease.get("host") == socket.gethostname():
        try:
            os.kill(int(lease.get("pid", 0)), 0)
        except ProcessLookupError:
            return False
        except (PermissionError, ValueError, OverflowError):
            return True
    return True
