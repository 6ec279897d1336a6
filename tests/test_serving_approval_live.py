"""Approval of a `stable` move on a live Airflow (api-server, scheduler, dag-processor, triggerer):
the promote DAG waits in Airflow's HITL step, a person answers through the REST API; Approve moves the
label (recorded as done by the approver), Reject leaves everything as it was."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from components.ledger.label_history import LabelHistory
from components.serving import config_file, model_config
from components.storage import storage_for
from tests.support.airflow_live import wait_for
from tests.support.example_pipeline import write_config
from tests.support.serving import publish_versions, serving_config, serving_config_dict

# The model's own name in the shared deployment, where other modules' models live beside it.
NAME = "approval"
PROMOTE = f"exportflow__{NAME}__promote"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, shared_airflow) -> Path:
    root = tmp_path_factory.mktemp("serving_live")
    publish_versions(dataclasses.replace(serving_config(root), name=NAME), root, 100, 200)
    write_config(serving_config_dict(root, name=NAME, approval=True), shared_airflow.configs_dir / f"{NAME}.yaml")
    return root


@pytest.fixture(scope="module")
def live(shared_airflow, workspace: Path):
    return shared_airflow.airflow


def labels(workspace: Path) -> dict[str, int]:
    read = config_file.read(storage_for(str(workspace)), str(workspace / "published" / "models.config"))
    entry = model_config.find(read.config, NAME)
    return dict(entry.labels) if entry else {}


def answer(live, run_id: str, option: str) -> dict:
    """Answer the approval step with ``option``; returns what it asked (subject, body, options)."""
    path = f"/api/v2/dags/{PROMOTE}/dagRuns/{run_id}/taskInstances/approve/-1/hitlDetails"

    def details() -> dict | None:
        status, body = live.request("GET", path)
        return body if status == 200 else None

    asked = wait_for(details, 180, "the approval step to ask for an answer")
    # Airflow 3.3 pauses the step (state awaiting_input) and its executor then reports the worker done;
    # an answer that lands before the scheduler has taken that report resumes a task it then marks
    # failed. So answer once the scheduler has seen the pause.
    paused = f"task_id='approve', run_id='{run_id}'"
    wait_for(
        lambda: any(paused in line and "Received executor event" in line
                    for line in live.log_tail("scheduler", 100_000).splitlines()),
        180,
        "the scheduler to see the approval step paused",
    )
    status, body = live.request("PATCH", path, {"chosen_options": [option], "params_input": {}})
    assert status == 200, body
    return asked


def test_approve_moves_stable_and_reject_changes_nothing(live, workspace: Path) -> None:
    live.wait_for_dag(PROMOTE)

    status, run = live.trigger(PROMOTE, {"action": "promote", "version": 100, "label": "stable", "reason": "first"})
    assert status == 200, run
    asked = answer(live, run["dag_run_id"], "Approve")
    assert asked["subject"] == f"{NAME}: promote stable to version 100", asked  # the approver sees what moves
    assert live.wait_for_run(PROMOTE, run["dag_run_id"])["state"] == "success", live.log_tail("scheduler")
    assert labels(workspace) == {"stable": 100}
    (move,) = LabelHistory(storage_for(str(workspace)), str(workspace / "published"), NAME).load().moves
    assert (move.to_version, move.who, move.run_id) == (100, "admin", run["dag_run_id"])
    status, events = live.request("GET", "/api/v2/assets/events?limit=100")
    assert status == 200, events
    serving_events = [e for e in events["asset_events"] if str(e.get("uri", "")).endswith(f"/{NAME}/models.config")]
    assert [e["extra"] for e in serving_events] == [
        {"servable": NAME, "label": "stable", "from": None, "to": 100, "action": "promote", "who": "admin"}
    ]

    before = (workspace / "published" / "models.config").read_bytes()
    status, run = live.trigger(PROMOTE, {"action": "promote", "version": 200, "label": "stable", "reason": "no"})
    assert status == 200, run
    answer(live, run["dag_run_id"], "Reject")
    live.wait_for_run(PROMOTE, run["dag_run_id"])
    states = {t["task_id"]: t["state"] for t in live.task_instances(PROMOTE, run["dag_run_id"])}
    assert states["approve"] == "success" and states["move_label"] == "skipped"
    assert (workspace / "published" / "models.config").read_bytes() == before  # not even version 200 listed
    assert len(LabelHistory(storage_for(str(workspace)), str(workspace / "published"), NAME).load().moves) == 1


def test_the_serving_panel_reads_runs_through_the_rest_api_as_the_caller(live, workspace: Path) -> None:
    """The panel's run list comes from ``POST /api/v2/dags/~/dagRuns/list`` asked with the caller's token
    (no ORM in the plugin): a dry run marked failed and a promotion show with their states."""
    export_dag = f"exportflow__{NAME}"
    live.wait_for_dag(export_dag)
    live.wait_for_dag(PROMOTE)
    status, dry = live.trigger(export_dag, {"dry_run": True})
    assert status == 200, dry
    status, body = live.request("PATCH", f"/api/v2/dags/{export_dag}/dagRuns/{dry['dag_run_id']}", {"state": "failed"})
    assert status == 200, body
    status, promoted = live.trigger(PROMOTE, {"action": "promote", "version": 200, "label": "canary"})
    assert status == 200, promoted
    assert live.wait_for_run(PROMOTE, promoted["dag_run_id"])["state"] == "success", live.log_tail("scheduler")

    status, panel = live.request("GET", f"/exportflow/api/models/{NAME}/serving")
    assert status == 200, panel
    assert panel["runs_error"] is None
    runs = {r["run_id"]: r for r in panel["runs"]}
    assert (runs[dry["dag_run_id"]]["state"], runs[dry["dag_run_id"]]["dry_run"]) == ("failed", True)
    assert (runs[promoted["dag_run_id"]]["state"], runs[promoted["dag_run_id"]]["dag_id"]) == ("success", PROMOTE)
    assert {r["dag_id"] for r in panel["runs"]} <= {export_dag, PROMOTE}  # only this model's DAGs
    status, _ = live.request("GET", f"/exportflow/api/models/{NAME}/serving", auth=False)
    assert status == 401
