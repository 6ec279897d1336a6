"""Publishing a real export of the trained example model through ``publish_stage``: to local disk and to
the GCS emulator, loading the published SavedModel back with TensorFlow, with variables by reference
deduplicated against a checkpoint already in the bucket."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from components.artifacts import CheckpointArtifact, EvaluationArtifact, ExportArtifact
from components.ledger import Ledger
from components.manifest import MANIFEST_PATH
from components.pipeline.options import RunOptions
from components.pipeline.stages import export_stage, publish_stage, warmup_stage
from components.storage import storage_for
from tests.support.example_pipeline import TrainedModel, example_config
from tests.support.publishing import assert_nothing_partial_is_loadable, relative_objects


def config_for(model: TrainedModel, folder: Path, destination: str):
    """The example config publishing to ``destination``, its export keeping variables by reference."""
    by_reference = [{"name": "all_modes", "kind": "all_modes", "params": {"by_reference": True}}]
    return example_config(model, folder, destination, staging_dir=str(folder / "staging"), strategies=by_reference)


@pytest.fixture
def warmed(trained_model: TrainedModel, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ExportArtifact]:
    """The step-300 checkpoint exported (variables by reference) with warmup (a publish releases its staged
    copy, so each test gets its own)."""
    folder = tmp_path_factory.mktemp("pipeline")
    config = config_for(trained_model, folder, str(folder / "published"))
    checkpoint = CheckpointArtifact(uri=str(trained_model.model_dir / "model.ckpt-300"), model_name="example", step=300)
    evaluation = EvaluationArtifact(uri=str(folder / "eval"), checkpoint=checkpoint, metrics={"auc": 0.8, "loss": 0.5}, blessed=True)
    exported = export_stage(config, "all_modes", evaluation, RunOptions())
    assert isinstance(exported, ExportArtifact)
    return folder, warmup_stage(config, exported)


def load_and_predict(version_dir: str) -> None:
    import tensorflow as tf

    from examples.data import make_example

    loaded = tf.compat.v1.saved_model.load_v2(version_dir, tags=["serve"])
    batch = tf.constant([make_example([0.1] * 8, 3)])
    probability = loaded.signatures["serving_default"](examples=batch)["probability"].numpy()
    assert probability.shape == (1,) and 0 < probability[0] < 1


def test_publish_stage_to_local_disk_loads_and_is_idempotent(trained_model: TrainedModel, warmed) -> None:
    folder, exported = warmed
    config = config_for(trained_model, folder, str(folder / "published"))
    pushed = publish_stage(config, exported, RunOptions())
    assert pushed.uri == str(folder / "published" / "example" / "300")
    load_and_predict(pushed.uri)
    storage = storage_for(pushed.uri)
    assert assert_nothing_partial_is_loadable(storage, str(folder / "published" / "example")) == ["300"]
    record = Ledger(config.destination.uri, "example").load().record(300)
    assert record is not None and record.publications["all_modes"].marker_uri == pushed.marker_uri

    assert not os.path.exists(exported.uri)  # published: its staged copy is released
    again = publish_stage(config, exported, RunOptions())  # a retry finds the version committed
    assert again.already_published and again.bytes_moved == 0


def test_publish_stage_to_gcs_moves_no_variable_bytes_when_the_checkpoint_is_in_the_bucket(
    trained_model: TrainedModel, warmed, gcs_bucket: str, tmp_path: Path
) -> None:
    folder, exported = warmed
    assert exported.variables == "hardlink"  # variables/ is the checkpoint, byte for byte
    storage = storage_for(f"gs://{gcs_bucket}/train")
    prefix = str(trained_model.model_dir / "model.ckpt-300")
    for name in os.listdir(trained_model.model_dir):
        if name.startswith("model.ckpt-300."):
            storage.upload_file(str(trained_model.model_dir / name), f"gs://{gcs_bucket}/train/{name}", if_generation_match=0)
    in_bucket = dataclasses.replace(exported, checkpoint_uri=f"gs://{gcs_bucket}/train/model.ckpt-300")
    config = config_for(trained_model, folder, f"gs://{gcs_bucket}/models")
    variables = sum(
        os.path.getsize(os.path.join(exported.uri, "variables", n)) for n in os.listdir(os.path.join(exported.uri, "variables"))
    )
    checkpoint_files = [p for p in Path(prefix).parent.glob("model.ckpt-300.*") if p.suffix != ".meta"]
    assert variables == sum(p.stat().st_size for p in checkpoint_files)

    pushed = publish_stage(config, in_bucket, RunOptions())

    assert pushed.bytes_copied >= variables  # the variables were rewritten server-side
    assert pushed.bytes_moved <= pushed.bytes_total - variables
    gcs = storage_for(pushed.uri)
    assert_nothing_partial_is_loadable(gcs, f"gs://{gcs_bucket}/models/example")
    local = tmp_path / "downloaded"
    for relative in relative_objects(gcs, pushed.uri):
        gcs.download_file(gcs.join(pushed.uri, relative), str(local / relative))
    assert (local / MANIFEST_PATH).exists()
    load_and_predict(str(local))
