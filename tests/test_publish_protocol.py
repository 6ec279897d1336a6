"""The publish protocol on local disk and on the real GCS emulator, with synthetic exports (no TF).

Order of writes, verification, idempotent reruns, resume after a failure, conflicts, leases, dedupe by
server-side copy / hard link, dry runs and progress. The emulator does not enforce generation
preconditions (real GCS does); nothing here claims to prove them on GCS — the lease tests show the
look-before-create that keeps a live lease from being taken even there.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from components.artifacts import FileEntry
from components.manifest import MANIFEST_PATH
from components.model_storage import destination_storage
from components.publish.errors import PublishInProgress, VersionConflict
from components.publish.executor import publish
from components.publish.layout import lock_uri
from components.publish.protocol import collect_abandoned_builds
from components.publish.retention import RetentionPolicy, prune_published_versions
from components.storage import Storage, crc32c_of_file, storage_for
from components.transfer.lock import VersionLock
from components.transfer.pool import PublishEvent
from components.transfer.progress import Progress, ProgressBar, bar_log
from tests.support.publishing import (
    DEFAULT_FILES,
    FsyncRecorder,
    assert_nothing_partial_is_loadable,
    loadable_versions,
    make_config,
    make_export,
    params_for,
    relative_objects,
)


@pytest.fixture(params=["local", "gcs"])
def destination(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "local":
        return str(tmp_path / "published")
    return f"gs://{request.getfixturevalue('gcs_bucket')}/models"


def manifest_entries(folder: str) -> dict[str, FileEntry]:
    data = json.loads(Path(folder, MANIFEST_PATH).read_text())
    entries = {f["path"]: FileEntry(f["path"], f["size"], f["crc32c"]) for f in data["files"]}
    path = os.path.join(folder, MANIFEST_PATH)
    entries[MANIFEST_PATH] = FileEntry(MANIFEST_PATH, os.path.getsize(path), crc32c_of_file(path))
    return entries


def assert_published_exactly(destination: str, version_dir: str, export_dir: str) -> None:
    """The version folder holds exactly the export's files, each with the manifest's size and CRC32C."""
    storage = storage_for(destination)
    objects = relative_objects(storage, version_dir)
    expected = manifest_entries(export_dir)
    assert set(objects) == set(expected)
    for path, entry in expected.items():
        info = objects[path]
        crc = info.crc32c or storage.checksum(info.uri)
        assert (info.size, crc) == (entry.size, entry.crc32c), path


def test_publish_verifies_everything_then_a_rerun_moves_nothing(destination: str, tmp_path: Path) -> None:
    config = make_config(destination, tmp_path, hard_links=False)
    export = make_export(tmp_path / "staging")
    pushed = publish(params_for(config), export)
    storage = storage_for(destination)
    assert pushed.uri == storage.join(destination, "example", "300")
    assert_published_exactly(destination, pushed.uri, export.uri)
    assert pushed.bytes_moved == pushed.bytes_total > 0 and not pushed.already_published
    marker = json.loads(storage.read_bytes(pushed.marker_uri))
    assert marker["version"] == "300" and marker["step"] == 300 and marker["metrics"]["auc"] > 0
    assert storage.stat(lock_uri(storage, storage.join(destination, "example"), "300")) is None
    before = {p: (i.generation, i.size) for p, i in relative_objects(storage, storage.join(destination, "example")).items()}

    again = publish(params_for(config), export)

    assert again.already_published and again.bytes_moved == 0 and again.bytes_copied == 0
    after = {p: (i.generation, i.size) for p, i in relative_objects(storage, storage.join(destination, "example")).items()}
    assert after == before  # not one object rewritten, marker included


def test_fsync_false_publishes_the_same_files_without_flushing_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    destination = str(tmp_path / "published")
    export = make_export(tmp_path / "staging")
    flushes = FsyncRecorder(monkeypatch, destination)
    pushed = publish(params_for(make_config(destination, tmp_path, hard_links=False, fsync=False)), export)
    assert_published_exactly(destination, pushed.uri, export.uri)
    base = os.path.realpath(os.path.join(destination, "example"))
    building = os.path.join(base, ".exportflow", "building")
    assert not [p for p in flushes.paths() if p.startswith((os.path.realpath(pushed.uri), building)) or p == base]
    assert any("/.exportflow/.tmp-300.published.json" in p for p in flushes.paths())  # bookkeeping still is


def test_a_durable_local_version_is_flushed_in_its_building_folder_then_renamed_durably(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every file and folder of the version is flushed before its numbered folder exists; the folder
    holding the new name is flushed after the rename (the commit on local disk)."""
    base = os.path.realpath(tmp_path) + "/published/example"
    flushes = FsyncRecorder(monkeypatch, f"{base}/300")
    pushed = publish(params_for(make_config(str(tmp_path / "published"), tmp_path, hard_links=False)), make_export(tmp_path / "staging"))
    assert os.path.realpath(pushed.uri) == f"{base}/300"
    building = f"{base}/.exportflow/building/300"
    before = {os.path.relpath(p, building) for p, exists in flushes.calls if p.startswith(building) and not exists}
    assert {"saved_model.pb", "variables/variables.index", "variables", "."} <= before
    assert not [p for p, exists in flushes.calls if p.startswith(building) and exists]
    assert (base, True) in flushes.calls  # the rename is durable
    assert not os.path.exists(building)


