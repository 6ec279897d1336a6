"""exportflow on a live Airflow: api-server, scheduler, dag-processor and triggerer as separate processes.

The training DAG and the export DAG run exactly as in production: a REST API v2 call with a JWT from
``/auth/token`` starts training; its asset events make the scheduler start the export DAG, whose one
run handles every coalesced event; manual runs go through the same API with the form's conf.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from components.ledger import Ledger
from tests.support.airflow_live import wait_for
from tests.support.example_pipeline import example_config_dict, write_config

EXPORT_DAG = "exportflow__example"
TRAINING_DAG = "exportflow_example_training"


@pytest.fixture(scope="module")
def workspace(shared_airflow, trained_model) -> Path:
    root = shared_airflow.training_dir  # the example training DAG's workspace: model/ and data/
    (root / "data").mkdir()
    for name in ("train.tfrecord", "eval.tfrecord"):  # training data only; the DAG trains from scratch
        (root / "data" / name).write_bytes((trained_model.data_dir / name).read_bytes())
    model = type(trained_model)(root / "model", root / "data", ())
    config = example_config_dict(model, root / "published", airflow={"schedule": "asset", "retries": 0})
    write_config(config, shared_airflow.configs_dir / "example.yaml")
    # A second model whose DAG waits (deferred, in the triggerer) for its trainer's first checkpoint.
    waiting_model = type(trained_model)(root / "waiting_model", trained_model.data_dir, ())
    waiting = example_config_dict(
        waiting_model,
        root / "published_waiting",
        name="waiting",
        airflow={"retries": 0, "wait_for_checkpoint_minutes": 10, "wait_poll_seconds": 2},
    )
    write_config(waiting, shared_airflow.configs_dir / "waiting.yaml")
    return root


@pytest.fixture(scope="module")
def live(shared_airflow, workspace: Path):
    return shared_airflow.airflow


def runs(live, dag_id: str) -> list[dict]:
    status, body = live.request("GET", f"/api/v2/dags/{dag_id}/dagRuns?order_by=-run_after")
    assert status == 200, body
    return body["dag_runs"]


def test_rest_api_needs_a_token(live) -> None:
    status, _ = live.request("GET", f"/api/v2/dags/{EXPORT_DAG}", auth=False)
    assert status == 401
    status, body = live.request("POST", "/auth/token", {"username": "admin", "password": "wrong"}, auth=False)
    assert status == 401, body


def test_training_asset_events_trigger_one_export_run_that_handles_all_of_them(live, workspace) -> None:
    live.wait_for_dag(TRAINING_DAG)
    live.wait_for_dag(EXPORT_DAG)
    status, run = live.trigger(TRAINING_DAG, {"steps": 200, "checkpoint_every": 100})
    assert status == 200, run
    assert live.wait_for_run(TRAINING_DAG, run["dag_run_id"], timeout=300)["state"] == "success"

    export_run = wait_for(
        lambda: next((r for r in runs(live, EXPORT_DAG) if r["run_type"] == "asset_triggered"), None),
        120,
        "the scheduler to start the asset-triggered export run",
    )
    finished = live.wait_for_run(EXPORT_DAG, export_run["dag_run_id"], timeout=600)
    assert finished["state"] == "success", live.log_tail("scheduler")
    assert len(runs(live, EXPORT_DAG)) == 1  # three checkpoint events, one run

    state = Ledger(str(workspace / "published"), "example").load()
    assert sorted(int(s) for s in state.checkpoints) == [0, 100, 200]  # every event handled
    published = sorted(int(p.name) for p in (workspace / "published" / "example").iterdir() if p.name.isdigit())
    assert published == [100, 200]  # step 0 is below the auc bound
    assert state.record(200).evaluation.checkpoint.final is True
    assert state.record(100).evaluation.checkpoint.final is False

    status, events = live.request("GET", "/api/v2/assets/events?limit=100")
    assert status == 200, events
    published_events = [e for e in events["asset_events"] if "exportflow-published" in (e.get("name") or e.get("uri") or "")
                        or str(e.get("uri", "")).endswith("/published/example")]
    assert sorted(e["extra"]["step"] for e in published_events) == [100, 200]
    assert all({"version", "strategy", "uri", "metrics"} <= set(e["extra"]) for e in published_events)


def test_manual_trigger_through_rest_with_the_form(live, workspace) -> None:
    live.wait_for_dag(EXPORT_DAG)
    status, body = live.trigger(EXPORT_DAG, {"checkpoint": "latest"})
    assert status == 400, body  # refused by the form's schema before any run exists

    status, run = live.trigger(EXPORT_DAG, {"checkpoint": 200, "force": True, "dry_run": True})
    assert status == 200, run
    assert live.wait_for_run(EXPORT_DAG, run["dag_run_id"])["state"] == "success"
    tasks = {(t["task_id"], t["map_index"]): t for t in live.task_instances(EXPORT_DAG, run["dag_run_id"])}
    assert tasks[("export", 0)]["rendered_map_index"] == "all_modes @ step 200"
    assert tasks[("report", -1)]["state"] == "success"


def test_deferred_sensor_is_resumed_by_the_triggerer_when_the_trainer_writes(live, workspace, trained_model) -> None:
    dag_id = "exportflow__waiting"
    live.wait_for_dag(dag_id)
    status, run = live.trigger(dag_id, {})
    assert status == 200, run

    def sensor_state() -> str | None:
        tasks = {t["task_id"]: t for t in live.task_instances(dag_id, run["dag_run_id"])}
        return tasks.get("wait_for_checkpoint", {}).get("state")

    wait_for(lambda: sensor_state() == "deferred", 180, "the sensor to defer to the triggerer")

    # The trainer writes step 300: data shard, then index, then the state file, as TF's saver does.
    model_dir = workspace / "waiting_model"
    model_dir.mkdir()
    source = trained_model.model_dir
    for path in sorted(source.glob("model.ckpt-300.data-*")) + [source / "model.ckpt-300.index"]:
        (model_dir / path.name).write_bytes(path.read_bytes())
    (model_dir / "checkpoint").write_text(
        'model_checkpoint_path: "model.ckpt-300"\nall_model_checkpoint_paths: "model.ckpt-300"\n'
    )

    finished = live.wait_for_run(dag_id, run["dag_run_id"], timeout=600)
    assert finished["state"] == "success", live.log_tail("triggerer")
    tasks = {t["task_id"]: t for t in live.task_instances(dag_id, run["dag_run_id"])}
    assert tasks["wait_for_checkpoint"]["state"] == "success"
    published = sorted(p.name for p in (workspace / "published_waiting" / "waiting").iterdir() if p.name.isdigit())
    assert published == ["300"]
