"""`exportflow demo` end to end: trains, runs the DAG through a real Airflow (SQLite), publishes.

Slow by nature (real training, a migrated Airflow DB, `airflow dags test`), so it runs once per module.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_demo(workspace: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "components.cli", "demo", "--workspace", str(workspace)],
        check=False,  # callers assert on the exit code and the output
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        stdin=subprocess.DEVNULL,
        timeout=600,
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    workspace = tmp_path_factory.mktemp("demo") / "ws"
    return workspace, run_demo(workspace)


def published_versions(workspace: Path) -> list[Path]:
    return sorted((p for p in (workspace / "published" / "example").iterdir() if p.name.isdigit()), key=lambda p: int(p.name))


def test_first_run_publishes_blessed_checkpoints_through_airflow(demo) -> None:
    workspace, result = demo
    assert result.returncode == 0, result.stderr[-3000:]
    versions = published_versions(workspace)
    assert [v.name for v in versions] == ["100", "200", "300"]  # step 0 is below the auc bound
    assert "published 3 new version(s)" in result.stdout
    assert "not exported: step 0: not blessed" in result.stdout
    for line in ("step", "metrics", "strategy", "version", "destination", "files", "warmup"):
        assert line in result.stdout.splitlines()[result.stdout.splitlines().index(next(
            l for l in result.stdout.splitlines() if l.startswith("step"))
        )]
    db = sqlite3.connect(workspace / "airflow" / "airflow.db")
    states = db.execute("select state from dag_run where dag_id = 'exportflow__example'").fetchall()
    assert states == [("success",)]


def test_published_version_is_complete_and_described_by_its_manifest(demo) -> None:
    workspace, _ = demo
    version = published_versions(workspace)[-1]
    manifest = json.loads((version / "assets.extra" / "export_manifest.json").read_text())
    assert manifest["step"] == 300 and manifest["model"] == "example"
    assert manifest["checkpoint"].endswith("model.ckpt-300")
    assert manifest["blessed"] is True and "auc" in manifest["metrics"]
    assert manifest["tensorflow_version"] == "2.15.1"
    listed = {f["path"]: f for f in manifest["files"]}
    on_disk = {
        str(p.relative_to(version)) for p in version.rglob("*") if p.is_file()
    } - {"assets.extra/export_manifest.json"}
    assert set(listed) == on_disk
    assert {"saved_model.pb", "variables/variables.index", "assets.extra/tf_serving_warmup_requests"} <= on_disk
    for path, entry in listed.items():
        assert (version / path).stat().st_size == entry["size"]
    from components.storage import crc32c_of_file

    assert all(crc32c_of_file(str(version / p)) == e["crc32c"] for p, e in listed.items())
    assert manifest["extra"]["warmup_records"] == 100


def test_published_version_loads_under_serve_train_and_eval(demo) -> None:
    import tensorflow as tf

    workspace, _ = demo
    version = str(published_versions(workspace)[-1])
    for tag, signature in (("serve", "serving_default"), ("train", "train"), ("eval", "eval")):
        with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
            meta_graph = tf.compat.v1.saved_model.loader.load(session, [tag], version)
            assert signature in meta_graph.signature_def
    from examples.data import make_example

    loaded = tf.compat.v1.saved_model.load_v2(version, tags=["serve"])
    batch = tf.constant([make_example([0.1] * 8, 3), make_example([-0.5] * 8, 7)])
    probability = loaded.signatures["serving_default"](examples=batch)["probability"].numpy()
    assert probability.shape == (2,) and ((probability > 0) & (probability < 1)).all()


def test_second_run_publishes_nothing_new_and_says_so(demo) -> None:
    workspace, _ = demo
    before = {p: p.stat().st_mtime_ns for p in (workspace / "published" / "example").rglob("*") if p.is_file()}
    result = run_demo(workspace)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "nothing new to publish" in result.stdout
    assert "training the example model" not in result.stdout
    after = {p: p.stat().st_mtime_ns for p in (workspace / "published" / "example").rglob("*") if p.is_file()}
    assert after == before


def test_failure_inside_airflow_exits_non_zero_and_names_the_log(demo, tmp_path: Path) -> None:
    workspace, _ = demo
    broken = tmp_path / "ws"
    shutil.copytree(workspace / "model", broken / "model")
    shutil.copytree(workspace / "data", broken / "data")
    (broken / "data" / "eval.tfrecord").write_bytes(b"this is not a TFRecord file")
    result = run_demo(broken)
    assert result.returncode == 1
    assert "exportflow: error: `airflow dags test exportflow__example` failed" in result.stderr
    assert str(broken / "logs" / "dags-test.log") in result.stderr
    assert "EvaluationError" in (broken / "logs" / "dags-test.log").read_text()
    assert not (broken / "published" / "example").exists()


def test_unusable_destination_is_reported_before_airflow_starts(demo, tmp_path: Path) -> None:
    workspace, _ = demo
    broken = tmp_path / "ws"
    shutil.copytree(workspace / "model", broken / "model")
    shutil.copytree(workspace / "data", broken / "data")
    (broken / "published").write_text("a file where the destination folder should be")
    result = run_demo(broken)
    assert result.returncode == 1
    assert "exportflow: error: cannot read the ledger" in result.stderr
    assert "Not a directory" in result.stderr
    assert not (broken / "airflow").exists()