def test_data_files_go_largest_first_so_a_big_shard_never_runs_alone_at_the_end(tmp_path: Path) -> None:
    files = {**DEFAULT_FILES, "assets/a_small.txt": 100, "variables/variables.data-00001-of-00002": 900_000}
    export = make_export(tmp_path / "staging", files=files)
    events: list[PublishEvent] = []
    publish(params_for(make_config(str(tmp_path / "published"), tmp_path, hard_links=False, parallelism=1)), export, observer=events.append)
    data_sizes = [e.size for e in events if e.kind in ("uploaded", "copied", "linked") and not e.uri.endswith(("/saved_model.pb", MANIFEST_PATH))]
    assert len(data_sizes) == len(files) - 1
    assert data_sizes == sorted(data_sizes, reverse=True) and data_sizes[0] == 900_000


def test_a_marked_version_with_a_lost_file_is_repaired_and_its_marker_replaced(destination: str, tmp_path: Path) -> None:
    config = make_config(destination, tmp_path, hard_links=False)
    export = make_export(tmp_path / "staging")
    first = publish(params_for(config), export)
    storage = storage_for(destination)
    lost = storage.join(first.uri, "variables", "variables.data-00001-of-00002")
    storage.delete(lost)
    marker_before = storage.stat(first.marker_uri)

    repaired = publish(params_for(config), export)

    assert not repaired.already_published and repaired.bytes_moved == DEFAULT_FILES["variables/variables.data-00001-of-00002"]
    assert_published_exactly(destination, repaired.uri, export.uri)
    marker_after = storage.stat(first.marker_uri)
    assert marker_after is not None and marker_before is not None
    assert json.loads(storage.read_bytes(first.marker_uri))["version"] == "300"
    if destination.startswith("/"):  # local disk enforces the precondition: the marker was replaced by compare-and-swap
        assert marker_after.generation != marker_before.generation
    assert publish(params_for(config), export).already_published


def test_writes_come_in_protocol_order_for_a_multi_graph_set(destination: str, tmp_path: Path) -> None:
    """Everything is assembled before any graph becomes loadable, the entry graph last. Local disk: built
    under .exportflow/building and renamed into place; GCS: uploaded there, copied into place by the
    store, then each saved_model.pb written to its place."""
    config = make_config(destination, tmp_path, parallelism=3)
    export = make_export(tmp_path / "staging", graphs=("entry", "ps_0", "ps_1"))
    events: list[PublishEvent] = []
    pushed = publish(params_for(config), export, observer=events.append)
    kinds = [e.kind for e in events]
    assert kinds[0] == "lease" and kinds[-1] == "marker"
    in_building = ["/.exportflow/building/" in e.uri for e in events]
    if destination.startswith("/"):
        ready = [i for i, e in enumerate(events) if e.kind == "renamed"]
        assert all(in_building[1:ready[0]])  # nothing at a numbered folder before the first rename
    else:
        ready = [i for i, e in enumerate(events) if e.uri.endswith("/saved_model.pb")]
        uploads = [e for e in events[: ready[0]] if e.kind == "uploaded"]
        placed = [e.uri for e in events[: ready[0]] if e.kind == "copied"]
        assert uploads and all("/.exportflow/building/" in e.uri for e in uploads)  # bytes went out of sight first
        assert sum(u.endswith(MANIFEST_PATH) for u in placed) == 3  # every manifest in place before any graph
    assert [events[i].uri.split("/300")[0].rsplit("/", 1)[-1] for i in ready] == ["ps_0", "ps_1", "entry"]
    assert ready[-1] == len(events) - 2  # the entry graph, then the marker
    storage = storage_for(destination)
    assert pushed.uri == storage.join(destination, "example", "entry", "300")
    for graph in ("entry", "ps_0", "ps_1"):
        assert_published_exactly(destination, pushed.graph_uris[graph], export.graphs[graph])
    assert loadable_versions(storage, storage.join(destination, "example")) == ["entry/300", "ps_0/300", "ps_1/300"]
    assert list(storage.list(storage.join(destination, "example", ".exportflow", "building"))) == []


