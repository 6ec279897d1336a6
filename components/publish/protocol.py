"""The publish protocol: how a version appears at the destination so no serving host sees it partially.

Where each piece lives (version folders, ``.exportflow`` bookkeeping, building folders) is
``layout.py`` (over components/layout.py); the version lock of step 3 is ``components/transfer/lock.py``;
the commit marker of step 7 is ``marker.py``.
This module is the order of writes between them.

TF Serving's file-system source takes *every* integer-named child of a model base path as a version and
tries to load it — one without ``saved_model.pb`` fails to load and may stay in an error state on a
running server. It ignores ``.exportflow``. So a version is assembled under ``.exportflow/building``
(same filesystem, same bucket) and only then made to appear:

* **local disk** renames the finished folder into place: nothing integer-named exists before the
  version is complete;
* **GCS** has no rename of a prefix: the store copies every object into place server-side, then the
  graph file is written last; ``saved_model.pb`` is the ready signal, and the short time between the
  first copy and it is the *window* described below.

1. **Check inputs** (before any write): names are single path segments, the version is an integer, the
   target is inside the configured destination, every file of the export is present with the size its
   manifest says.
2. **Already published?** The commit marker and the lock file are read side by side (one round trip;
   step 3 uses that look of the lock). If the commit marker names this exact content (the CRC32C of every graph's
   manifest) and every object is present with the manifest's size and CRC32C (as GCS lists them; on
   local disk the size — each file's CRC32C was checked when it was written), stop: zero bytes moved.
3. **Lock.** Create ``<version>.lease.json`` with ``if_generation_match=0``. If it exists and is live
   (not expired; on this host, its process still runs) another run owns the version:
   ``PublishInProgress``. A stale lock (a killed run) is taken over by compare-and-swap, and with it
   the killed run's building folder. A heartbeat thread renews it; it is confirmed before the graph
   files of step 6 (a write only if its last renewal is older than a third of its TTL: a lock renewed
   since cannot have been taken over, which needs it expired).
4. **Inventory.** Choose where each graph is assembled: its building folder; or, on local disk, the
   version folder itself when that already holds ``saved_model.pb`` (a marked version being repaired
   is visible anyway). A numbered local folder *without* ``saved_model.pb`` (left by an older
   exportflow or another tool) is moved into the building folder at once (removed, if a building
   folder already exists). Then list, concurrently, the building and version folders (GCS: both;
   local: the one chosen) beside the dedupe index of other versions. Leftover ``.tmp-*`` files of a killed run are removed. A ``saved_model.pb`` in the
   version folder that differs from ours means a different version of that number is loadable there:
   ``VersionConflict`` (with ``force``: a fresh number, see *Forced republish* below; a commit marker
   naming other content sends ``force`` there before the lock is even taken). Objects that already
   match the manifest, in either folder, are kept; wrong ones are replaced with a precondition on their
   generation.
5. **Data and manifests, out of sight.** Every file except ``saved_model.pb``, on a bounded pool,
   largest first (so one big shard does not start last and run alone), into the building folder:
   local disk hard-links the export's files (or copies them, or links an identical earlier version's);
   GCS uploads the bytes that no identical object in the bucket already holds. Each is verified by
   size and CRC32C against the manifest.
6. **Flush, place, verify, then graphs.** Make every object durable (local disk: each file is flushed
   by the worker that wrote it, then the folders; GCS acknowledges only durable writes). GCS only:
   copy every missing object into the version folder server-side — from the building folder, or from
   an identical object of an earlier version or the checkpoint (``dedupe``) — up to
   ``max(parallelism, metadata_parallelism)`` at once; *the window opens here*. Verify: on GCS every object of the version folder has the manifest's size and CRC32C
   as the store answered the copy or upload that made it (or listed it in step 4), under the lock —
   no second listing; local disk lists every work folder again (size). Then ``saved_model.pb`` of
   each graph: the *other*
   graphs (ps shards) first, in name order, the ``entry`` graph last; then flush them. On GCS the
   graph files go straight to their place (*the window closes* with each graph's); on local disk into
   the building folder.
7. **Commit.** Local disk: rename each graph's building folder to ``<base>/[<graph>/]<version>``
   (ps graphs first, the entry graph last; no existing non-empty folder is ever replaced), then flush
   the folders holding the old and the new names (``fsync: true``) — the version appears whole, in
   one step. GCS: delete the building objects (by generation, as many at once as the copies; never
   beside the graph files, whose window they would share on a store that serves requests in turn).
   Then write ``<version>.published.json`` (create-only) and release the lock.

**Crash anywhere** (``tests/test_publish_faults.py`` kills a publishing process after every object
it writes and lists the destination as TF Serving would):

* *local disk:* before a graph's rename no integer-named folder of it exists; after it the folder is
  complete and flushed. A rerun takes over the lock and re-uses every object of the building folder
  that matches (0 bytes again for what was already linked or copied). Between the last rename and the
  marker the version is complete but unmarked; a rerun finds every file matching and only writes the
  marker. Building folders nobody resumes are removed by retention (``collect_abandoned_builds``,
  under the version's lock, never while a live run holds it).
* *GCS:* before step 6 nothing numbered exists. **The window** — numbered objects without
  ``saved_model.pb`` — lasts from the first server-side copy into place until the graph's
  ``saved_model.pb``: ``ceil(objects / parallelism)`` copy round trips (metadata-only copies within a
  bucket, independent of size; ``ceil(objects / max(parallelism, metadata_parallelism))``) and one graph-file write per graph (the listing that preceded it is gone). The upload phase, which was the window before, is now outside it. Measured with
  ``bench/bench_publish_window.py`` (64 files, 256 MiB, emulator behind a delaying proxy, medians of
  3, on a 2-core machine shared with other jobs, so absolute times are inflated)::

      delay/request   publish   window before   window now
          0 ms         13.7 s        11.6 s         2.2 s
         20 ms         10.1 s         7.7 s         1.2 s
         50 ms         30.2 s        26.7 s         1.5 s
        100 ms         21.6 s        18.6 s         1.7 s

  The price: each uploaded object is also copied into place and its building copy deleted (none for
  bytes the store already holds: those are copied into place directly) — see the round trips below. In a set each graph has its own window, and
  the entry graph's spans the ps graph files written before it. A kill inside a window leaves objects
  a file-system source would try to load (the fault test records those kill points and asserts they
  are exactly the placement copies and, in a set, the ps graph file before the entry's); a rerun
  completes the version (it re-uses every placed and building object that matches), and retention
  deletes a numbered prefix without ``saved_model.pb``, marker or live lock. The building objects of
  a killed run stay until a rerun or retention collects them.
* Objects are atomic on GCS and renamed into place on local disk, so no object is ever half-written.

**Round trips in series** (what latency multiplies; GCS, one graph, ``n`` objects besides
``saved_model.pb`` of which none is in the bucket yet, ``p`` = ``parallelism``, ``m`` =
``max(p, metadata_parallelism)``;
``bench/bench_publish.py`` counts them at our Storage seam and as HTTP requests). Each and why it stays:

  ===========================================  ==================  =========================================
  step                                          round trips          why it remains
  ===========================================  ==================  =========================================
  read the marker, look at the lock (together)  1                    idempotence (a published version moves 0
                                                                     bytes) and a fast refusal of a live lock
  create the lock                               1                    concurrent writers refused; nothing is
                                                                     written or listed before it
  inventory: building + version folders +       1                    resume a killed run, reuse matching
  dedupe index (together)                                            objects; must see a state under the lock
  uploads into the building folder              ceil(n/p)            the bytes (GCS: 2 HTTP requests each
                                                                     above 8 MiB, a resumable upload)
  copies into place                             ceil(n/m)            no prefix rename on GCS: the window
  graph files (ps first, entry last)            1 per graph          the ready signal comes last, alone
  building deletes                              ceil(n/m)            a marked version leaves none behind
  the marker                                    1                    the commit: only after all is verified
  release the lock                              1                    after the marker, so the next run sees it
  ===========================================  ==================  =========================================

  For the bench's 64 objects at ``p = m = 8``: 5 + 8 + 8 + 1 + 8 = **30** (HTTP: about 38, the uploads
  being resumable); before issue 18 it was 32: a separate marker read and lock look, and a verifying
  listing beside a lock renewal. With ``m = 16`` (real GCS, where wider metadata calls overlap) it
  would be 5 + 8 + 4 + 1 + 4 = 22. Zero cost now: the lock check before the graph files (fresh),
  verification (the stores' answers). Measured and not taken: deleting the building objects beside
  the graph files (one round trip less, but on the emulator their requests queue with the graph
  file inside the window).

  Measured (``bench/bench_publish.py --only gcs --runs 3``, 64 files, 1 GiB, medians; a busy 2-core
  machine, so compare ratios): ours / the SDK's ``transfer_manager`` 0.45x, 0.58x, 0.50x at 20, 50,
  100 ms per request; ours / ``transfer_manager`` plus copies into place and deletes (the same window
  guarantee, no lock, marker or verification) 0.84x, 0.86x, 0.89x. The gap to plain
  ``transfer_manager`` is the emulator's CPU: 3.6 s for ours and for the same-guarantee SDK run vs
  2.0 s, its copies re-hashing every byte — a cost a same-bucket rewrite on real GCS does not have. The
  SDK's ``transfer_manager.upload_many`` makes 8 (16 HTTP) for the same upload — without the lock,
  inventory, window, verification or marker. On the emulator the measured chains are longer: it
  serves one request at a time and hashes every copied byte again (its rewrite computes MD5 and
  CRC32C), so copies and deletes queue at its socket instead of overlapping.

**Closing the window on GCS: serving-config mode.** A TF Serving ``ModelServerConfig`` with
``model_version_policy { specific { versions: [...] } }`` loads only the listed versions and ignores
every other integer-named prefix. When exportflow writes that config and adds version N only after
N's commit marker exists (and moves a ``version_labels`` entry only once N is AVAILABLE), a host never
tries to load a version inside its window: the window then costs nothing. That mode is a separate
feature; until it exists, GCS serving hosts see the short window above.

**Multi-graph sets.** All graphs' data files and manifests come before any graph's
``saved_model.pb``, and the entry graph's comes last (local disk: the entry graph's folder is renamed
last), so by the time a host can see the new entry graph every ps graph of the same version is
complete and loadable: no host sees a new entry graph beside missing ps graphs. Residual window
(documented, not closed by storage): between the first ps graph appearing and the entry's, a ps host
may load the new ps version while entry hosts still serve the old entry graph; and *loading* is each
host's own schedule — an entry host can load version N before a ps host has. Serving must keep the
previous ps version loaded (TF Serving version policy ``latest { num_versions: 2 }`` on ps models) and
the entry graph must address ps models by version.

**Forced republish: a fresh number, never in place.** A published version may be serving (labelled,
listed in the model server config, or the highest number under TF Serving's default policy), and a
replacement in place would take it down for as long as the rebuild lasts. So when the requested number
holds other content (its marker, or a loadable graph file, differs), ``force`` publishes the new content
under a **fresh number: one more than the highest number anything at the destination uses** (numbered
folders of every graph, commit markers, locks, building folders; ``fresh_version.py``), following the same
steps 2-7 there. The old version is not touched — files, marker, labels, ledger entry — and goes the way
of any old version (retention, which never removes one serving needs). The rule is the same whether or
not the old version may be serving: one rule a user can predict ("force with other content = a new,
higher number"), an append-only history, and no race between deciding "not serving" and a host loading
it. A rerun takes the number it took before (a marker naming the same content above the requested
number, or the highest number's unmarked folders holding only files of this export) instead of minting
another; a killed forced run leaves exactly what a killed ordinary publish leaves, at the fresh number.
Under the ``latest`` policy the fresh number is the highest, so hosts move to it once it is complete.
The outcome's ``version`` says which number was used.

**Concurrency.** Every write carries a generation precondition; the lock makes a second publisher of
the same version fail fast instead of interleaving. Real GCS enforces preconditions; the emulator used
in tests does not, so there the lock and deterministic versions are what keep two runs apart.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import posixpath
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, cast

from components.artifacts import FileEntry
from components.layout import BUILDING_PATH, GRAPH_FILES, MANIFEST_PATH, graph_order
from components.publish.errors import (
    ChecksumMismatch,
    DestinationFull,
    DestinationNotFound,
    PublishError,
    PublishInProgress,
    TransferFailed,
    VersionConflict,
)
from components.publish.fresh_version import fresh_version
from components.publish.layout import (
    VERSION_PATTERN,
    Layout,
    building_dir,
    layout_for,
    lock_uri,
    marker_uri,
    version_dir,
)
from components.publish.marker import (
    CommitMarker,
    MarkedExport,
    MarkedGraph,
    now_iso,
    read_marker,
    write_marker,
)
from components.storage import (
    BucketNotFound,
    ObjectInfo,
    PreconditionFailed,
    Storage,
    StorageError,
    StorageFull,
    TransientStorageError,
    UploadChecksumMismatch,
    scheme_of,
)
from components.transfer.dedupe import DedupeIndex, build_index
from components.transfer.lock import LockLook, VersionLock
from components.transfer.pool import (
    Observer,
    PublishEvent,
    Transfer,
    TransferResult,
    copy_source,
    matches,
    run_transfers,
)
from components.transfer.progress import Progress

log = logging.getLogger(__name__)

_ROLLBACK_ON = (StorageFull, UploadChecksumMismatch, ChecksumMismatch)


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


def publish_version(
    storage: Storage,
    *,
    destination: str,
    servable: str,
    version: str,
    graphs: tuple[GraphSource, ...],
    export: MarkedExport | None = None,
    checkpoint_uri: str | None = None,
    settings: PublishSettings = PublishSettings(),
    force: bool = False,
    observer: Observer | None = None,
) -> PublishOutcome:
    """Publish ``graphs`` as ``version`` of ``servable`` following the protocol above; ``export`` (what the
    publish stage knows about the export) is recorded in the commit marker."""
    layout = layout_for(storage, destination, servable, version, (g.name for g in graphs))
    try:
        for _ in range(_FRESH_ATTEMPTS):
            try:
                return _Run(storage, layout, graphs, settings, observer).publish(export, checkpoint_uri, force)
            except _NumberTaken:
                fresh = fresh_version(
                    storage,
                    layout,
                    {g.name or "": g.manifest_crc32c for g in graphs},
                    {g.name: g.files for g in graphs},
                )
                log.warning(
                    "force: %s version %s holds other content and may be serving; it stays as it is and this "
                    "content is published as version %s",
                    layout.base, layout.version, fresh,
                )
                layout = layout_for(storage, destination, servable, fresh, layout.graphs)
        raise VersionConflict(
            f"force: every fresh version number tried for {layout.base} was taken by another run meanwhile "
            f"(last: {layout.version}); rerun to take the next one"
        )
    except BucketNotFound as exc:
        raise DestinationNotFound(
            f"destination {destination}: {exc}; create the bucket or fix destination.uri (nothing was written)"
        ) from exc
    except StorageFull as exc:
        raise DestinationFull(f"publishing {layout.graph_dir(graphs[0].name)}: {exc}") from exc
    except UploadChecksumMismatch as exc:
        raise ChecksumMismatch(f"{exc} (was the export changed after its manifest was written?)") from exc
    except TransientStorageError as exc:
        raise TransferFailed(f"publishing {layout.base} version {layout.version}: {exc}; a rerun resumes") from exc
    except StorageError as exc:
        raise PublishError(f"publishing {layout.base} version {layout.version} failed: {exc}") from exc


_FRESH_ATTEMPTS = 4  # the requested number, then fresh ones (another run may take a fresh one first)


class _NumberTaken(Exception):
    """``force``: the requested number holds other content; the run stops (lock released, nothing
    written) and ``publish_version`` takes a fresh number."""


class RenamesFolders(Protocol):
    """A store that can move a whole folder into place in one step (local disk). Its versions are built
    under ``.exportflow/building/`` and renamed into place; stores without it (GCS) place objects."""

    def rename_folder(self, src_uri: str, dst_uri: str) -> None: ...


def folder_renamer(storage: Storage) -> RenamesFolders | None:
    """``storage`` as a store that renames folders, or None (then objects are copied into place)."""
    return cast(RenamesFolders, storage) if callable(getattr(storage, "rename_folder", None)) else None


@dataclasses.dataclass(frozen=True)
class _Inventory:
    """What each graph's version folder and building folder hold, by relative path."""

    final: dict[str | None, dict[str, ObjectInfo]]
    building: dict[str | None, dict[str, ObjectInfo]]


