"""Re-exporting a published checkpoint: a SavedModel is not byte-reproducible (function names in
``saved_model.pb`` carry a per-process counter), so the rule is by what was exported, not by bytes.
Without ``force`` a version whose marker names the same model, strategy, step and checkpoint, and whose
manifest records the same export settings, is this export already published (nothing moves); with
``force`` it is published under a fresh number; anything else at the number is still ``VersionConflict``."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest

from components.cli import main
from components.ledger import Ledger
from components.publish.errors import VersionConflict
from components.publish.executor import publish
from components.storage import storage_for
from tests.support.example_pipeline import TrainedModel, example_config_file
from tests.support.publishing import loadable_versions, make_config, make_export, params_for, relative_objects

CHECKPOINT = "/models/run-1/model.ckpt-300"
REEXPORTED = "re-export of a published checkpoint and is not published again"


@pytest.fixture(params=["local", "gcs"])
def destination(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "gcs":
        return f"gs://{request.getfixturevalue('gcs_bucket')}/models"
    return str(tmp_path / "published")


def snapshot(destination: str) -> dict[str, tuple[int, int | None]]:
    storage = storage_for(destination)
    return {path: (info.size, info.generation) for path, info in relative_objects(storage, destination).items()}


def test_a_reexport_of_a_published_checkpoint_is_already_published_and_force_takes_a_fresh_number(
    destination: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config(destination, tmp_path)
    first = make_export(tmp_path / "a", seed=1, checkpoint_uri=CHECKPOINT)
    reexport = make_export(tmp_path / "b", seed=2, checkpoint_uri=CHECKPOINT)  # same checkpoint, other bytes
    publish(params_for(config), first)
    before = snapshot(destination)

    with caplog.at_level(logging.INFO, logger="components.publish.executor"):
        planned = publish(params_for(config, dry_run=True), reexport)
        again = publish(params_for(config), reexport)

    for pushed in (planned, again):
        assert (pushed.version, pushed.already_published, pushed.bytes_moved) == ("300", True, 0)
        assert pushed.uri == storage_for(destination).join(destination, "example", "300")
    assert snapshot(destination) == before  # nothing moved, nothing left behind
    said = [r.getMessage() for r in caplog.records if REEXPORTED in r.getMessage()]
    assert len(said) == 2 and all("rerun with force to publish this export under a fresh version number" in m for m in said)

    forced = publish(params_for(config, force=True), reexport)
    assert (forced.version, forced.already_published) == ("301", False)
    base = storage_for(destination).join(destination, "example")
    assert loadable_versions(storage_for(destination), base) == ["300", "301"]
    latest = publish(params_for(config), make_export(tmp_path / "c", seed=3, checkpoint_uri=CHECKPOINT))
    assert (latest.version, latest.already_published) == ("301", True)  # the newest copy of that checkpoint


def test_other_content_at_the_number_is_still_a_conflict(destination: str, tmp_path: Path) -> None:
    """Another checkpoint at the same step (another training run), or the same checkpoint exported with
    other strategy settings, is other content: refused without force, a fresh number with it."""
    config = make_config(destination, tmp_path)
    publish(params_for(config), make_export(tmp_path / "a", seed=1, checkpoint_uri=CHECKPOINT))
    before = snapshot(destination)
    other_run = make_export(tmp_path / "b", seed=2, checkpoint_uri="/models/run-2/model.ckpt-300")
    strategy = dataclasses.replace(config.strategies[0], params={"by_reference": True})
    other_settings = make_export(tmp_path / "c", seed=3, checkpoint_uri=CHECKPOINT)

    for export, params in ((other_run, params_for(config)), (other_settings, params_for(config))):
        params = dataclasses.replace(params, strategy=strategy) if export is other_settings else params
        with pytest.raises(VersionConflict, match="never rewritten in place"):
            publish(params, export)
        with pytest.raises(VersionConflict, match="never rewritten in place"):
            publish(dataclasses.replace(params, dry_run=True), export)
    assert snapshot(destination) == before

    assert publish(params_for(config, force=True), other_run).version == "301"


def test_run_checkpoint_again_on_the_example_model_publishes_nothing_new(
    trained_model: TrainedModel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``exportflow run --checkpoint 300`` twice (after a dry run, which keeps no staged copy): the second
    run re-exports (other bytes) and reports the published version instead of failing; ``--force``
    publishes it under a fresh number."""
    path = example_config_file(trained_model, tmp_path)
    published = tmp_path / "published" / "example"
    staging = tmp_path / "published" / ".exportflow" / "example" / "staging"
    assert main(["run", "--config", str(path), "--checkpoint", "300", "--dry-run"]) == 0
    assert not published.exists() and not list(staging.rglob("saved_model.pb"))  # a dry run leaves no staged copy

    assert main(["run", "--config", str(path), "--checkpoint", "300"]) == 0
    graph = (published / "300" / "saved_model.pb").read_bytes()

    assert main(["run", "--config", str(path), "--checkpoint", "300"]) == 0

    assert loadable_versions(storage_for(str(published)), str(published)) == ["300"]
    assert (published / "300" / "saved_model.pb").read_bytes() == graph
    record = Ledger(str(tmp_path / "published"), "example").load().record(300)
    assert record is not None and [p.version for p in record.history] == ["300"]
    assert not list(staging.rglob("saved_model.pb"))  # the re-export's staged copy is released

    assert main(["run", "--config", str(path), "--checkpoint", "300", "--force"]) == 0
    assert loadable_versions(storage_for(str(published)), str(published)) == ["300", "301"]
    capsys.readouterr()