class Interrupted(Exception):
    """Raised by a test observer to stop a publish part-way, like a crash that still runs cleanup."""


def test_a_rerun_after_an_interruption_reuses_what_matches(destination: str, tmp_path: Path) -> None:
    config = make_config(destination, tmp_path, hard_links=False, parallelism=1)
    export = make_export(tmp_path / "staging")
    done: list[PublishEvent] = []

    def stop_after_three(event: PublishEvent) -> None:
        done.append(event)
        if len(done) == 4:  # the lease, then three files
            raise Interrupted

    with pytest.raises(Interrupted):
        publish(params_for(config), export, observer=stop_after_three)
    storage = storage_for(destination)
    base = storage.join(destination, "example")
    assert loadable_versions(storage, base) == []
    assert storage.list_names(base) == [".exportflow"]  # not even a numbered folder without a graph
    kept = sum(e.size for e in done[1:])
    assert kept > 0

    pushed = publish(params_for(config), export)

    assert pushed.bytes_moved == pushed.bytes_total - kept  # the three verified files were not sent again
    assert_published_exactly(destination, pushed.uri, export.uri)


def test_a_wrong_object_in_an_unpublished_version_is_replaced(destination: str, tmp_path: Path) -> None:
    config = make_config(destination, tmp_path)
    export = make_export(tmp_path / "staging")
    storage = storage_for(destination)
    wrong = storage.join(destination, "example", "300", "variables", "variables.index")
    storage.write_bytes(wrong, b"left over from something else", if_generation_match=0)
    pushed = publish(params_for(config), export)
    assert_published_exactly(destination, pushed.uri, export.uri)


def snapshot(storage: Storage, folder: str) -> dict[str, tuple[int, int | None, str]]:
    """Every object under ``folder``: size, generation and CRC32C (whatever the store lists or computes)."""
    return {p: (i.size, i.generation, i.crc32c or storage.checksum(i.uri)) for p, i in relative_objects(storage, folder).items()}


def test_force_publishes_other_content_under_a_fresh_higher_version_and_never_touches_the_old_one(
    destination: str, tmp_path: Path
) -> None:
    """Under TF Serving's default policy 300 is what hosts serve: throughout the forced republish it stays
    loadable and byte-identical, and the highest loadable version is always complete."""
    config = make_config(destination, tmp_path)
    storage = storage_for(destination)
    base = storage.join(destination, "example")
    publish(params_for(config), make_export(tmp_path / "older", step=200, seed=200))
    first = make_export(tmp_path / "a", seed=1)
    second = make_export(tmp_path / "b", seed=2)
    publish(params_for(config), first)
    old_version = snapshot(storage, storage.join(base, "300"))
    old_marker = storage.read_bytes(storage.join(base, ".exportflow", "300.published.json"))

    with pytest.raises(VersionConflict, match="never rewritten in place"):
        publish(params_for(config), second)

    writes: list[str] = []

    def serving_stays_up(event: PublishEvent) -> None:
        writes.append(event.uri)
        assert snapshot(storage, storage.join(base, "300")) == old_version
        loadable = assert_nothing_partial_is_loadable(storage, base)
        assert "300" in loadable and max(loadable, key=int) in ("300", "301")

    pushed = publish(params_for(config, force=True), second, observer=serving_stays_up)

    assert (pushed.version, pushed.step) == ("301", 300)
    assert pushed.uri == storage.join(base, "301") and pushed.marker_uri.endswith("/.exportflow/301.published.json")
    assert_published_exactly(destination, pushed.uri, second.uri)
    assert_published_exactly(destination, storage.join(base, "300"), first.uri)
    assert snapshot(storage, storage.join(base, "300")) == old_version
    assert storage.read_bytes(storage.join(base, ".exportflow", "300.published.json")) == old_marker
    assert not [w for w in writes if "/300/" in w or "/300." in w]  # not even its lock was taken
    assert loadable_versions(storage, base) == ["200", "300", "301"]
    marker = json.loads(storage.read_bytes(pushed.marker_uri))
    assert marker["graphs"][0]["manifest_crc32c"] == manifest_entries(second.uri)[MANIFEST_PATH].crc32c

    again = publish(params_for(config, force=True), second)  # a retried forced run takes the same number
    assert (again.version, again.already_published, again.bytes_moved) == ("301", True, 0)
    assert loadable_versions(storage, base) == ["200", "300", "301"]


