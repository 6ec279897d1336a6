"""Publishing under faults: a network that resets and stalls, ``kill -9`` at many points, bad input.

* The network faults come from our loopback TCP proxy between the GCS client and the emulator; the
  client's retry deadline and timeouts are kept short through ``StorageOptions`` (a seam of ours, not
  a mock of the SDK). The emulator does not enforce generation preconditions and lacks XML multipart
  uploads, so these tests prove retries, restarts and verification — not that GCS rejects a
  concurrent writer (real GCS does; see ``test_storage_backends`` for what is proven locally).
* Kills: a fork server (``tests/support/publish_child.py``) starts a publishing child per case; the
  child reports every object it writes through the publisher's observer seam and stops after the k-th,
  and the test SIGKILLs it there (or it kills itself n bytes into an upload). After every kill the
  destination is listed as TF Serving would list it: on local disk no numbered folder without
  ``saved_model.pb`` ever exists; on GCS such objects exist only at the kill points inside the
  documented placement window. No folder ever holds ``saved_model.pb`` beside a missing or wrong file,
  and a rerun completes the version (every file matching the manifest's CRC32C) leaving no lease and
  no building folder behind.
* Bad input: each case raises its own error and leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components.artifacts import ExportArtifact
from components.layout import BOOKKEEPING, GRAPH_FILES
from components.manifest import MANIFEST_PATH
from components.publish.errors import (
    ChecksumMismatch,
    DestinationError,
    DestinationNotFound,
    ExportIncomplete,
)
from components.publish.executor import publish
from components.storage import Storage, StorageOptions, crc32c_of_file, storage_for
from components.storage.gcs import GCSStorage
from tests.support.faultproxy import DropResponse, FaultProxy, Reset, Stall
from tests.support.publish_child import ChildServer
from tests.support.publishing import (
    assert_nothing_partial_is_loadable,
    loadable_versions,
    make_config,
    make_export,
    params_for,
    relative_objects,
)

ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024
FAULT_FILES = {
    "saved_model.pb": 300_000,
    "variables/variables.index": 50_000,
    "variables/variables.data-00000-of-00001": 10 * MiB,  # resumable, in 4 MiB chunks
    "assets/a.bin": 3 * MiB,
    "assets/b.bin": 2 * MiB,
    "assets.extra/tf_serving_warmup_requests": 700_000,
}


# ------------------------------------------------------------------------------------------- network
def test_publish_completes_through_resets_stalls_and_lost_answers(
    gcs, gcs_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Upload requests 2, 5, 9, 13 are cut off mid-body, 3 and 11 stall past the client's timeout, the
    answer to 7 is lost; publish finishes and every object matches the manifest."""
    schedule = {2: Reset(60_000), 3: Stall(4.0), 5: Reset(200_000), 7: DropResponse(), 9: Reset(60_000),
                11: Stall(4.0), 13: Reset(1_000_000)}
    uploads = 0

    def plan(_connection: int, head: bytes) -> Any:
        nonlocal uploads
        if not head.startswith((b"POST /upload/", b"PUT /upload/")):
            return None
        uploads += 1
        fault = schedule.get(uploads)
        if isinstance(fault, Reset):
            return Reset(head.find(b"\r\n\r\n") + 4 + fault.after_bytes)  # that far into the body
        return fault

    host, port = gcs.host.split(":")
    storage = GCSStorage(
        options=StorageOptions(connect_timeout=2, timeout=2, retry_deadline=30, retry_initial_delay=0.05, chunk_size=4 * MiB)
    )
    destination = f"gs://{gcs_bucket}/models"
    export = make_export(tmp_path / "staging", files=FAULT_FILES)
    with FaultProxy((host, int(port)), plan) as proxy:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://{proxy.address}")
        pushed = publish(params_for(make_config(destination, tmp_path, parallelism=3)), export, storage=storage)
    assert len(proxy.faults_of(Reset)) == 4 and len(proxy.faults_of(Stall)) == 2
    assert len(proxy.faults_of(DropResponse)) == 1
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.endpoint)
    direct = GCSStorage()
    objects = relative_objects(direct, pushed.uri)
    manifest = json.loads(Path(export.uri, MANIFEST_PATH).read_text())
    assert set(objects) == {f["path"] for f in manifest["files"]} | {MANIFEST_PATH}
    for entry in manifest["files"]:
        assert (objects[entry["path"]].size, objects[entry["path"]].crc32c) == (entry["size"], entry["crc32c"])
    assert objects[MANIFEST_PATH].crc32c == crc32c_of_file(os.path.join(export.uri, MANIFEST_PATH))
    assert direct.stat(pushed.marker_uri) is not None


