"""``exportflow demo``: train the example model, then run its export DAG through a real Airflow.

The workspace holds everything: the model's checkpoints and data, its config, an embedded SQLite
Airflow (its own AIRFLOW_HOME) and the published versions. Airflow runs in a child process
(``airflow dags test``), so this library never imports Airflow itself.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

from components.airflow_env import PROJECT_ROOT, embedded_airflow_env
from components.config import load_config
from components.errors import ExportflowError
from components.ledger import LedgerState
from components.model_storage import ModelStorage

EXAMPLE_CONFIG = PROJECT_ROOT / "examples" / "pipeline.yaml"
DAG_ID = "exportflow__example"
KERAS_EXAMPLE_CONFIG = PROJECT_ROOT / "examples" / "keras" / "pipeline.yaml"
KERAS_DAG_ID = "exportflow__example_keras"


class DemoError(ExportflowError):
    """The demo could not complete; the message says which step and where its log is."""


@dataclasses.dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def config_path(self) -> Path:
        return self.root / "configs" / "example.yaml"

    @property
    def keras_config_path(self) -> Path:
        return self.root / "configs" / "example_keras.yaml"

    @property
    def airflow_home(self) -> Path:
        return self.root / "airflow"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"


def airflow_env(ws: Workspace) -> dict[str, str]:
    """Environment for an embedded Airflow that sees only our DAGs, plugins and this workspace's configs."""
    return embedded_airflow_env(ws.airflow_home, ws.config_path.parent)


def prepare_workspace(ws: Workspace, train_steps: int = 300) -> list[int]:
    """Train the example model unless the workspace already has its checkpoints; write the config."""
    from examples.train import checkpoint_steps, train

    steps = checkpoint_steps(str(ws.model_dir)) if ws.model_dir.exists() else []
    if not steps:
        print(f"training the example model into {ws.model_dir} ...", flush=True)
        steps = train(str(ws.model_dir), str(ws.data_dir), steps=train_steps)
    ws.config_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(EXAMPLE_CONFIG, ws.config_path)
    return steps


def prepare_keras_workspace(ws: Workspace, epochs: int = 3) -> None:
    """Build the Keras runtime from uv.lock, train the example Keras model in it unless its checkpoints
    are there (``model-keras/``), and write its config; its stages will run in that runtime."""
    from components.keras.runtime import build_keras_env

    print("building the Keras runtime (TF 2.21, keras 3) from uv.lock ...", flush=True)
    python = build_keras_env()
    model_dir, data_dir = ws.root / "model-keras", ws.root / "data-keras"
    if not any(model_dir.glob("ckpt-*.weights.h5")):
        print(f"training the example Keras model into {model_dir} ...", flush=True)
        ws.log_dir.mkdir(parents=True, exist_ok=True)
        with open(ws.log_dir / "train-keras.log", "w", encoding="utf-8") as log:
            result = subprocess.run(
                [str(python), "-m", "examples.keras.train", str(model_dir), str(data_dir), "--epochs", str(epochs)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        if result.returncode != 0:
            raise DemoError(f"training the Keras example failed (exit {result.returncode}); log: {ws.log_dir / 'train-keras.log'}")
    ws.keras_config_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(KERAS_EXAMPLE_CONFIG, ws.keras_config_path)


def run_airflow(ws: Workspace, args: list[str], log_name: str) -> None:
    """Run one ``airflow`` CLI command in the workspace's Airflow; its output goes to a log file."""
    ws.log_dir.mkdir(parents=True, exist_ok=True)
    log_path = ws.log_dir / log_name
    with open(log_path, "w", encoding="utf-8") as log:
        result = subprocess.run(
            [sys.executable, "-m", "airflow", *args],
            env=airflow_env(ws),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    if result.returncode != 0:
        tail = "".join(log_path.read_text(encoding="utf-8", errors="replace").splitlines(True)[-25:])
        raise DemoError(f"`airflow {' '.join(args)}` failed (exit {result.returncode}); log: {log_path}\n{tail}")


def run_demo(workspace: str | os.PathLike[str], framework: str = "estimator") -> tuple[LedgerState, LedgerState]:
    """Run the demo (the Estimator example, or with ``framework="keras"`` the Keras 3 one); returns the
    ledger before and after the DAG run."""
    ws = Workspace(Path(workspace).resolve())
    if framework == "keras":
        prepare_keras_workspace(ws)
        config_path, dag_id = ws.keras_config_path, KERAS_DAG_ID
    else:
        prepare_workspace(ws)
        config_path, dag_id = ws.config_path, DAG_ID
    config = load_config(config_path)
    ledger = ModelStorage(config).ledger()  # the storage factory: the destination's own credentials
    before = ledger.load()
    print("migrating the embedded Airflow metadata database ...", flush=True)
    run_airflow(ws, ["db", "migrate"], "db-migrate.log")
    print(f"running DAG {dag_id} through Airflow (airflow dags test) ...", flush=True)
    run_airflow(ws, ["dags", "test", dag_id], f"dags-test-{framework}.log" if framework == "keras" else "dags-test.log")
    return before, ledger.load()