@dataclasses.dataclass(frozen=True)
class _Plan:
    """The writes of one attempt, phase by phase (see the protocol's steps 5-7)."""

    uploads: list[Transfer]  # data and manifests into the building folder (or a loadable folder being repaired)
    placements: list[Transfer]  # no-rename stores: server-side copies into the version folder
    graph_files: list[Transfer]  # saved_model.pb, in graph order: the entry graph last
    renames: list[tuple[str, str]]  # local disk: building folder -> version folder, in graph order
    from_building: frozenset[str]  # placement targets whose bytes were already counted as uploads

    @property
    def counted(self) -> list[Transfer]:
        """The transfers that make bytes appear (a placement of our own upload is not counted twice)."""
        return self.uploads + [t for t in self.placements if t.target not in self.from_building] + self.graph_files


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
        self.lock: VersionLock | None = None
        self.renamer = folder_renamer(storage)
        self.renames = self.renamer is not None
        self.in_place: set[str | None] = set()  # local disk: graphs already loadable, repaired where they are
        self.loadable_written = False  # a graph file became visible (nothing is rolled back after that)

    # ----------------------------------------------------------------------------------------------
    def publish(self, export: MarkedExport | None, checkpoint_uri: str | None, force: bool) -> PublishOutcome:
        layout, storage = self.layout, self.storage
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="publish-look") as side:
            looked = side.submit(LockLook.of, storage, layout.lock)  # the marker and the lock: one round trip
            existing_marker = read_marker(storage, layout.marker)
            look = looked.result()
        if existing_marker is not None and self._marker_matches(existing_marker):
            if not self._problems(self._final_dirs(), graph_files=True):
                log.info("%s version %s is already published; nothing to move", layout.base, layout.version)
                VersionLock.clear_stale(storage, layout.lock, look)  # a run killed after its marker leaves one
                return self._outcome([], already=True)
            log.warning("%s version %s is marked published but objects are missing; repairing", layout.base, layout.version)
            look = None  # time passed while listing: look again
        elif existing_marker is not None and force:
            raise _NumberTaken  # another publication's number: its lock and files are left alone
        self.lock = VersionLock.acquire(storage, layout.lock, self.settings.lock_ttl, "publish", look)
        self._notify("lease", layout.lock)  # the event names the file: <version>.lease.json
        try:
            with self.lock.heartbeat():
                results = self._publish_locked(existing_marker, export, checkpoint_uri, force)
        except BaseException as exc:
            self._after_failure(exc)
            raise
        self.lock.release()
        return self._outcome(results, already=False)

    def _publish_locked(
        self,
        existing_marker: CommitMarker | None,
        export: MarkedExport | None,
        checkpoint_uri: str | None,
        force: bool,
    ) -> list[TransferResult]:
        layout, storage, parallelism = self.layout, self.storage, self.settings.parallelism
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="publish-index") as side:
            # Other versions and the checkpoint are indexed while this version is inventoried: the two
            # listings share one round trip. The index never includes this version, so order is free.
            indexed = side.submit(self._dedupe, checkpoint_uri)
            self._choose_work_folders()
            inventory = self._inventory()
            self._refuse_other_content(inventory.final, existing_marker, force)
            dedupe = indexed.result()
        plan = self._plan(inventory, dedupe)
        progress = Progress(
            f"publish {layout.base} v{layout.version}",
            sum(t.entry.size for t in plan.counted),
            len(plan.counted),
            log_every=self.settings.progress_every,
        )
        results = run_transfers(storage, plan.uploads, parallelism=parallelism, progress=progress, observer=self.observer)
        storage.sync(self._targets(graph_files=False))  # durable before anything makes them loadable
        # No-rename stores: from the first placement on, the version folder holds objects but no graph
        # file yet — the window the protocol documents. Only server-side copies happen inside it.
        placed = run_transfers(storage, plan.placements, parallelism=self._metadata_parallelism, observer=self.observer)
        for result in placed:  # a copy of our own upload is not counted twice (a fallback upload is)
            if result.transfer.target not in plan.from_building or result.method == "uploaded":
                results.append(result)
                progress.object_done(result.method, result.info.size)
        self.lock.confirm()  # type: ignore[union-attr]  # still ours: no round trip while it is fresh
        if self.renames:
            self._verify_before_graphs()  # local disk: one listing of each work folder
        else:
            self._verify_from_responses(inventory, placed)  # GCS: what the store answered, no listing
        for transfer in plan.graph_files:  # in graph order: the entry graph last
            self.loadable_written = self.loadable_written or not self._in_building(transfer.target)
            results += run_transfers(storage, [transfer], parallelism=1, progress=progress, observer=self.observer)
        storage.sync(self._targets(graph_files=True))
        for building, final in plan.renames:  # the commit on local disk, the entry graph last
            self.loadable_written = True
            try:
                self.renamer.rename_folder(building, final)  # type: ignore[union-attr]
            except PreconditionFailed as exc:
                raise PublishInProgress(
                    f"{final} appeared while this run built it in {building}; is another tool writing there? "
                    "rerun to find out"
                ) from exc
            self._notify("renamed", final)
        progress.finish()
        # The building objects are in place now; deleted after the graph files (never beside them, inside
        # the window) and before the marker, so a marked version leaves none behind.
        self._remove_building(inventory, results)
        self._write_marker(export)
        return results

    @property
    def _metadata_parallelism(self) -> int:
        return max(self.settings.parallelism, self.settings.metadata_parallelism)

    def _notify(self, kind: str, uri: str, size: int = 0) -> None:
        if self.observer is not None:
            self.observer(PublishEvent(kind, uri, size))

    # ------------------------------------------------------------------------------------ folders
    def _final_dirs(self) -> dict[str | None, str]:
        return {g.name: self.layout.graph_dir(g.name) for g in self.graphs}

    def _work_dir(self, graph: str | None) -> str:
        """Where a graph's data goes first: its building folder, or (local disk, already loadable) the
        version folder itself."""
        if graph in self.in_place:
            return self.layout.graph_dir(graph)
        return self.layout.building_dir(graph)

    def _assembly_dirs(self) -> dict[str | None, str]:
        """Where a graph's complete set of files is assembled before its graph file is written."""
        if self.renames:
            return {g.name: self._work_dir(g.name) for g in self.graphs}
        return self._final_dirs()

    def _in_building(self, uri: str) -> bool:
        return uri.startswith(self.storage.join(self.layout.base, BUILDING_PATH, ""))

    def _choose_work_folders(self) -> None:
        """Local disk: a graph already loadable at its version folder is repaired in place (it is visible
        anyway); any other numbered folder of this version (a partial one left by an older exportflow or
        another tool) is moved into the building folder at once, so TF Serving stops seeing it."""
        if self.renamer is None:
            return
        self.in_place = set()
        for graph in self.graphs:
            final, building = self.layout.graph_dir(graph.name), self.layout.building_dir(graph.name)
            if any(self.storage.stat(self.storage.join(final, name)) for name in GRAPH_FILES):
                self.in_place.add(graph.name)
            elif self.storage.list_names(final):
                if self.storage.list_names(building):  # a newer attempt is already under way there
                    self.storage.delete_prefix(final)
                    log.warning("removed %s: a numbered folder without saved_model.pb", final)
                else:
                    self.renamer.rename_folder(final, building)
                    log.warning("moved %s (a numbered folder without saved_model.pb) to %s", final, building)

    def _targets(self, *, graph_files: bool) -> list[str]:
        """Every object of the version where it is assembled: its graph files, or all the others."""
        dirs = self._assembly_dirs()
        return [
            self.storage.join(dirs[g.name], f.path)
            for g in self.graphs
            for f in g.files
            if (f.path in GRAPH_FILES) == graph_files
        ]

    # ---------------------------------------------------------------------------- inventory & plan
    def _graph_names(self) -> list[str | None]:
        return [g.name for g in self.graphs]

    def _inventory(self) -> _Inventory:
        """Objects in every folder this attempt may reuse, by relative path, listed concurrently; leftover
        temp files of a killed writer are removed."""
        wanted: list[tuple[str, str | None, str]] = []
        for graph in self.graphs:
            if not self.renames or graph.name in self.in_place:
                wanted.append(("final", graph.name, self.layout.graph_dir(graph.name)))
            if graph.name not in self.in_place:
                wanted.append(("building", graph.name, self.layout.building_dir(graph.name)))
        with ThreadPoolExecutor(max_workers=len(wanted), thread_name_prefix="publish-inventory") as pool:
            listed = list(pool.map(lambda w: self._list_folder(w[2]), wanted))
        found: dict[str, dict[str | None, dict[str, ObjectInfo]]] = {"final": {}, "building": {}}
        for graph in self.graphs:
            found["final"][graph.name], found["building"][graph.name] = {}, {}
        for (kind, graph_name, _), objects in zip(wanted, listed, strict=True):
            found[kind][graph_name] = objects
        return _Inventory(found["final"], found["building"])

    def _list_folder(self, folder: str) -> dict[str, ObjectInfo]:
        root = folder.rstrip("/")
        found: dict[str, ObjectInfo] = {}
        for info in self.storage.list(root):
            relative = info.uri[len(root) + 1 :]
            if posixpath.basename(relative).startswith(".tmp-"):
                self.storage.delete(info.uri, if_generation_match=info.generation)  # a killed writer's
                continue
            found[relative] = info
        return found

    def _refuse_other_content(
        self,
        final: dict[str | None, dict[str, ObjectInfo]],
        existing_marker: CommitMarker | None,
        force: bool,
    ) -> None:
        """A version with other content (a differing marker or loadable graph file) is never rewritten in
        place: ``VersionConflict``, or with ``force`` a fresh number (``_NumberTaken``)."""
        different = []
        for graph in self.graphs:
            found = final[graph.name]
            for entry in graph.files:
                if entry.path in GRAPH_FILES and entry.path in found and not matches(self.storage, found[entry.path], entry):
                    different.append(self.layout.graph_dir(graph.name))
        marker_differs = existing_marker is not None and not self._marker_matches(existing_marker)
        if not different and not marker_differs:
            return
        if force:
            raise _NumberTaken
        what = ", ".join(different) if different else f"marker {self.layout.marker}"
        raise VersionConflict(
            f"version {self.layout.version} of {self.layout.servable} is already published with different "
            f"content ({what}); a published version is never rewritten in place — publish a new version, "
            "or rerun with force to publish this content under a fresh, higher version number"
        )

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

    def _plan(self, inventory: _Inventory, dedupe: DedupeIndex | None) -> _Plan:
        """Local disk: every missing file into the work folder, then a rename. No-rename stores: bytes that
        must be uploaded go to the building folder, every missing object is then copied into the version
        folder by the store (from there, or from an identical object elsewhere), and the graph file is
        uploaded straight to its place."""
        uploads: list[Transfer] = []
        placements: list[Transfer] = []
        graph_files: list[Transfer] = []
        from_building: set[str] = set()
        order = graph_order(self._graph_names())
        for graph in sorted(self.graphs, key=lambda g: order.index(g.name)):
            final, building = inventory.final[graph.name], inventory.building[graph.name]
            final_dir, building_dir = self.layout.graph_dir(graph.name), self.layout.building_dir(graph.name)
            work = self._work_dir(graph.name)
            link = self.renames and scheme_of(graph.local_dir) == "file" and self._can_link(graph.local_dir, work)
            for entry in graph.files:
                source = os.path.join(graph.local_dir, entry.path)
                if self.renames:  # everything into the work folder
                    existing = (final if graph.name in self.in_place else building).get(entry.path)
                    if existing is not None and matches(self.storage, existing, entry):
                        continue
                    copy_from = copy_source(source, self.layout.destination, link) or (
                        dedupe.find(entry) if dedupe is not None else None
                    )
                    transfer = self._transfer(entry, source, work, copy_from, existing)
                    (graph_files if entry.path in GRAPH_FILES else uploads).append(transfer)
                    continue
                placed = final.get(entry.path)
                if placed is not None and matches(self.storage, placed, entry):
                    continue
                # the staged object itself when staging is on this store, else an identical published one
                copy_from = copy_source(source, self.layout.destination, False) or (
                    dedupe.find(entry) if dedupe is not None else None
                )
                if entry.path in GRAPH_FILES:  # the ready signal goes straight to its place, last
                    graph_files.append(self._transfer(entry, source, final_dir, copy_from, placed))
                    continue
                if copy_from is None:  # our own bytes: uploaded out of sight first (unless already there)
                    staged = building.get(entry.path)
                    if staged is None or not matches(self.storage, staged, entry):
                        uploads.append(self._transfer(entry, source, building_dir, None, staged))
                    copy_from = self.storage.join(building_dir, entry.path)
                    from_building.add(self.storage.join(final_dir, entry.path))
                placements.append(self._transfer(entry, source, final_dir, copy_from, placed))
        renames = [
            (self.layout.building_dir(g), self.layout.graph_dir(g)) for g in order if self.renames and g not in self.in_place
        ]
        return _Plan(uploads, placements, graph_files, renames, frozenset(from_building))

    def _transfer(
        self, entry: FileEntry, source: str, folder: str, copy_from: str | None, existing: ObjectInfo | None
    ) -> Transfer:
        """Make ``<folder>/<entry.path>``; a wrong object already there is replaced by generation."""
        return Transfer(
            entry=entry,
            source=source,
            target=self.storage.join(folder, entry.path),
            copy_from=copy_from,
            replace_generation=(existing.generation or 0) if existing is not None else 0,
        )

    def _can_link(self, local_dir: str, target: str) -> bool:
        """Hard links: a local destination on the export's filesystem, unless turned off."""
        if scheme_of(self.layout.destination) != "file" or not self.settings.link_local:
            return False
        folder = target.removeprefix("file://")
        while not os.path.exists(folder) and os.path.dirname(folder) != folder:
            folder = os.path.dirname(folder)
        return os.stat(folder).st_dev == os.stat(local_dir).st_dev

    # -------------------------------------------------------------------------------- verification
    def _problems(self, dirs: dict[str | None, str], *, graph_files: bool) -> list[str]:
        """What ``dirs`` (a folder per graph) lack now, by one listing each: missing objects, or objects
        whose size (or CRC32C, where the store lists it) differs from the manifest. ``graph_files=False``
        leaves ``saved_model.pb`` out."""
        problems = []
        for graph in self.graphs:
            root = dirs[graph.name].rstrip("/")
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

    def _verify_from_responses(self, inventory: _Inventory, placed: list[TransferResult]) -> None:
        """No-rename stores: every non-graph object of each version folder has the manifest's size and
        CRC32C as the store reported it — in the response to the copy or upload that made it, or in the
        inventory listing that found it already in place — all under this run's lock (retention and other
        publishers take it too). Nothing is listed again."""
        made = {r.transfer.target: r.info for r in placed}
        problems = []
        for graph in self.graphs:
            folder = self.layout.graph_dir(graph.name)
            for entry in graph.files:
                if entry.path in GRAPH_FILES:
                    continue
                uri = self.storage.join(folder, entry.path)
                info = made.get(uri) or inventory.final[graph.name].get(entry.path)
                if info is None:
                    problems.append(f"{uri} was never placed")
                elif info.size != entry.size or (info.crc32c is not None and info.crc32c != entry.crc32c):
                    problems.append(f"{uri} differs from the manifest")
        if problems:
            raise PublishError(f"{'; '.join(problems[:3])}; saved_model.pb was not written")

    def _verify_before_graphs(self) -> None:
        """Every non-graph file is still in place (retention or another writer could have interfered)."""
        problems = self._problems(self._assembly_dirs(), graph_files=False)
        if problems:
            raise PublishError(
                f"{'; '.join(problems[:3])} after it was verified — is retention or another run changing this "
                "version? saved_model.pb was not written"
            )

    def _marker_matches(self, marker: CommitMarker) -> bool:
        return marker.content == {g.name or "": g.manifest_crc32c for g in self.graphs}

    # ------------------------------------------------------------------------------------- marker
    def _write_marker(self, export: MarkedExport | None) -> None:
        marker = CommitMarker(
            servable=self.layout.servable,
            version=self.layout.version,
            graphs=tuple(
                MarkedGraph(g.name, self.layout.graph_dir(g.name), g.manifest_crc32c, len(g.files), g.total_bytes)
                for g in self.graphs
            ),
            published_at=now_iso(),
            run=self.lock.owner if self.lock else None,
            export=export,
        )
        info = write_marker(self.storage, self.layout.marker, marker)
        self._notify("marker", self.layout.marker, info.size)

    def _remove_building(self, inventory: _Inventory, results: list[TransferResult]) -> None:
        """No-rename stores: the building objects were copied into place; delete them (in parallel, by
        generation). A failure only leaves bookkeeping behind, which retention collects."""
        if self.renames:
            return
        staged = {i.uri: i.generation for objects in inventory.building.values() for i in objects.values()}
        staged.update({r.info.uri: r.info.generation for r in results if self._in_building(r.info.uri)})
        if not staged:
            return
        workers = max(1, min(self._metadata_parallelism, len(staged)))
        try:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="publish-clean") as pool:
                list(pool.map(lambda item: self.storage.delete(item[0], if_generation_match=item[1]), staged.items()))
        except StorageError as exc:
            log.warning("could not remove the building objects of %s version %s: %s", self.layout.base, self.layout.version, exc)

    def _after_failure(self, exc: BaseException) -> None:
        """Release the lock. After a full disk or bad bytes, and before any graph file became visible,
        also remove the partial version (frees the disk; nothing of it was loadable). Other failures —
        network, a lost lock, a conflict — keep what is there for the rerun to reuse."""
        try:
            if isinstance(exc, _ROLLBACK_ON) and not self.loadable_written:
                for graph in self.graphs:
                    if graph.name not in self.in_place:
                        self.storage.delete_prefix(self.layout.building_dir(graph.name))
                    final = self.layout.graph_dir(graph.name)
                    if not any(self.storage.stat(self.storage.join(final, f)) for f in GRAPH_FILES):
                        self.storage.delete_prefix(final)
            if self.lock is not None:
                self.lock.release()
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
            bytes_linked=sum(r.bytes_linked for r in results),
            already_published=already,
            version=self.layout.version,
        )


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
