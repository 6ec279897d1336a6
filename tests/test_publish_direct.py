"""Direct placement (protocol.py, "Placement"): under ``serving.mode: labels`` a GCS version is written
straight into its numbered folder — no building folder, no copies into place — because TF Serving loads
only the versions exportflow lists in ``models.config``, and exportflow lists one only after its commit
marker. These tests hold every guarantee of the protocol in that mode: nothing is listed before the
marker, a ``kill -9`` after any object leaves nothing listed and a rerun completes it, a rerun moves
nothing, a second writer is refused, ``force`` takes a fresh number, and retention removes a killed
run's half-made folder (never a listed one). Local disk and multi-graph sets keep their building folder.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components.artifacts import ExportArtifact
from components.config.schema import PipelineConfig
from components.layout import BOOKKEEPING
from components.manifest import MANIFEST_PATH
from components.publish.errors import PublishInProgress, VersionConflict
from components.publish.executor import publish
from components.publish.layout import lock_uri
from components.serving import control
from components.serving.errors import VersionNotPublished
from components.serving.protection import retention_for_config
from components.storage import Storage, crc32c_of_file, storage_for
from components.transfer.pool import PublishEvent
from tests.support.publish_child import ChildServer
from tests.support.publishing import (
    assert_nothing_partial_is_loadable,
    make_config,
    make_export,
    params_for,
    relative_objects,
)

ROOT = Path(__file__).resolve().parent.parent
LABELS = {"mode": "labels"}


def assert_published_exactly(destination: str, version_dir: str, export_dir: str) -> None:
    """The version folder holds exactly the export's files (its manifest's, and the manifest itself),
    each with the manifest's size and CRC32C as the store lists them."""
    storage = storage_for(destination)
    objects = relative_objects(storage, version_dir)
    manifest = json.loads(Path(export_dir, MANIFEST_PATH).read_text())
    expected = {f["path"]: (f["size"], f["crc32c"]) for f in manifest["files"]}
    manifest_file = os.path.join(export_dir, MANIFEST_PATH)
    expected[MANIFEST_PATH] = (os.path.getsize(manifest_file), crc32c_of_file(manifest_file))
    assert {p: (i.size, i.crc32c) for p, i in objects.items()} == expected


def labels_config(destination: str, tmp_path: Path, **destination_fields: Any) -> PipelineConfig:
    config = make_config(destination, tmp_path, **destination_fields)
    return dataclasses.replace(config, serving=dataclasses.replace(config.serving, **LABELS))


def record(events: list[PublishEvent]) -> Any:
    return events.append


def building_objects(storage: Storage, destination: str) -> list[str]:
    return [i.uri for i in storage.list(storage.join(destination, "example", BOOKKEEPING, "building"))]


def listed_before_marker(config: PipelineConfig, version: int) -> None:
    """The only way into models.config (``control``) refuses a version without its commit marker."""
    with pytest.raises(VersionNotPublished, match="no commit marker"):
        control.pin(config, version)


# ------------------------------------------------------------------------------------ happy path
def test_labels_mode_writes_gcs_versions_straight_into_place_with_the_graph_file_then_the_marker_last(
    gcs_bucket: str, tmp_path: Path
) -> None:
    destination = f"gs://{gcs_bucket}/models"
    config = labels_config(destination, tmp_path, parallelism=3)
    export = make_export(tmp_path / "staging")
    events: list[PublishEvent] = []
    storage = storage_for(destination)

    def never_listed_before_the_marker(event: PublishEvent) -> None:
        events.append(event)
        if event.kind != "marker":
            listed_before_marker(config, 300)

    pushed = publish(params_for(config), export, observer=never_listed_before_the_marker)

    assert_published_exactly(destination, pushed.uri, export.uri)
    kinds = [e.kind for e in events]
    assert kinds[0] == "lease" and kinds[-1] == "marker" and set(kinds[1:-1]) == {"uploaded"}
    assert all(e.uri.startswith(pushed.uri + "/") for e in events[1:-1])  # no building folder, no copies
    assert events[-2].uri == pushed.uri + "/saved_model.pb"  # the graph file after every other object
    assert building_objects(storage, destination) == []
    assert pushed.bytes_moved == pushed.bytes_total and pushed.bytes_copied == 0
    control.pin(config, 300)  # committed: now it may be listed
    before = {p: i.generation for p, i in relative_objects(storage, storage.join(destination, "example")).items()}

    again = publish(params_for(config), export)

    assert again.already_published and again.bytes_moved == 0 and again.bytes_copied == 0
    after = {p: i.generation for p, i in relative_objects(storage, storage.join(destination, "example")).items()}
    assert after == before