def test_a_dry_run_names_the_version_a_real_run_would_take_and_writes_nothing(tmp_path: Path) -> None:
    """A dry run of other content at a taken number: refused like the real run, or with force the fresh
    number the real run then takes (not the taken one); the same content: already published."""
    destination = str(tmp_path / "published")
    config = make_config(destination, tmp_path)
    storage = storage_for(destination)
    first, second = make_export(tmp_path / "a", seed=1), make_export(tmp_path / "b", seed=2)
    publish(params_for(config), first)
    before = {k: (v.size, v.generation) for k, v in relative_objects(storage, destination).items()}

    with pytest.raises(VersionConflict, match="never rewritten in place"):
        publish(params_for(config, dry_run=True), second)
    planned = publish(params_for(config, dry_run=True, force=True), second)
    assert (planned.version, planned.already_published) == ("301", False)
    assert planned.uri == storage.join(destination, "example", "301")
    assert planned.marker_uri.endswith("/.exportflow/301.published.json")
    same = publish(params_for(config, dry_run=True, force=True), first)
    assert (same.version, same.already_published) == ("300", True)
    assert {k: (v.size, v.generation) for k, v in relative_objects(storage, destination).items()} == before

    assert publish(params_for(config, force=True), second).version == planned.version


def test_a_retry_after_the_staged_copy_is_gone_reports_the_fresh_version(tmp_path: Path) -> None:
    config = make_config(str(tmp_path / "published"), tmp_path)
    first, second = make_export(tmp_path / "a", seed=1), make_export(tmp_path / "b", seed=2)
    publish(params_for(config), first)
    assert publish(params_for(config, force=True), second).version == "301"
    shutil.rmtree(second.uri)  # published: the staged copy was released, then the task was retried

    again = publish(params_for(config, force=True), second)

    assert (again.version, again.already_published) == ("301", True)
    assert again.uri == str(tmp_path / "published" / "example" / "301")


def test_the_fresh_version_is_above_every_number_in_use_at_the_destination(destination: str, tmp_path: Path) -> None:
    config = make_config(destination, tmp_path)
    storage = storage_for(destination)
    base = storage.join(destination, "example")
    publish(params_for(config), make_export(tmp_path / "a", seed=1))
    _write_lease(destination, 999_999_999, expires_in=-1, version="900")  # a stale lock
    storage.write_bytes(storage.join(base, ".exportflow", "building", "950", "left-over"), b"x", if_generation_match=0)
    storage.write_bytes(storage.join(base, ".exportflow", "700.published.json"), b"{}", if_generation_match=0)
    storage.write_bytes(storage.join(base, "800", "left-over"), b"y", if_generation_match=0)  # no graph

    pushed = publish(params_for(config, force=True), make_export(tmp_path / "b", seed=2))

    assert pushed.version == "951"
    assert_nothing_partial_is_loadable(storage, base)
    assert loadable_versions(storage, base) == ["300", "951"]


def test_a_forced_multi_graph_set_takes_one_fresh_number_for_every_graph(destination: str, tmp_path: Path) -> None:
    config = make_config(destination, tmp_path)
    storage = storage_for(destination)
    base = storage.join(destination, "example")
    publish(params_for(config), make_export(tmp_path / "a", graphs=("entry", "ps_0"), seed=1))
    storage.write_bytes(storage.join(base, "ps_0", ".exportflow-other", "x"), b"not a version", if_generation_match=0)
    before = snapshot(storage, base)

    pushed = publish(params_for(config, force=True), make_export(tmp_path / "b", graphs=("entry", "ps_0"), seed=2))

    assert pushed.version == "301" and set(pushed.graph_uris) == {"entry", "ps_0"}
    after = snapshot(storage, base)
    assert {p: v for p, v in after.items() if p in before} == before
    assert loadable_versions(storage, base) == ["entry/300", "entry/301", "ps_0/300", "ps_0/301"]