# --------------------------------------------------------------------------------------------- kills
@pytest.fixture(scope="module")
def child_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Children share a bytecode cache outside the source tree, so only the first one compiles."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(tmp_path_factory.mktemp("pycache"))
    return env


@pytest.fixture(scope="module")
def children(child_env: dict[str, str]) -> Iterator[ChildServer]:
    """One fork server for every kill: each kill costs a fork, not a Python start and SDK import."""
    server = ChildServer(child_env, ROOT)
    yield server
    server.close()


def run_child(spec: dict[str, Any], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "ignore", "-m", "tests.support.publish_child", json.dumps(spec)],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=False,
        env={**env, "STORAGE_EMULATOR_HOST": os.environ.get("STORAGE_EMULATOR_HOST", "")},
    )


def numbered_without_graph(storage: Storage, base: str, graphs: list[str]) -> list[str]:
    """What TF Serving's file-system source would try and fail to load: every integer-named child of each
    model base path (``base``, or ``base/<graph>`` for a set) that holds no saved_model.pb."""
    found = []
    for graph in graphs:
        model_base = storage.join(base, graph) if graph else base
        for name in storage.list_names(model_base):
            folder = storage.join(model_base, name)
            if name.isdigit() and not any(storage.stat(storage.join(folder, f)) for f in GRAPH_FILES):
                found.append(f"{graph}/{name}".lstrip("/"))
    return found


@dataclasses.dataclass(frozen=True)
class Kill:
    events: list[dict[str, Any]]  # what the child reported before it died
    exit: int
    unready: list[str]  # numbered folders without saved_model.pb right after the kill


def kill_and_rerun(
    children: ChildServer, destination: str, tmp_path: Path, export: ExportArtifact, *,
    kill_at: int | None = None, kill_after_bytes: int | None = None, **fields: Any,
) -> Kill:
    """One kill, what serving would see after it, one rerun, then completeness and no leftovers."""
    spec: dict[str, Any] = {
        "destination": destination, "base_dir": str(tmp_path), "export": export.to_json(), "destination_fields": fields,
        "env": {"STORAGE_EMULATOR_HOST": os.environ.get("STORAGE_EMULATOR_HOST", "")},
    }
    if kill_after_bytes is not None:
        spec["kill_after_bytes"] = kill_after_bytes
    child = children.run(spec, kill_at=kill_at)
    assert child.exit in (-9, 0), (child.exit, child.result)
    storage = storage_for(destination)
    base = storage.join(destination, "example")
    graphs = sorted(export.graphs) or [""]
    assert_nothing_partial_is_loadable(storage, base)
    unready = numbered_without_graph(storage, base, graphs)
    pushed = publish(params_for(make_config(destination, tmp_path, **fields)), export)
    assert assert_nothing_partial_is_loadable(storage, base) == [f"{g}/300".lstrip("/") for g in graphs]
    assert numbered_without_graph(storage, base, graphs) == []
    assert storage.stat(pushed.marker_uri) is not None
    assert [n for n in storage.list_names(storage.join(base, BOOKKEEPING)) if n.endswith(".lease.json")] == []
    assert list(storage.list(storage.join(base, BOOKKEEPING, "building"))) == []
    storage.delete_prefix(destination)  # the emulator lists a whole bucket per request: keep it small
    return Kill(child.events, child.exit, unready)


