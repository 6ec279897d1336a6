"""The publish protocol: how a version appears at the destination so no serving host sees it partially.

This module is the order of writes (``publish_version``, below); each step's code is beside it in
components/publish/:

* ``layout.py`` — where every piece goes (version folders, ``.exportflow`` bookkeeping, building
  folders; the names are components/layout.py's), checked in step 1; the export's files are checked
  against its manifest by the publish stage (``executor.py``) before it calls ``publish_version``;
* ``marker.py`` — the commit marker, read in step 2 and written in step 7; the version lock of step 3
  is ``components/transfer/lock.py``;
* ``inventory.py`` — step 4: where each graph is assembled and what is already there to reuse;
* ``conflict.py`` — steps 2 and 4: a number that holds other content is refused, or with ``force``
  published under a fresh number (``fresh_version.py`` picks it);
* ``plan.py`` — the writes of steps 5-7, from the inventory;
* ``assembly.py`` — steps 5-6 up to the graph files: transfer, flush, place, verify;
* ``commit.py`` — steps 6-7 from the graph files on (graph files, renames, building objects, the
  marker), and what a failed attempt rolls back;
* ``attempt.py`` — what is published (``GraphSource``), how (``PublishSettings``), the outcome, and the
  state one attempt's steps share;
* ``removal.py`` — the reverse, under the lock: ``unpublish`` and ``collect_abandoned_builds``.

TF Serving's file-system source takes *every* integer-named child of a model base path as a version and
tries to load it — one without ``saved_model.pb`` fails to load and may stay in an error state on a
running server. It ignores ``.exportflow``. So a version is assembled under ``.exportflow/building``
(same filesystem, same bucket) and only then made to appear:

* **local disk** renames the finished folder into place: nothing integer-named exists before the
  version is complete;
* **GCS** has no rename of a prefix: the store copies every object into place server-side, then the
  graph file is written last; ``saved_model.pb`` is the ready signal, and the short time between the
  first copy and it is the *window* described below.

**Placement** (``PublishSettings.placement``, chosen by the publish stage from the config): the building
folder exists for hosts that load whatever is there. Under ``serving.mode: labels`` TF Serving loads only
the versions named in exportflow's ``models.config`` (a ``specific`` version policy; an entry without
versions loads none), and exportflow names a version there only after its commit marker and graph file
exist (``components/serving/control.py``: every promote, pin and label move goes through
``check_published``). A numbered prefix without a marker is then invisible to serving however partial it
is, so a single-graph version on GCS is written **direct**: every object straight into the version
folder (data and manifests, then ``saved_model.pb``, then the marker — the same order, verification,
lock and marker as below, minus the building folder, its copies into place and its deletes). There is
no window: nothing unmarked is ever listed. Under ``serving.mode: latest`` (every integer-named folder
is loaded) placement stays ``building``; so does a multi-graph set in any mode (labels refuse sets, so
their hosts load the highest version of each graph) and local disk (its one rename per graph costs no
bytes and no round trips worth removing, and keeps a half-made folder invisible even to a host that
does not read the config). The residual assumption of direct: the TF Serving hosts of that servable
read exportflow's config file (``--model_config_file``, which labels mode needs anyway); a host started
with ``--model_base_path`` on the same folder would load by the default policy.

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
   folder already exists). Then list, concurrently, the building and version folders (GCS: both, or
   with direct placement the version folder only; local: the one chosen) beside the dedupe index of
   other versions. Leftover ``.tmp-*`` files of a killed run are removed. A ``saved_model.pb`` in the
   version folder that differs from ours means a different version of that number is loadable there:
   ``VersionConflict`` (with ``force``: a fresh number, see *Forced republish* below; a commit marker
   naming other content sends ``force`` there before the lock is even taken). Objects that already
   match the manifest, in either folder, are kept; wrong ones are replaced with a precondition on their
   generation.
5. **Data and manifests, out of sight.** Every file except ``saved_model.pb``, on a bounded pool,
   largest first (so one big shard does not start last and run alone), into the building folder:
   local disk hard-links the export's files (or copies them, or links an identical earlier version's);
   GCS uploads the bytes that no identical object in the bucket already holds (direct placement: into
   the version folder, as are the server-side copies of identical objects). Each is verified by size
   and CRC32C against the manifest.
6. **Flush, place, verify, then graphs.** Make every object durable (local disk: each file is flushed
   by the worker that wrote it, then the folders; GCS acknowledges only durable writes). GCS, building
   placement only: copy every missing object into the version folder server-side — from the building folder, or from
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
* *GCS, direct placement:* numbered objects without ``saved_model.pb`` exist from the first upload
  until the graph file, and a complete version without a marker until the marker — but none of it is
  listed in ``models.config`` (only a marked version can be), so no host loads it.
  ``tests/test_publish_direct.py`` kills a publishing process after every object it writes and checks
  that the config is unchanged, that the version cannot be listed until its marker exists, and that a
  rerun completes it, re-using every object that matches; retention deletes the numbered prefix a
  killed run leaves (no ``saved_model.pb``, marker or live lock; never a listed or labelled version).
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
  being resumable); with direct placement (no copies into place, no building deletes; uploads go
  straight to the version folder) 5 + 8 + 1 = **14** (the bench measures 32 and 15: a pool's longest
  chain of calls can be one longer than ``ceil(n/p)`` rounds; HTTP: about 24 vs the SDK's 18-20 for
  the upload alone — the difference is the look, lock, inventory, marker and release, each above); before issue 18 it was 32: a separate marker read and lock look, and a verifying
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

  Direct placement (``serving.mode: labels``), same bench run (medians of 3; the machine was shared
  with a CI run, load 2.3-3.3): ours / ``transfer_manager`` 1.01x, 1.19x, 0.76x at 20, 50, 100 ms
  (4.61 s, 4.32 s, 5.18 s vs 4.66 s, 5.16 s, 3.95 s; ranges overlap: tm 3.80-6.88 s, ours 4.67-6.04 s
  at 100 ms), 1.69x, 2.65x, 3.27x the sequential loop, 1.7-1.8x ours under ``latest``; emulator CPU
  2.3-2.5 s, the same as ``transfer_manager``'s (no copy re-hashes a byte). What is left at 100 ms is
  the five bookkeeping round trips in series the SDK does not make.

**No window under ``serving.mode: labels``.** A TF Serving ``ModelServerConfig`` with
``model_version_policy { specific { versions: [...] } }`` loads only the listed versions and ignores
every other integer-named prefix; exportflow lists version N only after N's commit marker exists (and
moves a ``version_labels`` entry only once N is AVAILABLE). That is why *Placement* above writes such
versions directly: the building folder, the copies and the window all go.

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

import logging
from concurrent.futures import ThreadPoolExecutor

from components.publish.assembly import problems, transfer_and_place, verify_assembled
from components.publish.attempt import Attempt, GraphSource, PublishOutcome, PublishSettings
from components.publish.commit import (
    after_failure,
    remove_building,
    rename_into_place,
    write_commit_marker,
    write_graph_files,
)
from components.publish.conflict import (
    FRESH_ATTEMPTS,
    NumberTaken,
    fresh_layout,
    fresh_numbers_exhausted,
    refuse_other_content,
)
from components.publish.errors import (
    ChecksumMismatch,
    DestinationFull,
    DestinationNotFound,
    PublishError,
    TransferFailed,
)
from components.publish.inventory import choose_work_folders, dedupe_index, take_inventory
from components.publish.layout import layout_for
from components.publish.marker import CommitMarker, MarkedExport, read_marker
from components.publish.plan import plan_writes
from components.publish.removal import collect_abandoned_builds, unpublish
from components.storage import (
    BucketNotFound,
    Storage,
    StorageError,
    StorageFull,
    TransientStorageError,
    UploadChecksumMismatch,
)
from components.transfer.lock import LockLook, VersionLock
from components.transfer.pool import Observer, TransferResult
from components.transfer.progress import Progress

# The publish API: the executor (and the TFX component through it) and retention use these.
__all__ = [
    "GraphSource",
    "PublishOutcome",
    "PublishSettings",
    "collect_abandoned_builds",
    "publish_version",
    "unpublish",
]

log = logging.getLogger(__name__)

_DEFAULTS = PublishSettings()  # frozen: one shared default is safe


def publish_version(
    storage: Storage,
    *,
    destination: str,
    servable: str,
    version: str,
    graphs: tuple[GraphSource, ...],
    export: MarkedExport | None = None,
    checkpoint_uri: str | None = None,
    settings: PublishSettings = _DEFAULTS,
    force: bool = False,
    observer: Observer | None = None,
) -> PublishOutcome:
    """Publish ``graphs`` as ``version`` of ``servable`` following the protocol above; ``export`` (what the
    publish stage knows about the export) is recorded in the commit marker."""
    layout = layout_for(storage, destination, servable, version, (g.name for g in graphs))
    try:
        for _ in range(FRESH_ATTEMPTS):
            try:
                return _attempt(Attempt(storage, layout, graphs, settings, observer), export, checkpoint_uri, force)
            except NumberTaken:
                layout = fresh_layout(storage, layout, graphs)
        raise fresh_numbers_exhausted(layout)
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


def _attempt(
    run: Attempt, export: MarkedExport | None, checkpoint_uri: str | None, force: bool
) -> PublishOutcome:
    """Steps 2-3, then the locked steps 4-7 under the lock's heartbeat."""
    layout, storage = run.layout, run.storage
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="publish-look") as side:
        looked = side.submit(LockLook.of, storage, layout.lock)  # the marker and the lock: one round trip
        existing_marker = read_marker(storage, layout.marker)
        look = looked.result()
    if existing_marker is not None and run.marker_matches(existing_marker):
        if not problems(run, run.final_dirs(), graph_files=True):
            log.info("%s version %s is already published; nothing to move", layout.base, layout.version)
            VersionLock.clear_stale(storage, layout.lock, look)  # a run killed after its marker leaves one
            return run.outcome([], already=True)
        log.warning("%s version %s is marked published but objects are missing; repairing", layout.base, layout.version)
        look = None  # time passed while listing: look again
    elif existing_marker is not None and force:
        raise NumberTaken  # another publication's number: its lock and files are left alone
    run.lock = VersionLock.acquire(storage, layout.lock, run.settings.lock_ttl, "publish", look)
    run.notify("lease", layout.lock)  # the event names the file: <version>.lease.json
    try:
        with run.lock.heartbeat():
            results = _publish_locked(run, existing_marker, export, checkpoint_uri, force)
    except BaseException as exc:
        after_failure(run, exc)
        raise
    run.lock.release()
    return run.outcome(results, already=False)


