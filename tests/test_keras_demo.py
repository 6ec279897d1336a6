"""README's Keras command end to end: `exportflow demo --framework keras` builds the Keras runtime from
uv.lock, trains the Keras example in it and runs its DAG through Airflow (`dags test`); a second run
publishes nothing new."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


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
    latest = sorted(p.name for p in (workspace / "published" / "example_keras").iterdir() if p.name.isdigit())
    assert latest == ["1", "2", "3"]
    assert (workspace / "published" / "example_keras_best").is_dir()  # best published at least one epoch
    assert "building the Keras runtime (TF 2.21, keras 3) from uv.lock" in first.stdout
    assert "new version(s)" in first.stdout and "click_auc=" in first.stdout
    db = sqlite3.connect(workspace / "airflow" / "airflow.db")
    assert db.execute("select state from dag_run where dag_id = 'exportflow__example_keras'").fetchall() == [("success",)]

    again = run_keras_demo(workspace)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "nothing new to publish" in again.stdout