def test_a_forced_run_killed_midway_leaves_the_old_version_serving_and_a_rerun_resumes_its_number(
    destination: str, tmp_path: Path
) -> None:
    config = make_config(destination, tmp_path, hard_links=False, parallelism=1)
    storage = storage_for(destination)
    base = storage.join(destination, "example")
    first, second = make_export(tmp_path / "a", seed=1), make_export(tmp_path / "b", seed=2)
    publish(params_for(config), first)
    old = snapshot(storage, storage.join(base, "300"))
    done: list[PublishEvent] = []

    def killed_after_three_files(event: PublishEvent) -> None:
        done.append(event)
        if len(done) == 4:  # the lease of the fresh number, then three files
            raise Interrupted

    with pytest.raises(Interrupted):
        publish(params_for(config, force=True), second, observer=killed_after_three_files)
    assert done[0].kind == "lease" and done[0].uri.endswith("/.exportflow/301.lease.json")
    assert assert_nothing_partial_is_loadable(storage, base) == ["300"]
    assert snapshot(storage, storage.join(base, "300")) == old

    pushed = publish(params_for(config, force=True), second)

    assert pushed.version == "301"  # the killed attempt's number, recognised by its files
    assert pushed.bytes_moved == pushed.bytes_total - sum(e.size for e in done[1:])
    assert_published_exactly(destination, pushed.uri, second.uri)
    assert snapshot(storage, storage.join(base, "300")) == old


def _write_lease(destination: str, pid: int, expires_in: float, version: str = "300") -> str:
    storage = storage_for(destination)
    uri = lock_uri(storage, storage.join(destination, "example"), version)
    body = {"owner": f"{socket.gethostname()}:{pid}:test", "host": socket.gethostname(), "pid": pid,
            "purpose": "publish", "expires_at": time.time() + expires_in}
    storage.write_bytes(uri, json.dumps(body).encode(), if_generation_match=0)
    return uri


def test_a_second_publisher_of_the_same_version_fails_fast(destination: str, tmp_path: Path) -> None:
    config = make_config(destination, tmp_path)
    uri = _write_lease(destination, os.getppid(), expires_in=600)  # a live process on this host
    with pytest.raises(PublishInProgress, match="in progress by"):
        publish(params_for(config), make_export(tmp_path / "staging"))
    storage = storage_for(destination)
    assert list(relative_objects(storage, storage.join(destination, "example"))) == [uri.rsplit("/example/", 1)[1]]


@pytest.mark.parametrize("how", ["dead process", "expired"])
def test_a_stale_lease_is_taken_over(destination: str, tmp_path: Path, how: str) -> None:
    if how == "dead process":
        child = subprocess.Popen(["true"])
        child.wait()
        _write_lease(destination, child.pid, expires_in=600)
    else:
        _write_lease(destination, os.getppid(), expires_in=-1)
    config = make_config(destination, tmp_path)
    export = make_export(tmp_path / "staging")
    pushed = publish(params_for(config), export)
    assert_published_exactly(destination, pushed.uri, export.uri)
    storage = storage_for(destination)
    assert storage.stat(lock_uri(storage, storage.join(destination, "example"), "300")) is None


def test_a_fresh_lock_is_confirmed_without_a_write_and_a_stale_one_is_renewed_or_reported_lost(tmp_path: Path) -> None:
    storage = storage_for(str(tmp_path))
    uri = str(tmp_path / "300.lease.json")
    lock = VersionLock.acquire(storage, uri, ttl=60.0, purpose="publish")
    generation = lock.generation
    lock.confirm()  # renewed a moment ago by acquire: no write
    assert storage.read_versioned(uri)[1] == generation  # type: ignore[index]
    lock.renewed_at -= 21.0  # older than a third of its TTL
    lock.confirm()
    assert storage.read_versioned(uri)[1] != generation and lock.generation != generation  # type: ignore[index]
    storage.write_bytes(uri, b"{}")  # another run took it over
    lock.renewed_at -= 21.0
    with pytest.raises(PublishInProgress, match="taken over"):
        lock.confirm()
    with pytest.raises(PublishInProgress, match="was lost"):
        lock.confirm()