def kill_at_every_event(children: ChildServer, destination: str, tmp_path: Path, export: ExportArtifact, **fields: Any) -> list[Kill]:
    """Kill after event 1, 2, ... until a child runs to the end without reaching its kill point."""
    kills: list[Kill] = []
    while not kills or kills[-1].exit == -9:
        k = len(kills) + 1
        kills.append(kill_and_rerun(children, f"{destination}/k{k}", tmp_path, export, kill_at=k, **fields))
    return kills


def test_kill_9_at_every_step_on_local_disk_never_shows_serving_a_numbered_folder_before_it_is_complete(
    children: ChildServer, tmp_path: Path
) -> None:
    single = make_export(tmp_path / "staging")
    kills = kill_at_every_event(children, str(tmp_path / "one"), tmp_path, single, hard_links=False, parallelism=2)
    kinds = [e["kind"] for e in kills[-1].events]
    assert kinds == ["lease", *["uploaded"] * 6, "uploaded", "renamed", "marker"]  # 6 data + manifest, the graph
    multi = make_export(tmp_path / "staging", graphs=("entry", "ps_0"))
    kills += kill_at_every_event(children, str(tmp_path / "set"), tmp_path, multi)  # hard links
    assert [e["kind"] for e in kills[-1].events].count("renamed") == 2
    kills += [
        kill_and_rerun(children, str(tmp_path / f"b{n}"), tmp_path, single, kill_after_bytes=n, hard_links=False)
        for n in (30_000, 250_000, 520_000)  # mid-file
    ]
    killed = [k for k in kills if k.exit == -9]
    assert len(killed) >= 20
    assert [k.unready for k in kills] == [[]] * len(kills)  # never a numbered folder without saved_model.pb


def gcs_window(kill: Kill, k: int, graphs: list[str]) -> tuple[set[str], set[str]]:
    """The graphs whose numbered prefix must, and may, hold objects without saved_model.pb after event
    ``k``: from the first copy into a version prefix (the placement phase) until that graph's
    saved_model.pb. *Must*: an object of that graph was reported placed. *May*: placements had begun
    (parallel copies finish before their report)."""
    seen = kill.events[:k]

    def placed(graph: str) -> bool:
        return any(e["kind"] == "copied" and f"/{graph}/300/".replace("//", "/") in e["uri"] and "/.exportflow/" not in e["uri"] for e in seen)

    def ready(graph: str) -> bool:
        return any(e["uri"].endswith(f"/{graph}/300/saved_model.pb".replace("//", "/")) for e in seen)

    began = any(e["kind"] == "copied" and "/.exportflow/" not in e["uri"] for e in seen)
    must = {f"{g}/300".lstrip("/") for g in graphs if placed(g) and not ready(g)}
    may = {f"{g}/300".lstrip("/") for g in graphs if began and not ready(g)}
    return must, may


def step_boundaries(events: list[dict[str, Any]]) -> list[int]:
    """The first and last event of every run of same-kind, same-place events (1-based): each protocol
    step's start and end."""
    def step(e: dict[str, Any]) -> tuple[str, bool, bool]:
        return e["kind"], "/.exportflow/" in e["uri"], e["uri"].endswith("/saved_model.pb")

    points = set()
    for i, event in enumerate(events):
        if i == 0 or step(events[i - 1]) != step(event):
            points.add(i + 1)
        if i == len(events) - 1 or step(events[i + 1]) != step(event):
            points.add(i + 1)
    return sorted(points)


