"""The model page's serving panel and ``/api/models/{model}/serving``, in-process, on a real destination:
real published versions, a model server config and label history written by ``components.serving.control``.

DAG runs come through the app's ``runs`` seam (in production Airflow's REST API asked as the caller,
exercised live in test_ui_plugin.py and test_serving_approval_live.py); here they are rows as that API
answers them.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from components.config.loader import parse_config
from components.publish.executor import publish
from components.serving import control
from plugins.ui import app as ui_app
from plugins.ui.serving import RunRow
from tests.support.example_pipeline import write_config
from tests.support.publishing import make_export, params_for
from tests.support.serving import serving_config_dict

PROMOTE_DAG = "exportflow__example__promote"


def api_run(
    dag_id: str, run_id: str, state: str, conf: dict[str, Any], run_type: str = "manual",
    start: datetime.datetime | None = None, end: datetime.datetime | None = None,
) -> RunRow:
    """A run as ``POST /api/v2/dags/~/dagRuns/list`` answers it (the fields the panel reads)."""
    item = {"dag_id": dag_id, "dag_run_id": run_id, "state": state, "conf": conf, "run_type": run_type,
            "start_date": start.isoformat() if start else None, "end_date": end.isoformat() if end else None,
            "queued_at": None, "note": None}
    return RunRow.from_api(json.loads(json.dumps(item)))


def config_dict(tmp_path: Path, name: str, mode: str) -> dict[str, Any]:
    """Model ``name`` publishing to its own folder, keeping one version; with labels, publishing as canary."""
    return serving_config_dict(
        tmp_path / name, name=name, keep=1, mode=mode, **({"publish_label": "canary"} if mode == "labels" else {})
    )


@pytest.fixture
def served(tmp_path: Path) -> tuple[TestClient, list[list[str]]]:
    """``example`` (labels: stable 100 → 200 → rolled back to 100, canary 300, 200 pinned) and ``plain``
    (serving.mode: latest)."""
    configs = tmp_path / "configs"
    configs.mkdir()
    for name, mode in (("example", "labels"), ("plain", "latest")):
        write_config(config_dict(tmp_path, name, mode), configs / f"{name}.yaml")
    config = parse_config(config_dict(tmp_path, "example", "labels"), base_dir=tmp_path)
    for step in (100, 200, 300):
        publish(params_for(config), make_export(tmp_path / "exports", step=step, seed=step))
    control.promote(config, 100, "stable", who="alice", reason="first")
    control.promote(config, 200, "stable", who="bob", run_id="manual__promote-1", reason="better auc")
    control.rollback(config, "stable", who="carol", run_id="manual__rollback-1", reason="latency")
    control.promote(config, 300, "canary", who="dave")
    control.pin(config, 200)

    asked: list[list[str]] = []
    started = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)

    def runs(request: Any, dag_ids: list[str]) -> list[RunRow]:
        asked.append(dag_ids)
        rows = [
            api_run("exportflow__example", "manual__dry", "success", {"dry_run": True}, start=started),
            api_run("exportflow__example", "scheduled__broken", "failed", {}, "scheduled", started, started),
            api_run(PROMOTE_DAG, "manual__promote-1", "success", {"action": "promote", "label": "stable", "version": 200}),
        ]
        return [r for r in rows if r.dag_id in dag_ids]

    app = ui_app.create_app(
        ui_app.ModelCatalog(lambda: str(configs)), user_dependency=lambda: "tester",
        authorize=lambda request, model, user: None, runs=runs,
    )
    app.state.destination = tmp_path / "example" / "published"
    return TestClient(app), asked


@pytest.fixture(autouse=True)
def _airflow_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ui_app, "airflow_root", lambda: "/")


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def conf_of(url: str) -> dict[str, Any]:
    return json.loads(parse_qs(urlsplit(url).query)["conf"][0])


def test_serving_json_shows_labels_loaded_versions_pins_history_and_links(served) -> None:
    client, asked = served
    before = files_of(client.app.state.destination)
    body = client.get("/api/models/example/serving").json()
    assert files_of(client.app.state.destination) == before  # the endpoint only reads

    assert body["mode"] == "labels" and body["note"] is None and body["error"] is None
    assert body["config_uri"] == str(client.app.state.destination / "models.config")
    assert body["promote_dag_id"] == PROMOTE_DAG and body["promote_dag_url"] == f"/dags/{PROMOTE_DAG}"
    (servable,) = body["servables"]
    assert servable["servable"] == "example" and servable["in_config"] is True
    assert servable["loaded_versions"] == [100, 200, 300]  # both labels' versions and the pinned 200
    assert servable["pins"] == [200]
    assert servable["published_versions"] == [300, 200, 100]
    labels = {label["label"]: label for label in servable["labels"]}
    assert (labels["stable"]["version"], labels["canary"]["version"]) == (100, 300)
    # stable went 100 → 200 → back to 100: nothing earlier to roll back to; canary never moved twice
    assert labels["stable"]["rollback"] is None and labels["canary"]["rollback"] is None
    remove = labels["canary"]["remove"]  # each label in the config has a link to the promote DAG's unlabel
    assert remove["conf"] == conf_of(remove["url"]) == {
        "action": "unlabel", "label": "canary", "servable": "example", "version": None, "reason": "remove canary (was 300)",
    }

    history = servable["history"]  # newest first
    assert [(m["label"], m["action"], m["from_version"], m["to_version"], m["who"]) for m in history] == [
        ("canary", "promote", None, 300, "dave"),
        ("stable", "rollback", 200, 100, "carol"),
        ("stable", "promote", 100, 200, "bob"),
        ("stable", "promote", None, 100, "alice"),
    ]
    rollback = history[1]
    assert (rollback["run_id"], rollback["reason"]) == ("manual__rollback-1", "latency")
    assert rollback["run_url"] == f"/dags/{PROMOTE_DAG}/runs/manual__rollback-1"
    assert history[0]["run_url"] is None and history[0]["at"].endswith("+00:00")

    links = {link["label"]: link for link in servable["promote"]}
    assert sorted(links) == ["canary", "stable"]
    stable = links["stable"]
    assert urlsplit(stable["url"]).path == f"/dags/{PROMOTE_DAG}"
    expected = {"action": "promote", "label": "stable", "servable": "example", "version": 300,
                "reason": "promote 300 to stable"}
    assert stable["conf"] == expected == conf_of(stable["url"])

    runs = {r["run_id"]: r for r in body["runs"]}
    assert asked[-1] == ["exportflow__example", PROMOTE_DAG]
    assert runs["manual__dry"]["dry_run"] is True and runs["manual__dry"]["state"] == "success"
    assert runs["scheduled__broken"]["state"] == "failed" and runs["scheduled__broken"]["dry_run"] is False
    assert runs["scheduled__broken"]["started"] == "2026-01-02T03:04:05+00:00"
    assert runs["manual__promote-1"]["url"] == f"/dags/{PROMOTE_DAG}/runs/manual__promote-1"


def test_a_label_with_an_earlier_version_gets_a_rollback_link(served, tmp_path: Path) -> None:
    client, _ = served
    config = parse_config(config_dict(tmp_path, "example", "labels"), base_dir=tmp_path)
    control.promote(config, 200, "canary", who="erin")  # canary 300 → 200: a rollback goes back to 300
    (servable,) = client.get("/api/models/example/serving").json()["servables"]
    canary = next(label for label in servable["labels"] if label["label"] == "canary")
    assert (canary["version"], canary["rollback_to"]) == (200, 300)
    assert urlsplit(canary["rollback"]["url"]).path == f"/dags/{PROMOTE_DAG}"
    assert conf_of(canary["rollback"]["url"]) == {
        "action": "rollback", "label": "canary", "servable": "example", "version": 300,
        "reason": "roll canary back from 200 to 300",
    }


def test_the_page_shows_the_panel_and_links_to_the_promote_form(served) -> None:
    client, _ = served
    page = client.get("/ui/models/example")
    assert page.status_code == 200
    text = page.text
    assert 'id="serving" data-mode="labels"' in text
    assert '<tr data-label="stable" data-version="100">' in text
    assert 'data-label="stable" data-from="200" data-to="100"' in text  # the rollback row of the history
    assert '<a class="button unlabel-link" data-airflow href="/dags/' in text and "Remove canary…</a>" in text
    assert f'href="/dags/{PROMOTE_DAG}/runs/manual__rollback-1"' in text
    assert 'data-run-id="manual__dry" data-state="success" data-dry-run="true"' in text
    assert 'data-run-id="scheduled__broken" data-state="failed"' in text
    assert f'class="button promote-link" data-airflow data-label="stable" href="/dags/{PROMOTE_DAG}?conf=' in text


def test_a_removed_label_is_in_the_history_and_no_longer_in_the_labels(served, tmp_path: Path) -> None:
    client, _ = served
    config = parse_config(config_dict(tmp_path, "example", "labels"), base_dir=tmp_path)
    control.unlabel(config, "canary", who="erin", reason="canary over")
    (servable,) = client.get("/api/models/example/serving").json()["servables"]
    canary = next(label for label in servable["labels"] if label["label"] == "canary")
    assert (canary["version"], canary["rollback_to"], canary["rollback"], canary["remove"]) == (None, None, None, None)
    latest = servable["history"][0]
    assert (latest["label"], latest["action"], latest["from_version"], latest["to_version"]) == ("canary", "remove", 300, None)
    text = client.get("/ui/models/example").text
    assert 'data-label="canary" data-from="300" data-to=""' in text and ">removed</td>" in text


def test_a_latest_model_says_tf_serving_serves_the_highest_version(served) -> None:
    client, asked = served
    response = client.get("/api/models/plain/serving")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["mode"] == "latest" and body["note"] == "TF Serving serves the highest version"
    assert body["servables"] == [] and body["promote_dag_id"] is None
    assert asked[-1] == ["exportflow__plain"]  # no promote DAG exists for it
    page = client.get("/ui/models/plain").text
    assert 'id="serving-latest">TF Serving serves the highest version' in page
    assert "promote-link" not in page


def test_a_malformed_config_is_reported_in_the_panel_and_left_untouched(served) -> None:
    client, _ = served
    config = client.app.state.destination / "models.config"
    config.write_text("model_config_list { config { name: 'example' base_path: }")
    body = client.get("/api/models/example/serving").json()
    assert body["servables"] == [] and "is malformed at line 1" in body["error"]
    assert config.read_text() == "model_config_list { config { name: 'example' base_path: }"
    assert len(body["runs"]) == 3  # the run list still shows
    page = client.get("/ui/models/example")
    assert page.status_code == 200 and 'id="serving-error"' in page.text


def test_runs_that_cannot_be_read_are_reported_and_the_panel_still_shows(served, tmp_path: Path) -> None:

    def no_database(request: Any, dag_ids: list[str]) -> list[RunRow]:
        raise RuntimeError("no metadata database")

    app = ui_app.create_app(
        ui_app.ModelCatalog(lambda: str(tmp_path / "configs")), user_dependency=lambda: "tester",
        authorize=lambda request, model, user: None, runs=no_database,
    )
    body = TestClient(app).get("/api/models/example/serving").json()
    assert body["runs"] == [] and body["runs_error"] == "cannot read the DAG runs from Airflow: RuntimeError: no metadata database"
    assert [label["label"] for label in body["servables"][0]["labels"]] == ["canary", "stable"]