def test_gcs_objects_are_verified_from_the_store_s_answers_not_listed_again(gcs_bucket: str, tmp_path: Path) -> None:
    """After the copies into place, the graph file follows without another listing of the version folder:
    each object was checked against the manifest in the answer to the request that made it."""
    destination = f"gs://{gcs_bucket}/models"
    config = make_config(destination, tmp_path)
    storage = destination_storage(config.destination)
    calls: list[tuple[str, str]] = []

    class Recording:
        def __getattr__(self, name: str) -> object:
            value = getattr(storage, name)
            if not callable(value) or name == "join":
                return value

            def call(*args: object, **kwargs: object) -> object:
                calls.append((name, str(args[0]) if args else ""))
                return value(*args, **kwargs)

            return call

    export = make_export(tmp_path / "staging")
    pushed = publish(params_for(config), export, storage=Recording())  # type: ignore[arg-type]
    assert_published_exactly(destination, pushed.uri, export.uri)
    first_copy = next(i for i, (name, _) in enumerate(calls) if name == "copy")
    graph = next(i for i, (name, source) in enumerate(calls) if name == "upload_file" and source.endswith("saved_model.pb"))
    assert [c for c in calls[first_copy:graph] if c[0] in ("list", "list_files", "list_names", "stat")] == []


def test_unchanged_files_of_a_new_version_are_copied_by_the_store(gcs_bucket: str, tmp_path: Path) -> None:
    destination = f"gs://{gcs_bucket}/models"
    config = make_config(destination, tmp_path)
    publish(params_for(config), make_export(tmp_path / "staging", step=300, seed=7))
    newer = make_export(tmp_path / "staging", step=400, seed=7)  # same bytes, new version
    pushed = publish(params_for(config), newer)
    manifest = manifest_entries(newer.uri)[MANIFEST_PATH]
    assert pushed.bytes_moved == manifest.size  # only the manifest (it names the new version) was sent
    assert pushed.bytes_copied == pushed.bytes_total - manifest.size
    assert_published_exactly(destination, pushed.uri, newer.uri)


def test_variables_by_reference_to_a_checkpoint_in_the_bucket_move_no_variable_bytes(
    gcs_bucket: str, tmp_path: Path
) -> None:
    destination = f"gs://{gcs_bucket}/models"
    export = make_export(tmp_path / "staging", checkpoint_uri=f"gs://{gcs_bucket}/train/model.ckpt-300")
    storage = storage_for(destination)
    for suffix in ("index", "data-00000-of-00002", "data-00001-of-00002"):  # the trainer's checkpoint
        storage.upload_file(
            os.path.join(export.uri, "variables", f"variables.{suffix}"),
            f"gs://{gcs_bucket}/train/model.ckpt-300.{suffix}",
            if_generation_match=0,
        )
    variables = sum(os.path.getsize(p) for p in Path(export.uri, "variables").iterdir())

    pushed = publish(params_for(make_config(destination, tmp_path)), export)

    assert pushed.bytes_copied == variables
    assert pushed.bytes_moved == pushed.bytes_total - variables
    assert_published_exactly(destination, pushed.uri, export.uri)


def test_local_publish_links_the_export_and_copies_when_asked_not_to(tmp_path: Path) -> None:
    export = make_export(tmp_path / "staging")
    linked = publish(params_for(make_config(str(tmp_path / "linked"), tmp_path)), export)
    copied = publish(params_for(make_config(str(tmp_path / "copied"), tmp_path, hard_links=False)), export)
    for relative in ("saved_model.pb", "variables/variables.data-00000-of-00002"):
        source = os.stat(os.path.join(export.uri, relative))
        assert os.stat(os.path.join(linked.uri, relative)).st_ino == source.st_ino  # O(1): no bytes copied
        assert os.stat(os.path.join(copied.uri, relative)).st_ino != source.st_ino
    assert linked.bytes_moved == 0 and linked.bytes_copied == linked.bytes_total
    assert copied.bytes_moved == copied.bytes_total
    assert_published_exactly(str(tmp_path / "copied"), copied.uri, export.uri)


def test_a_local_copy_dedupes_against_an_earlier_version_by_hard_link(tmp_path: Path) -> None:
    destination = str(tmp_path / "published")
    config = make_config(destination, tmp_path, hard_links=False)
    first = publish(params_for(config), make_export(tmp_path / "staging", step=300, seed=3))
    second = publish(params_for(config), make_export(tmp_path / "staging", step=400, seed=3))
    relative = "variables/variables.data-00000-of-00002"
    assert os.stat(os.path.join(first.uri, relative)).st_ino == os.stat(os.path.join(second.uri, relative)).st_ino
    assert second.bytes_moved < first.bytes_moved


