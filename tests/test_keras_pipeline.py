"""A Keras 3 model through the plain runner: its TF stages run through the envelope in the Keras
runtime (TF 2.21), the runner and these tests in the Estimator runtime (TF 2.15).

What is published is checked inside the Keras interpreter: each version loads with
``tf.saved_model.load`` and answers exactly as ``model.predict`` on the checkpoint's weights, and its
warmup records (raw-tensor Predict requests) replay.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from components.config import load_config
from components.discovery import lease
from components.ledger import Ledger
from components.pipeline import external
from components.pipeline.contract import StageRequest, encode_request
from components.pipeline.external import ExternalStageFailed
from components.pipeline.runner import run_pipeline
from tests.support.example_pipeline import write_config
from tests.support.keras_env import KerasModel, keras_config_dict, last_json, run_keras, save_whole_model
from tests.support.keras_published import CHECK_PUBLISHED


def keras_config(model: KerasModel, tmp_path: Path, **overrides: Any) -> Any:
    data = keras_config_dict(model, tmp_path / "published", **overrides)
    return load_config(write_config(data, tmp_path / "configs" / "example_keras.yaml"))


def published_versions(root: Path) -> list[str]:
    return sorted((p.name for p in root.iterdir() if p.name.isdigit()), key=int) if root.exists() else []


def started_children(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, StageRequest]]:
    """Every stage interpreter the runner starts, recorded at our seam (``run_stage_process``) and still
    started for real."""
    started: list[tuple[str, StageRequest]] = []
    real = external.run_stage_process

    def counting(python: str, request: StageRequest, **kwargs: Any) -> Any:
        started.append((python, request))
        return real(python, request, **kwargs)

    monkeypatch.setattr(external, "run_stage_process", counting)
    return started


def test_the_runner_publishes_keras_versions_that_answer_as_the_model(keras_trained, tmp_path, monkeypatch) -> None:
    config = keras_config(keras_trained, tmp_path)
    children = started_children(monkeypatch)
    report = run_pipeline(config)

    # one Keras interpreter for the whole run: both checkpoints, every stage after discovery
    assert [(python, r.stage) for python, r in children] == [(str(keras_trained.python), "run_checkpoints")]
    assert [c["step"] for c in children[0][1].inputs["checkpoints"]] == [1, 2]
    assert keras_trained.epochs == (1, 2)
    assert [e.checkpoint.step for e in report.evaluations] == [1, 2]
    assert all(e.blessed and "click_auc" in e.metrics and "value_loss" in e.metrics for e in report.evaluations)
    assert published_versions(tmp_path / "published" / "example_keras") == ["1", "2"]
    best = published_versions(tmp_path / "published" / "example_keras_best")
    assert best[0] == "1"  # the first export always wins; epoch 2 only if its loss is lower
    losses = [e.metrics["loss"] for e in report.evaluations]
    assert (best == ["1", "2"]) == (losses[1] < losses[0])
    state = Ledger(str(tmp_path / "published"), "example_keras").load()
    assert set(state.record(2).publications) == {"latest"} | ({"best"} if "2" in best else set())
    assert lease.count_leases(str(keras_trained.model_dir / ".exportflow-leases")) == 0

    checked = last_json(
        run_keras(keras_trained.python, CHECK_PUBLISHED, str(tmp_path / "published" / "example_keras"), str(keras_trained.model_dir))
    )
    assert checked.pop("tf") == "2.21.0"
    for version in ("1", "2"):
        assert checked[version]["same_as_predict"], checked
        assert {"serve", "serving_default"} <= set(checked[version]["signatures"])
        assert checked[version]["warmup_records"] == checked[version]["replayed"] == 20
        assert checked[version]["warmup_inputs"] == {"dense": "float32", "item_id": "int32"}
        assert checked[version]["manifest_tf"] == "2.21.0"

    again = run_pipeline(config)  # every checkpoint handled: nothing new
    assert again.published == () and again.evaluations == ()
    assert len(children) == 1  # and nothing to run: no interpreter started


def test_a_builder_that_does_not_match_the_weights_names_the_layer(keras_trained, tmp_path) -> None:
    config = keras_config(
        keras_trained, tmp_path, keras={
            "checkpoints": "ckpt-{epoch:03d}.weights.h5",
            "builder": "examples.keras.model:build_model",
            "builder_kwargs": {"hidden_units": 32},
        }
    )
    with pytest.raises(ExternalStageFailed) as caught:
        run_pipeline(config)
    failure = caught.value.failure
    assert failure.error == "KerasModelMismatch" and not failure.retryable
    assert "layer 'hidden' (dense) has variable shapes [(12, 16), (16,)] in the checkpoint, [(12, 32), (32,)] in the model" in failure.message
    assert not (tmp_path / "published" / "example_keras").exists()
    assert lease.count_leases(str(keras_trained.model_dir / ".exportflow-leases")) == 0


def test_an_endpoint_signature_that_does_not_fit_the_model_fails_the_export(keras_trained, tmp_path) -> None:
    keras = {
        "checkpoints": "ckpt-{epoch:03d}.weights.h5",
        "builder": "examples.keras.model:build_model",
        "endpoints": [
            {"name": "serve", "input_signature": {"dense": {"shape": [None, 5]}, "item_id": {"shape": [None], "dtype": "int32"}}}
        ],
    }
    config = keras_config(keras_trained, tmp_path, keras=keras, strategies=[{"name": "latest", "kind": "latest"}])
    with pytest.raises(ExternalStageFailed) as caught:
        run_pipeline(config)
    failure = caught.value.failure
    assert failure.error == "KerasEndpointError" and not failure.retryable
    assert "endpoint 'serve'" in failure.message and "float32[None, 5]" in failure.message
    assert "the model's inputs are {dense: float32[None, 4], item_id: int32[None]}" in failure.message
    assert not (tmp_path / "published" / "example_keras").exists()
    staging = tmp_path / "published" / ".exportflow" / "example_keras" / "staging" / "latest"
    assert not staging.exists() or list(staging.iterdir()) == []  # no half-written version left
    assert lease.count_leases(str(keras_trained.model_dir / ".exportflow-leases")) == 0


def test_a_keras_stage_in_the_estimator_runtime_fails_before_tensorflow_loads(keras_trained, tmp_path) -> None:
    """airflow.python pointing at the Estimator runtime by mistake: refused from package metadata alone."""
    config = keras_config(keras_trained, tmp_path, airflow={"python": sys.executable})
    request = encode_request(StageRequest("discover", config.source))
    script = (
        "import sys, json\n"
        "from components.pipeline.envelope import run_request\n"
        "outcome = run_request(sys.stdin.read())\n"
        "print(json.dumps({'failure': outcome.failure.__dict__, 'tf_loaded': 'tensorflow' in sys.modules}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], input=request, capture_output=True, text=True, check=True, timeout=300
    )
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["tf_loaded"] is False
    assert answer["failure"]["error"] == "KerasRuntimeError" and answer["failure"]["retryable"] is False
    assert "TensorFlow 2.15" in answer["failure"]["message"] and "airflow.python" in answer["failure"]["message"]

    with pytest.raises(ExternalStageFailed, match="KerasRuntimeError: model 'example_keras' has framework: keras"):
        run_pipeline(config)
    assert lease.count_leases(str(keras_trained.model_dir / ".exportflow-leases")) == 0


def test_custom_and_final_strategies_export_a_keras_model(keras_trained, tmp_path) -> None:
    """kind custom: the user's ExportStrategy gets the Keras model; kind final: the step reached max_steps."""
    strategies = [
        {"name": "custom", "kind": "custom", "params": {"target": "examples.keras.strategies:model_export"},
         "servable": "example_keras_custom"},
        {"name": "final", "kind": "final", "params": {"max_steps": 2}},
    ]
    config = keras_config(keras_trained, tmp_path, strategies=strategies)
    report = run_pipeline(config)  # both checkpoints in one run
    by_step = {step: sorted(p.strategy for p in report.published if p.step == step) for step in (1, 2)}
    assert by_step[1] == ["custom"]  # final declines step 1 (< max_steps)
    assert by_step[2] == ["custom", "final"]
    assert published_versions(tmp_path / "published" / "example_keras_custom") == ["1", "2"]
    assert published_versions(tmp_path / "published" / "example_keras") == ["2"]
    checked = last_json(
        run_keras(keras_trained.python, CHECK_PUBLISHED, str(tmp_path / "published" / "example_keras_custom"), str(keras_trained.model_dir))
    )
    assert checked["2"]["same_as_predict"] and checked["2"]["replayed"] == 20, checked


