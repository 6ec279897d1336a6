"""Seams between stages: a declining strategy gives its lease hold back; the waiting sensor's outcomes."""

from __future__ import annotations

import os

import pytest

from components.artifacts import ExportArtifact
from components.discovery.lease import HOLD_PREFIX
from components.pipeline.options import RunOptions
from components.pipeline.stages import ExportDeclined, discover_stage, evaluate_stage, export_stage


def test_a_strategy_that_declines_releases_its_hold_on_the_checkpoint(model_copy, make_config, tmp_path) -> None:
    strategies = [
        {"name": "final_only", "kind": "final", "params": {"max_steps": 10_000}},
        {"name": "every", "kind": "all_modes", "servable": "example-all"},
    ]
    config = make_config(model_copy, strategies=strategies)
    (checkpoint,) = discover_stage(config, RunOptions(checkpoint=300))
    pinned = checkpoint.pinned_uri
    assert pinned and os.path.exists(pinned + ".index")
    lease_dir = os.path.dirname(pinned)
    assert sorted(n for n in os.listdir(lease_dir) if n.startswith(HOLD_PREFIX)) == ["hold.every", "hold.final_only"]
    evaluation = evaluate_stage(config, checkpoint)
    assert evaluation.blessed

    declined = export_stage(config, "final_only", evaluation, RunOptions(checkpoint=300))
    assert declined == ExportDeclined("final_only", 300, "declined by strategy kind 'final'")
    assert sorted(n for n in os.listdir(lease_dir) if n.startswith(HOLD_PREFIX)) == ["hold.every"]
    assert os.path.exists(pinned + ".index")  # "every" still holds it until its publish

    exported = export_stage(config, "every", evaluation, RunOptions(checkpoint=300))
    assert isinstance(exported, ExportArtifact) and exported.step == 300


def _sensor():
    from plugins.sensors import WaitForCheckpointSensor

    return WaitForCheckpointSensor(task_id="wait", config_path="/nowhere.yaml", timeout=60)


def test_waiting_sensor_skips_on_timeout_but_fails_on_errors() -> None:
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from plugins.triggers import CheckpointEvent

    sensor = _sensor()
    timeout = CheckpointEvent("timeout", "example", message="no new checkpoint within 60 s").to_payload()
    with pytest.raises(AirflowSkipException, match="no new checkpoint"):
        sensor.execute_complete({}, timeout)
    error = CheckpointEvent("error", "example", message="config broken: name: required").to_payload()
    with pytest.raises(AirflowFailException, match="config broken"):
        sensor.execute_complete({}, error)
    found = CheckpointEvent("found", "example", steps=(400,), message="new checkpoint steps [400]").to_payload()
    assert tuple(sensor.execute_complete({}, found)["steps"]) == (400,)


def test_waiting_sensor_does_not_wait_when_the_run_chose_a_checkpoint() -> None:
    sensor = _sensor()
    assert sensor.execute({"params": {"checkpoint": 300, "force": False}}) is None
    assert sensor.execute({"params": {"checkpoint": None, "force": True}}) is None


def test_checkpoints_every_strategy_declined_are_not_taken_again(model_copy, make_config) -> None:
    from components.ledger import Ledger
    from components.pipeline.runner import run_pipeline

    final_only = [{"name": "final_only", "kind": "final", "params": {"max_steps": 10_000}}]
    config = make_config(model_copy, strategies=final_only)
    first = run_pipeline(config)
    assert [e.checkpoint.step for e in first.evaluations] == [0, 100, 200, 300]
    assert first.published == ()
    state = Ledger(config.destination.uri, config.name).load()
    assert state.record(300).declined == {"final_only": "declined by strategy kind 'final'"}
    assert state.record(0).declined == {}  # not blessed: nothing to decline

    assert run_pipeline(config).evaluations == ()  # nothing new: blessed ones were all declined

    widened = make_config(
        model_copy, strategies=[*final_only, {"name": "every", "kind": "all_modes", "servable": "example-all"}]
    )
    again = run_pipeline(widened)  # a new strategy has not looked at them yet
    assert sorted(p.step for p in again.published) == [100, 200, 300]
