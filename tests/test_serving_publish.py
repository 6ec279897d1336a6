"""Publishing with ``serving.mode: labels``: the fresh version gets ``publish_label`` in two writes,
``stable`` under approval is left for a person, a rerun does not move a label back; and serving control
on a gs:// destination (the GCS emulator)."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.config.loader import parse_config
from components.ledger import Ledger
from components.ledger.label_history import LabelHistory
from components.pipeline.options import RunOptions
from components.pipeline.report import new_publications, publications_table
from components.pipeline.stages import publish_stage
from components.publish.executor import publish
from components.serving import config_file, control, model_config
from components.serving.publication import PUBLISHER, label_fresh_version
from components.storage import storage_for
from components.transfer.pool import PublishEvent
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


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_force_on_a_labelled_version_publishes_a_fresh_one_and_leaves_label_files_and_history(tmp_path: Path) -> None:
    config = serving_config(tmp_path, publish_label="canary")
    publish_stage(config, make_export(tmp_path / "a", step=300, seed=1), RunOptions(run_id="first"))
    control.promote(config, 300, "stable", who="alice")
    served = tree(tmp_path / "published" / "example" / "300")
    before = Ledger(str(tmp_path / "published"), "example").load()

    pushed = publish_stage(
        config, make_export(tmp_path / "b", step=300, seed=2), RunOptions(force=True, run_id="forced")
    )

    assert (pushed.version, pushed.step) == ("301", 300)
    assert tree(tmp_path / "published" / "example" / "300") == served  # kept by retention too: stable needs it
    assert entry(tmp_path).labels == {"stable": 300, "canary": 301}  # the fresh version is a fresh publication
    record = Ledger(str(tmp_path / "published"), "example").load().record(300)
    assert [(p.version, p.run_id) for p in record.history] == [("300", "first"), ("301", "forced")]
    assert record.publications["all_modes"].version == "301"
    table = publications_table(before, Ledger(str(tmp_path / "published"), "example").load()).splitlines()
    assert [(line.split()[3], line.split()[-1]) for line in table[2:]] == [("300", "earlier"), ("301", "new")]

    (status,) = control.status(config)  # what `exportflow serving status` prints
    assert status.rollback_targets == {"canary": 300} and [m.to_version for m in status.moves] == [300, 300, 301]
    again = publish_stage(config, make_export(tmp_path / "b", step=300, seed=2), RunOptions(force=True, run_id="retry"))
    assert (again.version, again.already_published) == ("301", True)
    assert len(Ledger(str(tmp_path / "published"), "example").load().record(300).history) == 2


def test_a_promotion_during_a_forced_republish_on_gcs_keeps_the_label_on_the_untouched_version(
    gcs_bucket: str, tmp_path: Path
) -> None:
    destination = f"gs://{gcs_bucket}/published"
    data = {
        "name": "example", "model_dir": str(tmp_path / "model"), "model_fn": "examples.model:model_fn",
        "receivers": {"predict": "examples.model:serving_input_receiver_fn"},
        "destination": {"uri": destination}, "strategies": [{"name": "all_modes", "kind": "all_modes"}],
        "serving": {"mode": "labels", "label_wait_seconds": 0},
    }
    config = parse_config(data, base_dir=tmp_path)
    storage = storage_for(destination)
    publish(params_for(config), make_export(tmp_path / "a", step=300, seed=1))
    before = {i.uri: (i.generation, i.crc32c) for i in storage.list(f"{destination}/example/300")}
    promoted: list[object] = []

    def promote_midway(event: PublishEvent) -> None:
        if event.kind == "uploaded" and not promoted:  # the forced run holds the fresh number's lock now
            promoted.append(control.promote(config, 300, "stable", who="bob"))

    pushed = publish(params_for(config, force=True), make_export(tmp_path / "b", step=300, seed=2), observer=promote_midway)

    assert pushed.version == "301" and promoted
    read = config_file.read(storage, f"{destination}/models.config")
    assert model_config.find(read.config, "example").labels == {"stable": 300}
    assert {i.uri: (i.generation, i.crc32c) for i in storage.list(f"{destination}/example/300")} == before
    assert storage.stat(f"{destination}/example/301/saved_model.pb") is not None


def test_a_multi_graph_set_is_published_without_the_publish_label(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = serving_config(tmp_path, publish_label="canary")
    export = make_export(tmp_path / "exports", step=100, graphs=("entry", "ps_0"))
    with caplog.at_level("WARNING", logger="components.serving.publication"):
        pushed = publish_stage(config, export, RunOptions(run_id="set"))
    assert pushed.version == "100" and set(pushed.graph_uris) == {"entry", "ps_0"}
    assert (tmp_path / "published" / "example" / "entry" / "100" / "saved_model.pb").exists()
    assert not config_path(tmp_path).exists()
    assert "example version 100 published without the label canary: model 'example'" in caplog.text


def test_republishing_a_retired_version_is_a_new_history_entry_and_shown_as_new(tmp_path: Path) -> None:
    """Retention deleted version 100; a forced rerun of step 100 publishes other content as 100 again (the
    number is free): a publication of its own, so the append-only history gains an entry and the run's
    table says 'new', not 'earlier'."""
    config = serving_config(tmp_path)  # keep: 1
    publish_stage(config, make_export(tmp_path / "a", step=100, seed=1), RunOptions(run_id="first"))
    publish_stage(config, make_export(tmp_path / "a", step=200, seed=2), RunOptions(run_id="second"))
    assert not (tmp_path / "published" / "example" / "100").exists()  # retired by retention
    ledger = Ledger(str(tmp_path / "published"), "example")
    before = ledger.load()
    again = publish_stage(config, make_export(tmp_path / "b", step=100, seed=3), RunOptions(force=True, run_id="again"))
    assert (again.version, again.already_published) == ("100", False)

    record = ledger.load().record(100)
    assert [(p.version, p.run_id) for p in record.history] == [("100", "first"), ("100", "again")]
    assert record.publications["all_modes"].run_id == "again"
    table = publications_table(before, ledger.load()).splitlines()
    assert [(line.split()[0], line.split()[3], line.split()[-1]) for line in table[2:]] == [
        ("100", "100", "earlier"), ("100", "100", "new"), ("200", "200", "earlier"),
    ]
    assert new_publications(before, ledger.load()) == 1
