"""Publishing under faults: a network that resets and stalls, ``kill -9`` at many points, bad input.

* The network faults come from our loopback TCP proxy between the GCS client and the emulator; the
  client's retry deadline and timeouts are kept short through ``StorageOptions`` (a seam of ours, not
  a mock of the SDK). The emulator does not enforce generation preconditions and lacks XML multipart
  uploads, so these tests prove retries, restarts and verification — not that GCS rejects a
  concurrent writer (real GCS does; see ``test_storage_backends`` for what is proven locally).
* Kills: a child process publishes and SIGKILLs itself after k objects (through the publisher's
  observer seam) or after n bytes (through a Storage wrapper); after every kill no version folder holds
  ``saved_model.pb`` beside a missing or wrong file, and a rerun completes.
* Bad input: each case raises its own error and leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from components.artifacts import ExportArtifact
from components.manifest import MANIFEST_PATH
from components.publish.errors import (
    ChecksumMismatch,
    DestinationError,
    DestinationNotFound,
    ExportIncomplete,
)
from components.publish.executor import publish
from components.publish.protocol import BOOKKEEPING
from components.storage import StorageOptions, crc32c_of_file, storage_for
from components.storage.gcs import GCSStorage
from tests.support.faultproxy import DropResponse, FaultProxy, Reset, Stall
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


def run_child(spec: dict[str, Any], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "ignore", "-m", "tests.support.publish_child", json.dumps(spec)],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=False,
        env={**env, "STORAGE_EMULATOR_HOST": os.environ.get("STORAGE_EMULATOR_HOST", "")},
    )


def kill_and_rerun(
    env: dict[str, str], destination: str, tmp_path: Path, export: ExportArtifact, fault: dict[str, Any], **fields: Any
) -> int:
    """One kill, the invariant after it, one rerun, the invariant and completeness after that."""
    spec = {"destination": destination, "base_dir": str(tmp_path), "export": export.to_json(),
            "destination_fields": fields, **fault}
    child = run_child(spec, env)
    assert child.returncode in (-9, 0), child.stdout + child.stderr[-2000:]
    storage = storage_for(destination)
    base = storage.join(destination, "example")
    assert_nothing_partial_is_loadable(storage, base)
    pushed = publish(params_for(make_config(destination, tmp_path, **fields)), export)
    graphs = sorted(export.graphs) or [""]
    assert assert_nothing_partial_is_loadable(storage, base) == [f"{g}/300".lstrip("/") for g in graphs]
    assert storage.stat(pushed.marker_uri) is not None
    assert [n for n in storage.list_names(storage.join(base, BOOKKEEPING)) if n.endswith(".lease.json")] == []
    return child.returncode


def test_kill_9_after_every_object_on_local_disk_then_rerun(child_env: dict[str, str], tmp_path: Path) -> None:
    export = make_export(tmp_path / "staging")
    outcomes = [
        kill_and_rerun(child_env, str(tmp_path / f"k{k}"), tmp_path, export, {"kill_after_events": k}, hard_links=False, parallelism=2)
        for k in range(1, 11)  # the lease, 7 objects, the marker, and one past the end
    ]
    assert outcomes[:9] == [-9] * 9 and outcomes[9] == 0
    for n in (30_000, 250_000, 520_000):  # mid-file
        assert kill_and_rerun(child_env, str(tmp_path / f"b{n}"), tmp_path, export, {"kill_after_bytes": n}, hard_links=False) == -9


def test_kill_9_of_a_multi_graph_set_never_leaves_a_loadable_partial_graph(child_env: dict[str, str], tmp_path: Path) -> None:
    export = make_export(tmp_path / "staging", graphs=("entry", "ps_0"))
    # 1 lease, 2-11 data files, 12-13 manifests, 14 the ps graph, 15 the entry graph, 16 the marker
    for k in (2, 11, 13, 14, 15, 16):
        assert kill_and_rerun(child_env, str(tmp_path / f"k{k}"), tmp_path, export, {"kill_after_events": k}) == -9


def test_kill_9_on_gcs_then_rerun(child_env: dict[str, str], gcs_bucket: str, tmp_path: Path) -> None:
    export = make_export(tmp_path / "staging", files={**FAULT_FILES, "variables/variables.data-00000-of-00001": 9 * MiB})
    outcomes = [
        kill_and_rerun(child_env, f"gs://{gcs_bucket}/k{k}", tmp_path, export, {"kill_after_events": k}, parallelism=2, chunk_mib=4)
        # 1 lease, 2-6 data, 7 manifest, 8 graph, 9 marker. Each child pays ~3 s importing the GCS SDK
        # (google.api_core scans every installed distribution on import), so the points are chosen.
        for k in (2, 6, 7, 8, 9)
    ]
    assert outcomes == [-9] * 5
    for n in (5 * MiB,):  # inside a resumable upload
        assert kill_and_rerun(child_env, f"gs://{gcs_bucket}/b{n}", tmp_path, export, {"kill_after_bytes": n}, chunk_mib=4) == -9


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
