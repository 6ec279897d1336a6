"""A Keras model's config (framework: keras) and its checkpoint files: unit tier, no TensorFlow.

The config is validated like the rest (errors name the field and the fix); discovery takes a checkpoint
file only once it is whole, judged from the file's own bytes (HDF5 superblock, zip end record).
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import yaml

from components.config import ConfigError, load_config
from components.config.checkpoint_pattern import FilePattern, PatternError
from components.config.loader import keras_python
from components.discovery.errors import IncompleteCheckpoint
from components.discovery.executor import discover, list_checkpoints
from components.discovery.spec import DiscoveryParams
from components.ledger import LedgerState
from components.pipeline.stages import discovery_params
from tests.support.example_pipeline import PROJECT_ROOT

EXAMPLE = PROJECT_ROOT / "examples" / "keras" / "pipeline.yaml"


def keras_yaml(tmp_path: Path, **overrides: Any) -> Path:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["model_dir"] = str(tmp_path / "model")
    data["destination"] = {"uri": str(tmp_path / "published")}
    for key, value in overrides.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path = tmp_path / "configs" / "keras.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


def refused(tmp_path: Path, **overrides: Any) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_config(keras_yaml(tmp_path, **overrides))
    return caught.value


def test_the_example_keras_config_runs_its_stages_in_the_keras_runtime_by_default(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("EXPORTFLOW_KERAS_PYTHON", raising=False)
    config = load_config(keras_yaml(tmp_path))
    assert config.framework == "keras" and config.receivers is None and config.model_fn is None
    assert config.airflow.runtime == "external_python"
    assert config.airflow.python == str(PROJECT_ROOT / ".venv-keras" / "bin" / "python") == keras_python()
    assert config.keras.checkpoints == "ckpt-{epoch:03d}.weights.h5"
    assert str(config.keras.builder) == "examples.keras.model:build_model"
    assert discovery_params(config).checkpoint_pattern == "ckpt-{epoch:03d}.weights.h5"

    monkeypatch.setenv("EXPORTFLOW_KERAS_PYTHON", "/opt/keras-venv/bin/python")  # the Keras image's
    assert load_config(keras_yaml(tmp_path)).airflow.python == "/opt/keras-venv/bin/python"
    chosen = load_config(keras_yaml(tmp_path, airflow={"python": "/srv/k/bin/python"}))
    assert chosen.airflow.python == "/srv/k/bin/python" and chosen.airflow.runtime == "external_python"


def test_a_keras_config_routed_to_the_airflow_interpreter_is_refused(tmp_path) -> None:
    error = refused(tmp_path, airflow={"runtime": "in_process"})
    assert error.field == "airflow.runtime"
    assert "Estimator runtime (TF 2.15" in error.problem and "runtime external_python" in error.problem


@pytest.mark.parametrize("kind", ["all_modes", "standalone", "distributed"])
def test_estimator_only_strategy_kinds_are_refused_for_keras(tmp_path, kind) -> None:
    error = refused(tmp_path, strategies=[{"name": "s", "kind": kind}])
    assert error.field == "strategies[0].kind"
    assert f"kind {kind!r}" in error.problem and "use latest, best, final or custom" in error.problem


def test_a_weights_pattern_without_a_builder_is_refused(tmp_path) -> None:
    data = yaml.safe_load(EXAMPLE.read_text())["keras"]
    data.pop("builder")
    data.pop("builder_kwargs")
    error = refused(tmp_path, keras=data)
    assert error.field == "keras.builder"
    assert "required field is missing" in error.problem and ".keras" in error.problem


def test_a_keras_model_without_its_section_and_with_estimator_fields_is_refused(tmp_path) -> None:
    assert refused(tmp_path, keras=None).field == "keras"
    error = refused(tmp_path, model_fn="examples.model:model_fn")
    assert error.field == "model_fn" and "Estimator contract" in error.problem
    error = refused(tmp_path, warmup={"source": "examples", "path": str(tmp_path / "x")})
    assert error.field == "warmup.source" and "source json" in error.problem
    error = refused(tmp_path, model_dir="s3://bucket/keras-model")  # gs:// is taken (tests/test_keras_gcs.py)
    assert error.field == "model_dir" and "no storage back-end for scheme 's3'" in error.problem


def test_an_estimator_config_still_needs_its_receivers(tmp_path) -> None:
    data = yaml.safe_load((PROJECT_ROOT / "examples" / "pipeline.yaml").read_text())
    data.pop("receivers")
    path = tmp_path / "estimator.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.field == "receivers" and "receivers.predict" in caught.value.problem


@pytest.mark.parametrize(
    ("pattern", "wrong"),
    [
        ("ckpt.weights.h5", "exactly once"),
        ("ckpt-{epoch}-{step}.weights.h5", "exactly once"),
        ("ckpt-{loss:.2f}.weights.h5", "{loss:.2f}"),
        ("ckpt-{epoch}.ckpt", "must end with"),
        ("sub/ckpt-{epoch}.weights.h5", "not a path"),
    ],
)
def test_bad_checkpoint_patterns_name_a_correct_one(tmp_path, pattern, wrong) -> None:
    with pytest.raises(PatternError, match="e.g. ckpt-"):
        FilePattern.parse(pattern)
    keras = {**yaml.safe_load(EXAMPLE.read_text())["keras"], "checkpoints": pattern}
    error = refused(tmp_path, keras=keras)
    assert error.field == "keras.checkpoints" and wrong in error.problem


def test_patterns_read_the_step_back() -> None:
    pattern = FilePattern.parse("ckpt-{epoch:03d}.weights.h5")
    assert pattern.step_of("ckpt-007.weights.h5") == 7 and pattern.step_of("ckpt-12.weights.h5") == 12
    assert pattern.step_of("ckpt-007.weights.h5.tmp") is None and pattern.kind == "weights"
    assert FilePattern.parse("model-{step}.keras").kind == "model"


def weights_file(path: Path, rows: int = 50) -> None:
    with h5py.File(path, "w") as handle:
        handle.create_dataset("layers/dense/vars/0", data=np.ones((rows, 8), dtype="float32"))


def params(model_dir: Path, pattern: str = "ckpt-{epoch:03d}.weights.h5", **extra: Any) -> DiscoveryParams:
    return DiscoveryParams(model_name="k", model_dir=str(model_dir), checkpoint_pattern=pattern, **extra)


def test_a_checkpoint_file_still_being_written_is_never_taken(tmp_path) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    weights_file(model_dir / "ckpt-001.weights.h5")
    (model_dir / "notes.txt").write_text("not a checkpoint")
    writing = h5py.File(model_dir / "ckpt-002.weights.h5", "w")  # as ModelCheckpoint writes: in place
    try:
        writing.create_dataset("layers/dense/vars/0", data=np.ones((400, 8), dtype="float32"))
        assert (model_dir / "ckpt-002.weights.h5").stat().st_size > 0
        assert [c.step for c in discover(params(model_dir), LedgerState("k"))] == [1]
        with pytest.raises(IncompleteCheckpoint, match=r"ckpt-002.weights.h5 \(HDF5 file is \d+ bytes but its superblock"):
            discover(params(model_dir, only_step=2), LedgerState("k"))
    finally:
        writing.close()
    (checkpoint,) = discover(params(model_dir, only_step=2), LedgerState("k"))
    assert checkpoint.uri == str(model_dir / "ckpt-002.weights.h5")
    assert [(f.path, f.size) for f in checkpoint.files] == [
        ("ckpt-002.weights.h5", (model_dir / "ckpt-002.weights.h5").stat().st_size)
    ]


def test_a_truncated_checkpoint_file_is_not_taken(tmp_path) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    weights_file(model_dir / "ckpt-001.weights.h5")
    whole = (model_dir / "ckpt-001.weights.h5").read_bytes()
    (model_dir / "ckpt-002.weights.h5").write_bytes(whole[: len(whole) // 2])  # a killed trainer's file
    (model_dir / "ckpt-003.weights.h5").write_bytes(b"")
    listing = list_checkpoints(str(model_dir), pattern="ckpt-{epoch:03d}.weights.h5")
    assert listing.steps == [1]
    assert "truncated" in listing.incomplete["ckpt-002.weights.h5"].problem
    assert listing.incomplete["ckpt-003.weights.h5"].problem == "empty"


def test_a_keras_file_is_taken_once_its_zip_is_closed(tmp_path) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    archive = zipfile.ZipFile(model_dir / "model-5.keras", "w")
    archive.writestr("config.json", "{}" * 500)
    archive.fp.flush()
    assert list_checkpoints(str(model_dir), pattern="model-{step}.keras").steps == []
    archive.close()
    assert list_checkpoints(str(model_dir), pattern="model-{step}.keras").steps == [5]


def test_keras_checkpoints_already_handled_are_not_taken_again(tmp_path) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    for epoch in (1, 2, 3):
        weights_file(model_dir / f"ckpt-{epoch:03d}.weights.h5")
    assert [c.step for c in discover(params(model_dir, policy="latest"), LedgerState("k"))] == [3]
    assert [c.step for c in discover(params(model_dir, max_per_run=2), LedgerState("k"))] == [1, 2]