def test_whole_keras_model_files_export_without_a_builder(keras_trained, tmp_path) -> None:
    """Checkpoints saved as whole ``.keras`` models (ModelCheckpoint with a .keras filepath): loaded as saved."""
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    save_whole_model(keras_trained, 2, model_dir / "model-2.keras")
    config = keras_config(
        keras_trained,
        tmp_path,
        model_dir=str(model_dir),
        keras={"checkpoints": "model-{epoch}.keras"},
        strategies=[{"name": "latest", "kind": "latest"}],
    )
    report = run_pipeline(config)
    assert [(p.strategy, p.version) for p in report.published] == [("latest", "2")]
    assert report.evaluations[0].metrics["click_auc"] > 0.6
    published = str(tmp_path / "published" / "example_keras")  # compared with the weights it was saved from
    checked = last_json(run_keras(keras_trained.python, CHECK_PUBLISHED, published, str(keras_trained.model_dir)))
    assert checked["2"]["same_as_predict"] and checked["2"]["replayed"] == 20, checked


def test_a_damaged_checkpoint_fails_alone_and_the_others_are_published(keras_trained, tmp_path, monkeypatch) -> None:
    """A file whole by its size and superblock but damaged inside: discovery takes it, evaluation names it."""
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    good = (keras_trained.model_dir / "ckpt-001.weights.h5").read_bytes()
    (model_dir / "ckpt-001.weights.h5").write_bytes(good)
    damaged = (keras_trained.model_dir / "ckpt-002.weights.h5").read_bytes()
    (model_dir / "ckpt-002.weights.h5").write_bytes(damaged[:96] + b"\xff" * (len(damaged) - 96))  # superblock kept
    config = keras_config(keras_trained, tmp_path, model_dir=str(model_dir), strategies=[{"name": "latest", "kind": "latest"}])

    children = started_children(monkeypatch)
    with pytest.raises(ExternalStageFailed) as caught:
        run_pipeline(config)
    assert len(children) == 1  # the damaged checkpoint failed inside the one run, the good one went on
    assert caught.value.failure.error == "CorruptCheckpoint"
    assert "ckpt-002.weights.h5 (step 2): the weights file does not read as HDF5" in caught.value.failure.message
    assert published_versions(tmp_path / "published" / "example_keras") == ["1"]
    assert lease.count_leases(str(model_dir / ".exportflow-leases")) == 0