def test_kill_9_at_every_step_on_gcs_confines_unloadable_numbered_objects_to_the_placement_window(
    children: ChildServer, gcs_bucket: str, tmp_path: Path
) -> None:
    """On GCS (no rename) numbered objects without saved_model.pb exist only between the first
    server-side copy into place and the graph file — the window documented in the protocol; uploads
    happen out of sight. Every rerun completes the version with every file matching its manifest.
    A single graph is killed after every event, a set (entry + ps_0) at the start and end of each step."""
    window: list[tuple[str, int, str]] = []  # (export, kill point, the last object reported)
    killed = 0
    for name, graphs in (("one", ()), ("set", ("entry", "ps_0"))):
        export = make_export(tmp_path / "staging", graphs=graphs)
        names = sorted(graphs) or [""]
        full = kill_and_rerun(children, f"gs://{gcs_bucket}/{name}-full", tmp_path, export, parallelism=2)
        assert full.exit == 0 and full.events[-1]["kind"] == "marker"
        uploads = [e for e in full.events if e["kind"] == "uploaded" and not e["uri"].endswith("/saved_model.pb")]
        assert uploads and all("/.exportflow/building/" in e["uri"] for e in uploads)  # bytes go out of sight first
        points = range(1, len(full.events) + 1) if name == "one" else step_boundaries(full.events)
        for k in points:
            kill = kill_and_rerun(children, f"gs://{gcs_bucket}/{name}{k}", tmp_path, export, kill_at=k, parallelism=2)
            assert kill.exit == -9 and [e["kind"] for e in kill.events] == [e["kind"] for e in full.events[:k]]
            must, may = gcs_window(full, k, names)
            assert must <= set(kill.unready) <= may, (name, k, full.events[k - 1], kill.unready)
            window += [(name, k, full.events[k - 1]["uri"])] if kill.unready else []
            killed += 1
    assert killed >= 20
    # The window: after placement copies into the version prefix, and (a set) after the ps graph file
    # before the entry's. Never during the uploads, the lease, or after the last graph file.
    assert window
    for name, k, uri in window:
        placement = "/.exportflow/" not in uri and not uri.endswith("/saved_model.pb")
        assert placement or (name == "set" and uri.endswith("/ps_0/300/saved_model.pb")), (name, k, uri)
    bytes_kill = kill_and_rerun(children, f"gs://{gcs_bucket}/bytes", tmp_path, make_export(tmp_path / "staging"), kill_after_bytes=250_000)
    assert bytes_kill.exit == -9 and bytes_kill.unready == []  # mid-upload: nothing numbered exists yet


# ----------------------------------------------------------------------------------------- bad input
def assert_untouched(destination: str) -> None:
    storage = storage_for(destination)
    assert list(storage.list(destination)) == []


def test_missing_bucket(gcs: object, tmp_path: Path) -> None:
    destination = "gs://no-such-bucket/models"
    with pytest.raises(DestinationNotFound, match="'no-such-bucket' does not exist"):
        publish(params_for(make_config(destination, tmp_path)), make_export(tmp_path / "staging"))
    assert GCSStorage().client.lookup_bucket("no-such-bucket") is None


@pytest.mark.parametrize("uri", ["gs://Bad_Bucket!/models", "gs:///models", "gs://bucket/a//b"])
def test_malformed_destination_uri(gcs: object, tmp_path: Path, uri: str) -> None:
    with pytest.raises(DestinationError, match="destination"):
        publish(params_for(make_config(uri, tmp_path)), make_export(tmp_path / "staging"))


def test_relative_local_destination(tmp_path: Path) -> None:
    config = make_config(str(tmp_path / "published"), tmp_path)
    config = dataclasses.replace(config, destination=dataclasses.replace(config.destination, uri="published"))
    with pytest.raises(DestinationError, match="absolute path"):
        publish(params_for(config), make_export(tmp_path / "staging"))
    assert not Path("published").exists()