def _publish_locked(
    run: Attempt,
    existing_marker: CommitMarker | None,
    export: MarkedExport | None,
    checkpoint_uri: str | None,
    force: bool,
) -> list[TransferResult]:
    """Steps 4-7, in the order the protocol above gives."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="publish-index") as side:
        # Other versions and the checkpoint are indexed while this version is inventoried: the two
        # listings share one round trip. The index never includes this version, so order is free.
        indexed = side.submit(dedupe_index, run, checkpoint_uri)
        choose_work_folders(run)
        inventory = take_inventory(run)
        refuse_other_content(run, inventory.final, existing_marker, force)
        dedupe = indexed.result()
    plan = plan_writes(run, inventory, dedupe)
    progress = Progress(
        f"publish {run.layout.base} v{run.layout.version}",
        sum(t.entry.size for t in plan.counted),
        len(plan.counted),
        log_every=run.settings.progress_every,
    )
    results, placed = transfer_and_place(run, plan, progress)  # steps 5-6: out of sight, then placed
    run.lock.confirm()  # type: ignore[union-attr]  # still ours: no round trip while it is fresh
    verify_assembled(run, inventory, placed)
    results += write_graph_files(run, plan, progress)  # in graph order: the entry graph last
    rename_into_place(run, plan)  # the commit on local disk, the entry graph last
    progress.finish()
    # The building objects are in place now; deleted after the graph files (never beside them, inside
    # the window) and before the marker, so a marked version leaves none behind.
    remove_building(run, inventory, results)
    write_commit_marker(run, export)
    return results