def test_latest_mode_local_disk_and_multi_graph_sets_keep_the_building_folder(gcs_bucket: str, tmp_path: Path) -> None:
    """Placement follows who may load a version: under ``latest`` every numbered folder is loadable, a
    set is never listed in models.config (labels refuse sets), and local disk renames in one step."""
    cases = [
        ("latest", f"gs://{gcs_bucket}/latest", make_config(f"gs://{gcs_bucket}/latest", tmp_path), ()),
        ("set", f"gs://{gcs_bucket}/set", labels_config(f"gs://{gcs_bucket}/set", tmp_path), ("entry", "ps_0")),
        ("local", str(tmp_path / "local"), labels_config(str(tmp_path / "local"), tmp_path, hard_links=False), ()),
    ]
    for name, destination, config, graphs in cases:
        events: list[PublishEvent] = []
        publish(params_for(config), make_export(tmp_path / name, graphs=graphs), observer=record(events))
        data = [e for e in events if e.kind == "uploaded" and not e.uri.endswith("/saved_model.pb")]
        assert data and all("/.exportflow/building/" in e.uri for e in data), name
        if name == "local":
            assert "renamed" in [e.kind for e in events]


# -------------------------------------------------------------------------------------- guarantees
def _write_lease(storage: Storage, base: str, pid: int, expires_in: float) -> str:
    uri = lock_uri(storage, base, "300")
    body = {"owner": f"{socket.gethostname()}:{pid}:test", "host": socket.gethostname(), "pid": pid,
            "purpose": "publish", "expires_at": time.time() + expires_in}
    storage.write_bytes(uri, json.dumps(body).encode(), if_generation_match=0)
    return uri


def test_a_second_direct_writer_is_refused_before_it_writes(gcs_bucket: str, tmp_path: Path) -> None:
    destination = f"gs://{gcs_bucket}/models"
    storage = storage_for(destination)
    base = storage.join(destination, "example")
    _write_lease(storage, base, os.getppid(), expires_in=600)  # a live process on this host
    with pytest.raises(PublishInProgress, match="in progress by"):
        publish(params_for(labels_config(destination, tmp_path)), make_export(tmp_path / "staging"))
    assert list(relative_objects(storage, base)) == [".exportflow/300.lease.json"]


def test_force_in_labels_mode_goes_to_a_fresh_number_straight_into_place_and_leaves_the_old_one(
    gcs_bucket: str, tmp_path: Path
) -> None:
    destination = f"gs://{gcs_bucket}/models"
    config = labels_config(destination, tmp_path)
    storage = storage_for(destination)
    base = storage.join(destination, "example")
    first, second = make_export(tmp_path / "a", seed=1), make_export(tmp_path / "b", seed=2)
    publish(params_for(config), first)
    control.pin(config, 300)
    old = {p: i.generation for p, i in relative_objects(storage, storage.join(base, "300")).items()}
    with pytest.raises(VersionConflict):
        publish(params_for(config), second)
    events: list[PublishEvent] = []

    pushed = publish(params_for(config, force=True), second, observer=record(events))

    assert pushed.version == "301" and pushed.uri == storage.join(base, "301")
    assert_published_exactly(destination, pushed.uri, second.uri)
    assert_published_exactly(destination, storage.join(base, "300"), first.uri)
    assert {p: i.generation for p, i in relative_objects(storage, storage.join(base, "300")).items()} == old
    assert all("/301/" in e.uri or "/301." in e.uri for e in events)  # nothing of 300 touched
    assert not [e for e in events if "/.exportflow/building/" in e.uri]
    assert building_objects(storage, destination) == []


# ------------------------------------------------------------------------------------------- kills
@pytest.fixture(scope="module")
def children(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChildServer]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(tmp_path_factory.mktemp("pycache"))
    server = ChildServer(env, ROOT)
    yield server
    server.close()


