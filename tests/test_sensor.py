"""The deferrable new-checkpoint sensor and its trigger: typed event, one poke before deferring, explicit
timeout, and a real run where Airflow's own triggerer (the process ``airflow standalone`` starts)
resumes the sensor when the trainer writes a checkpoint."""

from __future__ import annotations

import asyncio
import importlib
import json
import shutil
import textwrap
import time
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSensorTimeout, TaskDeferred

from plugins import triggers
from plugins.sensors import NewCheckpointSensor
from plugins.triggers import CheckpointEvent, NewCheckpointTrigger
from tests.support.example_pipeline import TrainedModel, example_config_file


def config_file_for(model_dir: Path, trained: TrainedModel, root: Path) -> str:
    """The example config for a trainer writing to ``model_dir`` (with the trained model's data), as a file."""
    return str(example_config_file(TrainedModel(model_dir, trained.data_dir, ()), root))


def trainer_writes(trained: TrainedModel, model_dir: Path, step: int) -> None:
    """A checkpoint appears the way TensorFlow writes one: shards and index, then the state file."""
    model_dir.mkdir(exist_ok=True)
    for path in sorted(trained.model_dir.glob(f"model.ckpt-{step}.*")):
        shutil.copyfile(path, model_dir / path.name)
    (model_dir / "checkpoint").write_text(f'model_checkpoint_path: "model.ckpt-{step}"\n')


def collect(trigger: NewCheckpointTrigger) -> list[dict]:
    async def run() -> list[dict]:
        return [event.payload async for event in trigger.run()]

    return asyncio.run(run())


def test_event_is_a_frozen_dataclass_that_round_trips_as_json() -> None:
    event = CheckpointEvent("found", "example", (100, 200), "/m", "new checkpoint steps [100, 200]")
    payload = event.to_payload()
    assert payload == {
        "status": "found",
        "model": "example",
        "steps": [100, 200],
        "model_dir": "/m",
        "message": event.message,
    }
    assert CheckpointEvent.from_payload(payload) == event
    with pytest.raises(ValueError, match="not a CheckpointEvent payload"):
        CheckpointEvent.from_payload({"status": "found", "model": "x", "extra": 1})
    with pytest.raises(AttributeError):
        event.status = "timeout"  # type: ignore[misc]


def test_trigger_serializes_to_a_class_path_the_triggerer_can_import() -> None:
    trigger = NewCheckpointTrigger("/configs/example.yaml", poll_interval=5, deadline=1_900_000_000.0)
    classpath, kwargs = trigger.serialize()
    assert classpath == "plugins.triggers.NewCheckpointTrigger"
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert kwargs == {
        "config_path": "/configs/example.yaml",
        "poll_interval": 5.0,
        "deadline": 1_900_000_000.0,
    }


def test_trigger_keeps_polling_until_a_checkpoint_appears(trained_model, tmp_path: Path, monkeypatch) -> None:
    model_dir = tmp_path / "model"  # training has not started: no folder yet
    config_path = config_file_for(model_dir, trained_model, tmp_path)
    real = triggers.check_for_new_checkpoints
    seen: list[str] = []

    def check_then_train(path: str) -> CheckpointEvent:
        event = real(path)
        seen.append(event.status)
        if len(seen) == 2:  # the trainer writes its first checkpoint after the second look
            trainer_writes(trained_model, model_dir, 100)
        return event

    monkeypatch.setattr(triggers, "check_for_new_checkpoints", check_then_train)
    events = collect(NewCheckpointTrigger(config_path, poll_interval=0.01, deadline=time.time() + 120))
    assert seen == ["waiting", "waiting", "found"]
    assert [CheckpointEvent.from_payload(e) for e in events] == [
        CheckpointEvent("found", "example", (100,), str(model_dir), "new checkpoint steps [100]")
    ]


