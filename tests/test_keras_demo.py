"""README's Keras command end to end: `exportflow demo --framework keras` builds the Keras runtime from
uv.lock, trains the Keras example in it and runs its DAG through Airflow (`dags test`); a second run
publishes nothing new.

The demo's DAG run is also the test of a Keras model's DAG through Airflow: Airflow and the operators in
the Estimator runtime, every stage of the model in the Keras runtime's interpreter (``airflow.runtime:
external_python``, its default for framework: keras), each export a mapped task labelled by strategy and
step, what it published recorded in the ledger and every lease released.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from components.discovery import lease
from components.ledger import Ledger

ROOT = Path(__file__).resolve().parent.parent
DAG_ID = "exportflow__example_keras"


def run_keras_demo(workspace: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "components.cli", "demo", "--framework", "keras", "--workspace", str(workspace)],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        stdin=subprocess.DEVNULL,
        timeout=900,
    )


def test_the_keras_demo_publishes_through_airflow_then_finds_nothing_new(keras_runtime, tmp_path) -> None:
    workspace = tmp_path / "ws"
    first = run_keras_demo(workspace)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-3000:]
    published = workspace / "published"
    latest = sorted(p.name for p in (published / "example_keras").iterdir() if p.name.isdigit())
    assert latest == ["1", "2", "3"]
    best = sorted(p.name for p in (published / "example_keras_best").iterdir() if p.name.isdigit())
    assert best  # best published at least one epoch
    assert "building the Keras runtime (TF 2.21, keras 3) from uv.lock" in first.stdout
    assert "new version(s)" in first.stdout and "click_auc=" in first.stdout
    db = sqlite3.connect(workspace / "airflow" / "airflow.db")
    assert db.execute("select state from dag_run where dag_id = ?", (DAG_ID,)).fetchall() == [("success",)]

    # through Airflow: each export a mapped task labelled by strategy and step, run in the Keras runtime
    labels = db.execute(
        "select rendered_map_index, state from task_instance where dag_id = ? and task_id = 'export'", (DAG_ID,)
    ).fetchall()
    expected = {f"{strategy} @ step {step}" for strategy in ("latest", "best") for step in (1, 2, 3)}
    assert {label for label, _ in labels} == expected and {state for _, state in labels} == {"success"}, labels
    dag_log = (workspace / "logs" / "dags-test-keras.log").read_text(encoding="utf-8", errors="replace")
    assert f"running stage export in {keras_runtime}" in dag_log  # the Keras runtime ran it
    for version in latest:
        folder = published / "example_keras" / version
        assert (folder / "saved_model.pb").exists() and (folder / "assets.extra" / "tf_serving_warmup_requests").exists()
    state = Ledger(str(published), "example_keras").load()
    for step in (1, 2, 3):  # the ledger records what the DAG published: latest always, best where it won
        assert set(state.record(step).publications) == {"latest"} | ({"best"} if str(step) in best else set())
        assert state.record(step).evaluation.metrics["click_auc"] > 0.6
    assert lease.count_leases(str(workspace / "model-keras" / ".exportflow-leases")) == 0

    again = run_keras_demo(workspace)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "nothing new to publish" in again.stdout
