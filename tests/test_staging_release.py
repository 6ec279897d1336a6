"""A staged version the publish stage does not publish (a dry run, ``VersionConflict``) is released when the
stage ends, not left for a later export — unless another run's lease still holds the checkpoint for the
strategy, as that run may be publishing the same staged version (a staged version is reused by step)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from components.artifacts import CheckpointArtifact, EvaluationArtifact, ExportArtifact
from components.config.schema import PipelineConfig
from components.discovery import lease
from components.ledger.records import record_evaluation
from components.pipeline.options import RunOptions
from components.pipeline.stages import ledger_of, publish_stage
from components.publish.errors import PublishInProgress, VersionConflict
from components.publish.executor import publish
from components.publish.layout import layout_for
from components.staging.area import staging_area
from components.staging.handover import stage_version
from components.storage import storage_for
from components.transfer.lock import VersionLock
from tests.support.publishing import make_config, make_export, params_for, relative_objects

CHECKPOINT = "/models/run-1/model.ckpt-300"


@pytest.fixture(params=["local", "gcs"])
def config(request: pytest.FixtureRequest, tmp_path: Path) -> PipelineConfig:
    if request.param == "gcs":
        return make_config(f"gs://{request.getfixturevalue('gcs_bucket')}/models", tmp_path)
    return make_config(str(tmp_path / "published"), tmp_path)


def staged(config: PipelineConfig, folder: Path, *, seed: int, checkpoint_uri: str = CHECKPOINT) -> ExportArtifact:
    """A synthetic export of step 300 staged where the export stage stages it (all_modes/300)."""
    area = staging_area(config)
    made = make_export(folder / f"made-{seed}", seed=seed, checkpoint_uri=checkpoint_uri)
    if area.local:
        uri = area.version_uri("all_modes", "300")
        shutil.copytree(made.uri, uri)
    else:
        uri = stage_version(area, "all_modes", "300", made.uri).uri
    assert is_staged(config)
    return dataclasses.replace(made, uri=uri)


def is_staged(config: PipelineConfig) -> bool:
    area = staging_area(config)
    uri = area.version_uri("all_modes", "300")
    return bool(relative_objects(area.storage, uri)) if not area.local else Path(uri).is_dir()


def test_a_dry_run_releases_its_staged_copy_and_publishes_nothing(config: PipelineConfig, tmp_path: Path) -> None:
    exported = staged(config, tmp_path, seed=1)
    planned = publish_stage(config, exported, RunOptions(dry_run=True))
    assert (planned.version, planned.already_published) == ("300", False)
    assert not is_staged(config)
    destination = storage_for(config.destination.uri)
    assert not relative_objects(destination, destination.join(config.destination.uri, "example"))


def test_a_version_conflict_releases_the_refused_staged_copy(config: PipelineConfig, tmp_path: Path) -> None:
    publish(params_for(config), make_export(tmp_path / "first", seed=1, checkpoint_uri=CHECKPOINT))
    other_run = staged(config, tmp_path, seed=2, checkpoint_uri="/models/run-2/model.ckpt-300")
    with pytest.raises(VersionConflict, match="never rewritten in place"):
        publish_stage(config, other_run, RunOptions())
    assert not is_staged(config)


def test_a_staged_copy_another_run_still_holds_is_kept_until_that_run_lets_go(config: PipelineConfig, tmp_path: Path) -> None:
    root, _ = lease.lease_settings(config)
    checkpoint = CheckpointArtifact(uri=CHECKPOINT, model_name="example", step=300)
    other = lease.pin(checkpoint, root, ["all_modes"], owner=lease.LeaseOwner.of_run("another-run"))
    mine = lease.pin(checkpoint, root, ["all_modes"], owner=lease.LeaseOwner.of_run("this-run"))
    evaluation = EvaluationArtifact(uri=str(tmp_path / "eval"), checkpoint=mine, metrics={"auc": 0.8}, blessed=True)
    record_evaluation(ledger_of(config), evaluation)  # what this run's publish stage reads its lease from
    exported = staged(config, tmp_path, seed=1)

    assert lease.held_by_another_run(config, CHECKPOINT, "all_modes", own=mine)
    assert not lease.held_by_another_run(config, CHECKPOINT, "serving_only", own=mine)  # no hold for that strategy
    publish_stage(config, exported, RunOptions(dry_run=True))
    assert is_staged(config)  # the other run may publish this very staged version

    lease.release(other, "all_modes")
    assert not lease.held_by_another_run(config, CHECKPOINT, "all_modes", own=mine)
    publish_stage(config, exported, RunOptions(dry_run=True))  # its own lease does not keep it
    assert not is_staged(config)
    assert lease.count_leases(root) == 0  # and the stage let go of its own hold


def test_a_retryable_failure_keeps_the_staged_copy_for_the_retry(config: PipelineConfig, tmp_path: Path) -> None:
    """Another run holds the destination version's lock: ``PublishInProgress`` is retried, and the retry
    publishes from this staged copy."""
    exported = staged(config, tmp_path, seed=1)
    storage = storage_for(config.destination.uri)
    layout = layout_for(storage, config.destination.uri, "example", "300", [None])
    other = VersionLock.acquire(storage, layout.lock, 60.0, "another run")
    with pytest.raises(PublishInProgress):
        publish_stage(config, exported, RunOptions())
    assert is_staged(config)
    other.release()
    assert publish_stage(config, exported, RunOptions()).version == "300"  # the retry
    assert not is_staged(config)