def test_trigger_times_out_at_its_deadline(trained_model, tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    config_path = config_file_for(tmp_path / "model", trained_model, tmp_path)
    events = collect(NewCheckpointTrigger(config_path, poll_interval=0.01, deadline=time.time() + 0.05))
    (event,) = [CheckpointEvent.from_payload(e) for e in events]
    assert event.status == "timeout" and "no new complete checkpoint before the deadline" in event.message
    assert "model_dir" in event.message and "is empty" in event.message


def test_trigger_reports_a_broken_config_at_once(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("name: example\n")
    events = collect(
        NewCheckpointTrigger(str(tmp_path / "broken.yaml"), poll_interval=60, deadline=time.time() + 600)
    )
    (event,) = [CheckpointEvent.from_payload(e) for e in events]
    assert event.status == "error" and "required field is missing" in event.message


def test_sensor_pokes_once_then_defers_with_its_timeout(trained_model, tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    config_path = config_file_for(model_dir, trained_model, tmp_path)
    sensor = NewCheckpointSensor(task_id="wait", config_path=config_path, timeout=600, poll_interval=30)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, NewCheckpointTrigger)
    assert deferred.value.method_name == "execute_complete"
    assert deferred.value.timeout.total_seconds() == 600
    assert trigger.poll_interval == 30 and 590 < trigger.deadline - time.time() <= 600

    trainer_writes(trained_model, model_dir, 300)
    found = sensor.execute({})  # already there: the first poke returns without deferring
    assert found["status"] == "found" and found["steps"] == [300]


def test_sensor_resumes_from_the_event() -> None:
    sensor = NewCheckpointSensor(task_id="wait", config_path="/unused.yaml", timeout=60)
    found = CheckpointEvent("found", "example", (100,), "/m", "new").to_payload()
    assert sensor.execute_complete({}, found) == found
    with pytest.raises(AirflowSensorTimeout, match="model example: no new"):
        sensor.execute_complete({}, CheckpointEvent("timeout", "example", message="no new").to_payload())
    with pytest.raises(AirflowFailException, match="model example: GCS refused access"):
        sensor.execute_complete(
            {}, CheckpointEvent("error", "example", message="GCS refused access").to_payload()
        )


SENSOR_DAG = textwrap.dedent(
    """
    from airflow.sdk import DAG
    from plugins.sensors import NewCheckpointSensor

    with DAG("exportflow_sensor_check", schedule=None, catchup=False):
        NewCheckpointSensor(
            task_id="wait_for_checkpoint",
            config_path={config_path!r},
            poll_interval=1,
            timeout=600,
        )
    """
)


def test_the_triggerer_of_a_live_airflow_resumes_the_sensor(trained_model, tmp_path: Path, shared_airflow) -> None:
    """Scheduler, dag-processor, triggerer and api-server as separate processes (what `airflow standalone`
    starts): the sensor defers, the triggerer polls, the trainer writes a checkpoint, the task succeeds."""
    from tests.support.airflow_live import wait_for

    model_dir = tmp_path / "model"
    config_path = config_file_for(model_dir, trained_model, tmp_path)  # outside the deployment's configs folder
    (shared_airflow.dags_dir / "sensor_dag.py").write_text(SENSOR_DAG.format(config_path=config_path))
    live = shared_airflow.airflow
    dag_id, task_id = "exportflow_sensor_check", "wait_for_checkpoint"
    live.wait_for_dag(dag_id)
    status, run = live.trigger(dag_id)
    assert status == 200, run
    run_id = run["dag_run_id"]

    def deferred() -> bool:
        states = {ti["task_id"]: ti["state"] for ti in live.task_instances(dag_id, run_id)}
        assert states.get(task_id) not in ("failed", "upstream_failed"), live.log_tail("scheduler")
        return states.get(task_id) == "deferred"

    wait_for(deferred, 300, "the sensor to defer to the triggerer")
    trainer_writes(trained_model, model_dir, 200)
    finished = live.wait_for_run(dag_id, run_id, timeout=300)
    assert finished["state"] == "success", live.log_tail("triggerer")
    status, xcom = live.request(
        "GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
    )
    assert status == 200, xcom
    value = xcom["value"]
    event = CheckpointEvent.from_payload(value if isinstance(value, dict) else json.loads(value))
    assert (event.status, event.model, event.steps) == ("found", "example", (200,))

    # The event came from the triggerer process: it writes the trigger's log beside the task's log
    # (asynchronously, so wait for it to appear).
    def trigger_log() -> str | None:
        logs = (live.home / "logs").glob(f"dag_id={dag_id}/**/attempt=1.log.trigger.*.log")
        text = "".join(path.read_text(errors="replace") for path in logs)
        return (
            text
            if '"logger":"plugins.triggers.NewCheckpointTrigger"' in text and "found after" in text
            else None
        )

    wait_for(trigger_log, 60, "the triggerer's log of NewCheckpointTrigger")
