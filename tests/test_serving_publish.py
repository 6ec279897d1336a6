"""Publishing with ``serving.mode: labels``: the fresh version gets ``publish_label`` in two writes,
``stable`` under approval is left for a person, a rerun does not move a label back; and serving control
on a gs:// destination (the GCS emulator)."""

from __future__ import annotations

from pathlib import Path

from components.config.loader import parse_config
from components.ledger.label_history import LabelHistory
from components.pipeline.options import RunOptions
from components.pipeline.stages import publish_stage
from components.publish.executor import publish
from components.serving import config_file, control, model_config
from components.serving.publication import PUBLISHER, label_fresh_version
from components.storage import storage_for
from tests.support.example_pipeline import example_config_dict
from tests.support.publishing import make_config, make_export, params_for
from tests.support.serving import config_path, entry, publish_versions, serving_config


def test_publish_stage_gives_the_fresh_version_the_publish_label(tmp_path: Path) -> None:
    config = serving_config(tmp_path, publish_label="canary")
    for step in (100, 200):
        publish_stage(config, make_export(tmp_path / "exports", step=step, seed=step), RunOptions(run_id=f"run-{step}"))
    assert entry(tmp_path).labels == {"canary": 200} and entry(tmp_path).versions == (200,)
    moves = LabelHistory(storage_for(str(tmp_path)), str(tmp_path / "published"), "example").load().moves
    assert [(m.from_version, m.to_version, m.who, m.run_id) for m in moves] == [
        (None, 100, PUBLISHER, "run-100"), (100, 200, PUBLISHER, "run-200")
    ]


def test_a_rerun_does_not_move_the_label_back_and_stable_under_approval_waits(tmp_path: Path) -> None:
    config = serving_config(tmp_path, publish_label="canary")
    publish_versions(config, tmp_path, 100, 200)
    assert label_fresh_version(config, "example", "100") is not None
    control.promote(config, 200, "canary", who="alice")
    assert label_fresh_version(config, "example", "100") is None  # e.g. a retried publish of 100
    assert entry(tmp_path).labels == {"canary": 200}

    gated = serving_config(tmp_path, publish_label="stable", approval=True)
    assert label_fresh_version(gated, "example", "200") is None
    assert "stable" not in entry(tmp_path).labels
    assert label_fresh_version(serving_config(tmp_path, mode="latest"), "example", "200") is None


def test_promote_and_rollback_on_a_gcs_destination(gcs_bucket: str, tmp_path: Path) -> None:
    destination = f"gs://{gcs_bucket}/published"
    base = make_config(destination, tmp_path)
    data = example_config_dict(tmp_path / "model", destination, serving={"mode": "labels", "label_wait_seconds": 0})
    config = parse_config(data, base_dir=tmp_path)
    for step in (100, 200):
        publish(params_for(base), make_export(tmp_path / "exports", step=step, seed=step))
    control.promote(config, 100, "stable", who="a")
    control.promote(config, 200, "stable", who="a")
    control.rollback(config, "stable", who="a")
    storage = storage_for(destination)
    read = config_file.read(storage, f"{destination}/models.config")
    assert read.generation > 0
    assert model_config.find(read.config, "example") == model_config.ServableEntry(
        "example", f"{destination}/example", (100,), {"stable": 100}, "specific"
    )
    history = LabelHistory(storage, destination, "example").load()
    assert [(m.action, m.to_version) for m in history.moves] == [("promote", 100), ("promote", 200), ("rollback", 100)]
    assert not config_path(tmp_path).exists()  # nothing written locally