@pytest.mark.parametrize(
    "change", [{"version": "../../escape"}, {"version": "300/../../x"}, {"version": "v300"}, {"graphs": "../ps"}]
)
def test_destination_outside_the_configured_prefix(destination_kind: str, tmp_path: Path, change: dict, request) -> None:
    destination = str(tmp_path / "published") if destination_kind == "local" else f"gs://{request.getfixturevalue('gcs_bucket')}/models"
    export = make_export(tmp_path / "staging", graphs=("entry",) if "graphs" in change else ())
    if "graphs" in change:
        export = ExportArtifact(**{**export.__dict__, "graphs": {change["graphs"]: export.graphs["entry"]}})
    else:
        export = ExportArtifact(**{**export.__dict__, **change})
    with pytest.raises(DestinationError):
        publish(params_for(make_config(destination, tmp_path)), export)
    storage = storage_for(destination)
    assert list(storage.list(destination)) == []
    assert not (tmp_path / "escape").exists() and not (tmp_path / "x").exists()


@pytest.fixture(params=["local", "gcs"])
def destination_kind(request: pytest.FixtureRequest) -> str:
    return request.param


def test_export_missing_a_variables_shard(tmp_path: Path) -> None:
    export = make_export(tmp_path / "staging")
    os.remove(os.path.join(export.uri, "variables", "variables.data-00001-of-00002"))
    destination = str(tmp_path / "published")
    with pytest.raises(ExportIncomplete, match="missing variables/variables.data-00001-of-00002"):
        publish(params_for(make_config(destination, tmp_path)), export)
    assert not Path(destination).exists()


def test_export_that_lost_a_file_after_its_manifest_was_written(gcs_bucket: str, tmp_path: Path) -> None:
    export = make_export(tmp_path / "staging")
    publish(params_for(make_config(str(tmp_path / "first"), tmp_path)), export)  # writes the manifest
    os.remove(os.path.join(export.uri, "assets", "vocab.txt"))
    destination = f"gs://{gcs_bucket}/models"
    with pytest.raises(ExportIncomplete, match="assets/vocab.txt is missing"):
        publish(params_for(make_config(destination, tmp_path)), export)
    assert_untouched(destination)


def test_export_changed_after_its_manifest_is_refused_and_rolled_back(destination_kind: str, tmp_path: Path, request) -> None:
    destination = str(tmp_path / "published") if destination_kind == "local" else f"gs://{request.getfixturevalue('gcs_bucket')}/models"
    export = make_export(tmp_path / "staging")
    publish(params_for(make_config(str(tmp_path / "first"), tmp_path)), export)  # writes the manifest
    target = Path(export.uri, "variables", "variables.data-00000-of-00002")
    target.write_bytes(bytes(reversed(target.read_bytes())))  # same size, other bytes
    with pytest.raises(ChecksumMismatch):
        publish(params_for(make_config(destination, tmp_path, hard_links=False)), export)
    storage = storage_for(destination)
    assert loadable_versions(storage, storage.join(destination, "example")) == []
    assert [i.uri for i in storage.list(destination)] == []  # partial version removed, lease released


def test_disk_full_on_a_local_destination(child_env: dict[str, str], tmp_path: Path) -> None:
    """A file-size limit on the publishing process (SIGXFSZ ignored) makes writes fail with EFBIG."""
    export = make_export(tmp_path / "staging")
    publish(params_for(make_config(str(tmp_path / "first"), tmp_path)), export)  # manifest written up front
    destination = str(tmp_path / "published")
    spec = {"destination": destination, "base_dir": str(tmp_path), "export": export.to_json(),
            "destination_fields": {"hard_links": False, "parallelism": 1}, "fsize_limit": 100_000}
    child = run_child(spec, child_env)
    assert child.returncode == 3, child.stderr[-2000:]
    outcome = json.loads(child.stdout.strip().splitlines()[-1])
    assert outcome["error"] == "DestinationFull" and "File too large" in outcome["message"]
    assert [i.uri for i in storage_for(destination).list(destination)] == []  # no version, marker or lease
