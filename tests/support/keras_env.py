"""The Keras runtime for tests: built from uv.lock once per session (fast when up to date), the example
Keras model trained in it, and scripts run in its interpreter (TF 2.21) while the tests live in the
Estimator runtime (TF 2.15).

``tests/conftest.py`` imports the fixtures below; their tier is ``tf`` (TIER_BY_FIXTURE).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.example_pipeline import PROJECT_ROOT


@dataclasses.dataclass(frozen=True)
class KerasModel:
    """The example Keras model's checkpoints (``ckpt-<epoch>.weights.h5``) and data (``warmup.json``)."""

    model_dir: Path
    data_dir: Path
    epochs: tuple[int, ...]
    python: Path  # the Keras runtime's interpreter


def run_keras(python: Path, script: str, *args: str, timeout: float = 600) -> str:
    """Run ``script`` in the Keras interpreter; its stdout (the last line is usually JSON)."""
    result = subprocess.run(
        [str(python), "-c", textwrap.dedent(script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=PROJECT_ROOT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"script failed in {python} (exit {result.returncode}):\n{result.stderr[-4000:]}")
    return result.stdout


def last_json(output: str) -> Any:
    return json.loads(output.strip().splitlines()[-1])


def save_whole_model(model: KerasModel, epoch: int, target: Path) -> Path:
    """The example model with epoch ``epoch``'s weights saved whole at ``target`` (a ``.keras`` file, as
    ``ModelCheckpoint`` with a ``.keras`` filepath writes it). Made in the Keras runtime once per trained
    model and epoch (beside ``model.model_dir``), then copied: the tests that need one share its cost."""
    saved = model.model_dir.parent / "whole" / f"model-{epoch}.keras"
    if not saved.exists():
        saved.parent.mkdir(exist_ok=True)
        partial = saved.with_suffix(".partial.keras")  # Keras insists on the suffix
        run_keras(
            model.python,
            """
            import sys
            from examples.keras.model import build_model
            model = build_model()
            model.load_weights(sys.argv[1])
            model.save(sys.argv[2])
            """,
            str(model.model_dir / f"ckpt-{epoch:03d}.weights.h5"),
            str(partial),
        )
        partial.replace(saved)  # whole or absent: a failed save is not taken by the next test
    shutil.copyfile(saved, target)
    return target


def keras_config_dict(model: KerasModel, destination: str | Path, **overrides: Any) -> dict[str, Any]:
    """examples/keras/pipeline.yaml pointed at ``model`` and ``destination``, run in ``model.python``."""
    data = yaml.safe_load((PROJECT_ROOT / "examples" / "keras" / "pipeline.yaml").read_text())
    data["model_dir"] = str(model.model_dir)
    data["destination"] = {**data["destination"], "uri": str(destination)}
    data["warmup"] = {**data["warmup"], "path": str(model.data_dir / "warmup.json")}
    data["airflow"] = {**data["airflow"], "python": str(model.python)}
    data.update(overrides)
    return data


@pytest.fixture(scope="session")
def keras_runtime() -> Path:
    """The Keras runtime's interpreter, built (or brought up to date) from uv.lock by the one command
    README documents: never skipped, built when missing."""
    from components.keras.runtime import build_keras_env

    return build_keras_env()


@pytest.fixture(scope="session")
def keras_trained(keras_runtime: Path, tmp_path_factory: pytest.TempPathFactory) -> KerasModel:
    """The example Keras model trained 2 epochs (checkpoints 1 and 2). Treat as read-only."""
    root = tmp_path_factory.mktemp("keras-trained")
    output = run_keras(
        keras_runtime,
        "from examples.keras.train import main; main()",
        str(root / "model"),
        str(root / "data"),
        "--epochs",
        "2",
    )
    return KerasModel(root / "model", root / "data", tuple(last_json(output)), keras_runtime)