def killed_run(children: ChildServer, destination: str, tmp_path: Path, export: ExportArtifact, k: int | None) -> Any:
    spec = {
        "destination": destination, "base_dir": str(tmp_path), "export": export.to_json(),
        "destination_fields": {"parallelism": 2}, "serving_fields": LABELS,
        "env": {"STORAGE_EMULATOR_HOST": os.environ.get("STORAGE_EMULATOR_HOST", "")},
    }
    return children.run(spec, kill_at=k)


def test_kill_9_after_every_object_never_lists_a_partial_version_and_a_rerun_completes_it(
    children: ChildServer, gcs_bucket: str, tmp_path: Path
) -> None:
    """Version 100 is published and listed; 300 is published directly and killed after each object it
    writes. After every kill: models.config still lists only 100, 300 cannot be listed (no marker) unless
    the kill came after its marker, and no folder holds saved_model.pb beside a missing or wrong file.
    The rerun completes 300, re-using what the killed run wrote."""
    export = make_export(tmp_path / "staging")
    full = killed_run(children, f"gs://{gcs_bucket}/full", tmp_path, export, None)
    assert full.exit == 0 and [e["kind"] for e in full.events][-1] == "marker"
    total = len(full.events)
    assert total >= 8 and not [e for e in full.events if "/building/" in e["uri"]]
    reused = 0
    for k in range(1, total + 1):
        destination = f"gs://{gcs_bucket}/k{k}"
        config = labels_config(destination, tmp_path, parallelism=2)
        storage = storage_for(destination)
        publish(params_for(config), make_export(tmp_path / "older", step=100, seed=100))
        control.pin(config, 100)
        listed = storage.read_bytes(storage.join(destination, "models.config"))

        kill = killed_run(children, destination, tmp_path, export, k)

        assert kill.exit == -9 and [e["kind"] for e in kill.events] == [e["kind"] for e in full.events[:k]]
        assert storage.read_bytes(storage.join(destination, "models.config")) == listed
        marked = storage.stat(storage.join(destination, "example", BOOKKEEPING, "300.published.json")) is not None
        assert marked == (k == total)
        if not marked:
            listed_before_marker(config, 300)
        assert_nothing_partial_is_loadable(storage, storage.join(destination, "example"))

        pushed = publish(params_for(config), export)

        assert_published_exactly(destination, pushed.uri, export.uri)
        reused += pushed.bytes_moved < pushed.bytes_total
        assert [n for n in storage.list_names(storage.join(destination, "example", BOOKKEEPING)) if n.endswith(".lease.json")] == []
        assert building_objects(storage, destination) == []
        control.pin(config, 300)  # committed: now listable
        storage.delete_prefix(destination)  # the emulator lists a whole bucket per request: keep it small
    assert reused == total - 1  # every kill after the first object left something the rerun kept


def test_retention_removes_a_killed_direct_run_s_half_made_folder_but_never_a_listed_version(
    children: ChildServer, gcs_bucket: str, tmp_path: Path
) -> None:
    destination = f"gs://{gcs_bucket}/models"
    config = labels_config(destination, tmp_path, parallelism=2)
    storage = storage_for(destination)
    base = storage.join(destination, "example")
    older = make_export(tmp_path / "older", step=100, seed=100)
    publish(params_for(config), older)
    control.pin(config, 100)
    export = make_export(tmp_path / "staging")
    kill = killed_run(children, destination, tmp_path, export, 4)  # lease + 3 objects into 300/
    half_made = relative_objects(storage, storage.join(base, "300"))  # 3, or 4 (a parallel upload)
    assert kill.exit == -9 and len(half_made) >= 3 and "saved_model.pb" not in half_made
    storage.delete(lock_uri(storage, base, "300"))  # the killed run's (stale) lock, replaced by a live one
    live = _write_lease(storage, base, os.getppid(), expires_in=600)

    retention_for_config(config)
    assert relative_objects(storage, storage.join(base, "300")).keys() == half_made.keys()  # a live lock: left alone

    storage.delete(live)
    (report,) = retention_for_config(config)

    assert "300" in report.deleted and relative_objects(storage, storage.join(base, "300")) == {}
    assert "100" not in report.deleted and [n for n in storage.list_names(base) if n.isdigit()] == ["100"]
    assert_published_exactly(destination, storage.join(base, "100"), older.uri)