def test_dry_run_writes_the_manifest_and_nothing_at_the_destination(destination: str, tmp_path: Path) -> None:
    export = make_export(tmp_path / "staging")
    pushed = publish(params_for(make_config(destination, tmp_path), dry_run=True), export)
    assert Path(export.uri, MANIFEST_PATH).exists()
    assert pushed.bytes_moved == 0
    storage = storage_for(destination)
    assert list(storage.list(storage.join(destination, "example"))) == []


def test_progress_is_logged_with_rate_and_eta_and_drawn_as_a_bar(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = iter(float(t) for t in range(100))
    progress = Progress("publish x", 4 * 1024 * 1024, 2, log_every=1.0, clock=lambda: next(clock))
    screen = io.StringIO()
    handler = ProgressBar(screen)
    bar_log.addHandler(handler)
    bar_log.setLevel(logging.INFO)
    caplog.set_level(logging.INFO, logger="components.publish.transfer")
    try:
        progress.add_bytes(1024 * 1024)
        progress.add_bytes(1024 * 1024)
        progress.object_done()
        snapshot = progress.snapshot()
        progress.finish()
    finally:
        bar_log.removeHandler(handler)
    assert snapshot.bytes_done == 2 * 1024 * 1024 and snapshot.rate > 0 and snapshot.eta is not None
    assert "MiB/s" in caplog.text and "ETA" in caplog.text and "1/2 objects" in caplog.text
    assert "%" in screen.getvalue() and screen.getvalue().endswith("\n")


def test_a_real_publish_logs_progress(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="components.publish")
    config = make_config(str(tmp_path / "published"), tmp_path, hard_links=False)
    publish(params_for(config), make_export(tmp_path / "staging"))
    assert "100%" in caplog.text and "7/7 objects" in caplog.text


def test_the_configured_back_end_uses_the_destination_options(gcs: object, tmp_path: Path) -> None:
    config = make_config("gs://bucket/models", tmp_path, timeout_s=7.0, retry_deadline_s=9.0, chunk_mib=4, parallelism=20)
    storage = destination_storage(config.destination)
    assert storage.options.timeout == 7.0 and storage.options.retry_deadline == 9.0
    assert storage.options.chunk_size == 4 * 1024 * 1024 and storage.options.pool_size >= 20


def test_nothing_partial_is_ever_loadable_after_the_happy_path(destination: str, tmp_path: Path) -> None:
    config = make_config(destination, tmp_path)
    for step in (100, 200):
        publish(params_for(config), make_export(tmp_path / "staging", step=step, seed=step))
    storage = storage_for(destination)
    assert assert_nothing_partial_is_loadable(storage, storage.join(destination, "example")) == ["100", "200"]


def test_progress_names_bytes_linked_and_copied_by_the_store_apart_from_uploaded(
    gcs_bucket: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A republish that links or copies everything no longer reads '0.0 MiB of 0.0 MiB'."""
    caplog.set_level(logging.INFO, logger="components.publish.transfer")
    export = make_export(tmp_path / "staging", step=300, seed=5)
    total = sum(DEFAULT_FILES.values()) / 1024**2
    publish(params_for(make_config(str(tmp_path / "linked"), tmp_path)), export)
    linked = [r.getMessage() for r in caplog.records if "100%" in r.getMessage()][-1]
    manifest_mib = os.path.getsize(os.path.join(export.uri, MANIFEST_PATH)) / 1024**2
    assert f"{total + manifest_mib:.1f} MiB of {total + manifest_mib:.1f} MiB (100%)" in linked
    assert f"0.0 MiB uploaded, 0.0 MiB copied by the store, {total + manifest_mib:.1f} MiB linked" in linked

    destination = f"gs://{gcs_bucket}/models"
    publish(params_for(make_config(destination, tmp_path)), export)
    caplog.clear()
    newer = make_export(tmp_path / "staging", step=400, seed=5)  # same bytes, a new version: copied by the store
    publish(params_for(make_config(destination, tmp_path)), newer)
    copied = [r.getMessage() for r in caplog.records if "100%" in r.getMessage()][-1]
    newer_manifest = os.path.getsize(os.path.join(newer.uri, MANIFEST_PATH)) / 1024**2
    assert f"{newer_manifest:.1f} MiB uploaded, {total:.1f} MiB copied by the store, 0.0 MiB linked" in copied


def test_the_progress_bar_names_what_the_store_did(tmp_path: Path) -> None:
    clock = iter(float(t) for t in range(100))
    progress = Progress("publish x", 3 * 1024 * 1024, 3, log_every=100.0, clock=lambda: next(clock))
    screen = io.StringIO()
    handler = ProgressBar(screen)
    bar_log.addHandler(handler)
    bar_log.setLevel(logging.INFO)
    try:
        progress.add_bytes(1024 * 1024)
        progress.object_done("uploaded", 1024 * 1024)
        progress.object_done("copied", 1024 * 1024)
        progress.object_done("linked", 1024 * 1024)
        snapshot = progress.finish()
    finally:
        bar_log.removeHandler(handler)
    assert (snapshot.bytes_uploaded, snapshot.bytes_copied, snapshot.bytes_linked) == (1024**2,) * 3
    assert snapshot.bytes_done == snapshot.bytes_total
    last = screen.getvalue().rstrip("\n").rsplit("\r", 1)[-1]
    assert "100% 3.0 MiB/3.0 MiB" in last and "(3/3 objects; 1.0 MiB copied by the store, 1.0 MiB linked)" in last


def test_a_numbered_local_folder_without_a_graph_is_moved_out_of_sight_and_reused(tmp_path: Path) -> None:
    """Left by an older exportflow or another tool: TF Serving would try to load it. The next publish
    moves it under .exportflow/building at once, keeps what matches and replaces what does not."""
    destination = str(tmp_path / "published")
    export = make_export(tmp_path / "staging")
    leftover = Path(destination, "example", "300")
    (leftover / "variables").mkdir(parents=True)
    good = "variables/variables.data-00000-of-00002"
    (leftover / good).write_bytes(Path(export.uri, good).read_bytes())
    (leftover / "variables" / "variables.index").write_bytes(b"not the index")
    pushed = publish(params_for(make_config(destination, tmp_path, hard_links=False)), export)
    assert pushed.bytes_moved == pushed.bytes_total - DEFAULT_FILES[good]  # the matching shard was kept
    assert_published_exactly(destination, pushed.uri, export.uri)
    assert not Path(destination, "example", ".exportflow", "building", "300").exists()


def test_abandoned_building_folders_are_collected_unless_a_live_run_owns_them(destination: str, tmp_path: Path) -> None:
    config = make_config(destination, tmp_path, hard_links=False, parallelism=1)
    storage = storage_for(destination)
    base = storage.join(destination, "example")

    def stop_after_two(event: PublishEvent) -> None:
        if event.kind == "uploaded":
            raise Interrupted

    for step in (100, 200):
        with pytest.raises(Interrupted):
            publish(params_for(config), make_export(tmp_path / "staging", step=step, seed=step), observer=stop_after_two)
    building = storage.join(base, ".exportflow", "building")
    assert storage.list_names(building) == ["100", "200"] and storage.list_names(base) == [".exportflow"]
    live = lock_uri(storage, base, "200")
    body = {"owner": f"{socket.gethostname()}:{os.getppid()}:test", "host": socket.gethostname(), "pid": os.getppid(),
            "purpose": "publish", "expires_at": time.time() + 600}
    storage.write_bytes(live, json.dumps(body).encode(), if_generation_match=0)

    prune_published_versions(storage, destination, "example", RetentionPolicy(keep=2))

    assert storage.list_names(building) == ["200"]  # being built by a live run: untouched
    storage.delete(live)
    assert collect_abandoned_builds(storage, base) == ["200"]
    assert list(storage.list(building)) == []
    assert [n for n in storage.list_names(storage.join(base, ".exportflow")) if n.endswith(".lease.json")] == []


def test_the_local_commit_rename_never_replaces_a_folder_with_files_and_creates_parents(tmp_path: Path) -> None:
    from components.storage import PreconditionFailed
    from components.storage.local import LocalStorage

    storage = LocalStorage()
    (tmp_path / "building" / "300").mkdir(parents=True)
    (tmp_path / "building" / "300" / "saved_model.pb").write_bytes(b"graph")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "saved_model.pb").write_bytes(b"someone else's")
    with pytest.raises(PreconditionFailed, match="already exists"):
        storage.rename_folder(str(tmp_path / "building" / "300"), str(tmp_path / "taken"))
    assert (tmp_path / "taken" / "saved_model.pb").read_bytes() == b"someone else's"
    storage.rename_folder(str(tmp_path / "building" / "300"), str(tmp_path / "base" / "entry" / "300"))
    assert (tmp_path / "base" / "entry" / "300" / "saved_model.pb").read_bytes() == b"graph"
    assert not (tmp_path / "building" / "300").exists()
