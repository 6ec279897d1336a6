"""The Model exports page's data, chart layout and app, on hand-made ledgers (no TensorFlow, no Airflow
processes). The live page in a real browser behind Airflow's login is tested in test_ui_plugin.py.

The app runs in-process through its own seams: the configs folder, the user dependency (in production
Airflow's ``get_user``) and the authorization check (Airflow's ``requires_access_dag``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi import HTTPException
from fastapi.testclient import TestClient

from components.artifacts import (
    CheckpointArtifact,
    EvaluationArtifact,
    ExportArtifact,
    PushedModelArtifact,
    ThresholdResult,
    to_jsonable,
)
from components.config import parse_config
from components.ledger import Ledger
from components.ledger.schema import BestRecord, CheckpointRecord, LedgerState
from plugins.ui import app as ui_app
from plugins.ui.chart import plot
from plugins.ui.history import UnknownMetric, build_history, jsonable, metric_direction
from tests.support.example_pipeline import TrainedModel, example_config_dict, write_config

ROOT = Path(__file__).resolve().parent.parent
RUN_ID = "manual__2026-01-02T03:04:05+00:00"


def make_config(tmp_path: Path, thresholds: list[dict], name: str = "example"):
    fake = TrainedModel(tmp_path / "model", tmp_path / "data", ())
    data = example_config_dict(fake, tmp_path / "published", merge={"evaluation": {"thresholds": thresholds}}, name=name)
    return parse_config(data, base_dir=tmp_path)


def evaluation(step: int, metrics: dict[str, float], blessed: bool, reason: str = "ok") -> EvaluationArtifact:
    checkpoint = CheckpointArtifact(uri=f"/m/model.ckpt-{step}", model_name="example", step=step)
    return EvaluationArtifact(
        uri=checkpoint.uri,
        checkpoint=checkpoint,
        metrics=metrics,
        blessed=blessed,
        reasons=(ThresholdResult("auc", blessed, reason),),
        evaluated_at="2026-01-02T03:00:00+00:00",
    )


def exported(step: int) -> ExportArtifact:
    return ExportArtifact(
        uri=f"/staging/all_modes/{step}",
        model_name="example",
        strategy="all_modes",
        version=str(step),
        step=step,
        checkpoint_uri=f"/m/model.ckpt-{step}",
    )


def pushed(step: int, destination: Path, run_id: str | None = RUN_ID) -> PushedModelArtifact:
    return PushedModelArtifact(
        uri=f"{destination}/example/{step}",
        model_name="example",
        strategy="all_modes",
        destination=str(destination),
        version=str(step),
        step=step,
        manifest_uri=f"{destination}/example/{step}/assets.extra/export_manifest.json",
        files=3,
        bytes_total=3 * 1024 * 1024,
        published_at="2026-01-02T03:04:09+00:00",
        run_id=run_id,
    )


def record(step: int, evaluation_=None, exports=(), publications=()) -> CheckpointRecord:
    return CheckpointRecord(
        step=step,
        uri=f"/m/model.ckpt-{step}",
        evaluation=evaluation_,
        exports={e.strategy: e for e in exports},
        publications={p.strategy: p for p in publications},
    )


def history_ledger(destination: Path) -> LedgerState:
    """0 not blessed; 100 published (the best auc); 200 exported, not published; 300 published; 400 only seen."""
    records = [
        record(0, evaluation(0, {"auc": 0.50, "loss": 0.74}, False, "auc=0.5 < lower bound 0.6")),
        record(
            100,
            evaluation(100, {"auc": 0.83, "loss": 0.52}, True),
            [exported(100)],
            [pushed(100, destination)],
        ),
        record(200, evaluation(200, {"auc": 0.81, "loss": 0.51}, True), [exported(200)]),
        record(
            300,
            evaluation(300, {"auc": 0.82, "loss": 0.50}, True),
            [exported(300)],
            [pushed(300, destination)],
        ),
        record(400),
    ]
    state = LedgerState(model="example")
    for r in records:
        state = state.with_record(r)
    return state


BASELINE_RULES = [
    {"metric": "auc", "lower": 0.6},
    {"metric": "auc", "change": {"direction": "higher_is_better", "absolute": -0.05}},
]


def test_rows_newest_first_with_status_and_the_blessing_baseline_as_best(tmp_path: Path) -> None:
    history = build_history(make_config(tmp_path, BASELINE_RULES), history_ledger(tmp_path), airflow_root="/")

    assert [c.step for c in history.checkpoints] == [400, 300, 200, 100, 0]
    assert [c.status for c in history.checkpoints] == [
        "seen",
        "published",
        "exported",
        "published",
        "not blessed",
    ]
    # The best is what the next blessing compares against (highest published auc), not the newest version.
    assert history.best_step == 100
    assert [c.step for c in history.checkpoints if c.best] == [100]
    assert "blessing baseline" in history.best_rule
    not_blessed = history.checkpoints[-1]
    assert not_blessed.blessed is False and not_blessed.reasons[0].reason == "auc=0.5 < lower bound 0.6"


def test_chart_has_one_point_per_evaluated_checkpoint_marking_exports_publications_and_best(
    tmp_path: Path,
) -> None:
    chart = build_history(make_config(tmp_path, BASELINE_RULES), history_ledger(tmp_path)).chart

    assert chart.metric == "auc" and chart.direction == "higher_is_better"
    assert [p.step for p in chart.points] == [0, 100, 200, 300]  # 400 was never evaluated
    assert [p.step for p in chart.points if p.published] == [100, 300]
    assert [p.step for p in chart.points if p.exported] == [100, 200, 300]
    assert [p.step for p in chart.points if p.best] == [100]
    assert [(b.kind, b.value) for b in chart.bounds] == [("lower", 0.6)]


def test_without_a_change_threshold_the_best_follows_the_charted_metrics_direction(tmp_path: Path) -> None:
    config = make_config(tmp_path, [{"metric": "loss", "upper": 0.6}])
    history = build_history(config, history_ledger(tmp_path))

    assert history.chart.metric == "loss"  # the first threshold's metric is charted by default
    assert history.chart.direction == "lower_is_better"
    assert history.best_step == 300  # lowest loss among published (100: 0.52, 300: 0.50)
    assert build_history(config, history_ledger(tmp_path), metric="auc").best_step == 100


def test_the_best_the_ledger_keeps_per_strategy_wins(tmp_path: Path) -> None:
    config = make_config(tmp_path, BASELINE_RULES)
    kept = {
        "all_modes": BestRecord(
            step=300, version="300", metric="loss", direction="lower_is_better", value=0.5
        ),
        "other": BestRecord(step=100, version="100", metric="loss", direction="lower_is_better", value=0.52),
    }
    state = dataclasses.replace(history_ledger(tmp_path), best=kept)
    history = build_history(config, state)

    assert history.best_step == 300  # the configured strategy's best comes first
    assert history.best_by_strategy == {"all_modes": 300, "other": 100}
    assert history.best_rule == "best published by loss (lower is better)" and history.best_metric == "loss"
    assert {c.step: c.best_for for c in history.checkpoints if c.best} == {
        300: ("all_modes",),
        100: ("other",),
    }
    assert [p.step for p in history.chart.points if p.best] == [100, 300]


@pytest.mark.parametrize(
    ("metric", "thresholds", "direction"),
    [
        ("auc", [], "higher_is_better"),
        ("loss", [], "lower_is_better"),
        ("mean_squared_error", [], "lower_is_better"),
        ("precision", [{"metric": "precision", "upper": 0.99}], "lower_is_better"),
        ("loss", [{"metric": "loss", "change": {"direction": "higher_is_better"}}], "higher_is_better"),
    ],
)
def test_metric_direction(tmp_path: Path, metric: str, thresholds: list[dict], direction: str) -> None:
    config = make_config(tmp_path, thresholds)
    assert metric_direction(metric, config.evaluation.thresholds) == direction


def test_an_unknown_metric_is_refused_with_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(UnknownMetric, match=r"'precision'.*\['auc', 'loss'\]"):
        build_history(make_config(tmp_path, BASELINE_RULES), history_ledger(tmp_path), metric="precision")


def test_a_diverged_metric_is_left_off_the_chart_and_is_null_in_json(tmp_path: Path) -> None:
    state = history_ledger(tmp_path).with_record(
        record(500, evaluation(500, {"auc": math.nan, "loss": 9.0}, False))
    )
    history = build_history(make_config(tmp_path, BASELINE_RULES), state)

    assert 500 not in [p.step for p in history.chart.points]
    data = jsonable(history)
    assert data["checkpoints"][0]["step"] == 500 and data["checkpoints"][0]["metrics"]["auc"] is None
    json.dumps(data, allow_nan=False)  # strict JSON: would raise on NaN


def test_run_links_point_at_the_airflow_run_and_ledgers_without_stamps_still_load(tmp_path: Path) -> None:
    config = make_config(tmp_path, BASELINE_RULES)
    history = build_history(config, history_ledger(tmp_path), airflow_root="/airflow/")
    publication = history.best.publications[0]
    assert (
        publication.run_url
        == "/airflow/dags/exportflow__example/runs/manual__2026-01-02T03%3A04%3A05%2B00%3A00"
    )

    # A ledger written before the stamps existed: no evaluated_at, published_at, run_id anywhere.
    raw = json.loads(json.dumps(to_jsonable(history_ledger(tmp_path))))
    for checkpoint in raw["checkpoints"].values():
        if checkpoint["evaluation"]:
            del checkpoint["evaluation"]["evaluated_at"]
        for publication_ in checkpoint["publications"].values():
            del publication_["published_at"], publication_["run_id"]
    ledger = Ledger(config.destination.uri, config.name)
    Path(ledger.uri).parent.mkdir(parents=True)
    Path(ledger.uri).write_text(json.dumps(raw))

    old = build_history(config, ledger.load())
    assert [c.step for c in old.checkpoints] == [400, 300, 200, 100, 0]
    assert all(c.evaluated_at is None for c in old.checkpoints)
    assert all(p.published_at is None and p.run_url is None for c in old.checkpoints for p in c.publications)


def test_a_forced_republish_shows_both_versions_the_old_one_marked_replaced(tmp_path: Path) -> None:
    config = make_config(tmp_path, BASELINE_RULES)
    state = history_ledger(tmp_path)
    forced = dataclasses.replace(pushed(300, tmp_path), version="401", uri=f"{tmp_path}/example/401", run_id="manual__forced")
    state = state.with_record(state.record(300).with_publication(forced))

    history = build_history(config, state, airflow_root="/")
    (row,) = [c for c in history.checkpoints if c.step == 300]
    assert [(p.version, p.superseded_by, p.run_id) for p in row.publications] == [
        ("300", "401", RUN_ID), ("401", None, "manual__forced")
    ]
    assert history.publication("all_modes", "300") is not None  # its manifest page still opens
    point = next(p for p in history.chart.points if p.step == 300)
    assert point.versions == ("300", "401")


def test_plot_places_points_inside_the_axes_by_step_and_value(tmp_path: Path) -> None:
    chart = build_history(make_config(tmp_path, BASELINE_RULES), history_ledger(tmp_path)).chart
    laid = plot(chart)

    xs = [p.x for p in laid.points]
    assert xs == sorted(xs) and len(set(xs)) == len(xs)
    assert all(laid.left <= p.x <= laid.right and laid.top <= p.y <= laid.bottom for p in laid.points)
    by_step = {p.point.step: p for p in laid.points}
    assert by_step[100].y < by_step[200].y < by_step[0].y  # higher auc is drawn higher (smaller y)
    bound = laid.bounds[0]
    assert by_step[100].y < bound.y < by_step[0].y  # the 0.6 lower bound lies between 0.83 and 0.5
    labels = [t.label for t in laid.y_ticks]
    assert labels[0] <= "0.5" and labels[-1] >= "0.9"


def test_plot_of_a_single_point_has_a_range(tmp_path: Path) -> None:
    state = LedgerState(model="example").with_record(
        record(7, evaluation(7, {"auc": 0.7, "loss": 0.1}, True))
    )
    laid = plot(build_history(make_config(tmp_path, []), state).chart)
    (point,) = laid.points
    assert laid.left <= point.x <= laid.right and laid.top <= point.y <= laid.bottom
    assert len(laid.x_ticks) >= 2 and len(laid.y_ticks) >= 2


# --- the app, through its seams ----------------------------------------------------------------------


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    """Two models, ``example`` with the history ledger and ``secret`` the test user may not read."""
    configs = tmp_path / "configs"
    configs.mkdir()
    for name in ("example", "secret"):
        fake = TrainedModel(tmp_path / "model", tmp_path / "data", ())
        rules = {"evaluation": {"thresholds": BASELINE_RULES}}
        write_config(example_config_dict(fake, tmp_path / "published", merge=rules, name=name), configs / f"{name}.yaml")
    (configs / "broken.yaml").write_text("name: broken\n")
    destination = tmp_path / "published"
    state = history_ledger(destination)
    # A reason that would be markup if it were not escaped.
    zero = state.record(0)
    hostile = evaluation(0, {"auc": 0.5, "loss": 0.7}, False, "<script>alert('x')</script> auc too low")
    state = state.with_record(CheckpointRecord(step=0, uri=zero.uri, evaluation=hostile))
    ledger = Ledger(str(destination), "example")
    ledger.update(lambda _: state)
    manifest = Path(destination, "example", "100", "assets.extra", "export_manifest.json")
    manifest.parent.mkdir(parents=True)
    manifest.write_text(
        json.dumps(
            {
                "model": "example",
                "version": "100",
                "step": 100,
                "files": [
                    {"path": "saved_model.pb", "size": 2048, "crc32c": "AAAAAA=="},
                    {"path": "variables/variables.index", "size": 100, "crc32c": "BBBBBB=="},
                ],
            }
        )
    )

    def authorize(request, model: str, user: str) -> None:
        if model == "secret":
            raise HTTPException(403, "Forbidden")

    monkeypatch.setattr(ui_app, "airflow_root", lambda: "/")
    app = ui_app.create_app(
        ui_app.ModelCatalog(lambda: str(configs)),
        user_dependency=lambda: "tester",
        authorize=authorize,
        runs=lambda request, dag_ids: [],  # no Airflow database here; the run list is tested in test_ui_serving.py
    )
    app.state.ledger_path = Path(ledger.uri)  # for tests that check the page never writes it
    return TestClient(app)


def test_links_carry_the_prefix_airflow_mounts_the_plugin_app_under(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the api-server does: ``app.mount("/exportflow", <the plugin's app>)``, the app built lazily."""
    from fastapi import FastAPI

    from plugins.exportflow_plugin import URL_PREFIX, LazyApp

    monkeypatch.setattr(ui_app, "create_app", lambda: client.app)
    airflow = FastAPI()
    airflow.mount(URL_PREFIX, LazyApp())
    mounted = TestClient(airflow)

    listing = mounted.get("/exportflow/api/models").json()
    assert listing["models"][0]["page_url"] == "/exportflow/ui/models/example"
    page = mounted.get("/exportflow/ui/models/example").text
    assert 'href="/exportflow/ui/models/example/versions/all_modes/100"' in page
    assert 'href="/exportflow/api/models/example?metric=auc"' in page
    assert 'href="/dags/exportflow__example/runs/manual__2026-01-02T03%3A04%3A05%2B00%3A00"' in page
    root = mounted.get("/exportflow/", follow_redirects=False)
    assert root.status_code == 307 and root.headers["location"] == "/exportflow/ui/"


def test_models_the_user_may_not_read_are_hidden_and_refused(client: TestClient) -> None:
    listing = client.get("/api/models").json()
    assert [m["model"] for m in listing["models"]] == ["example"]
    assert listing["models"][0]["published"] == 2 and listing["models"][0]["best_step"] == 100
    assert len(listing["config_errors"]) == 1 and "broken.yaml" in listing["config_errors"][0]

    assert client.get("/api/models/secret").status_code == 403
    page = client.get("/ui/models/secret")
    assert page.status_code == 403 and "may not read" in page.text and 'id="checkpoints"' not in page.text


def test_model_page_escapes_ledger_text(client: TestClient) -> None:
    page = client.get("/ui/models/example")
    assert page.status_code == 200
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; auc too low" in page.text
    assert "<script>alert" not in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"


def test_manifest_is_read_from_the_ledgers_uri_and_unknown_versions_are_404(client: TestClient) -> None:
    manifest = client.get("/api/models/example/versions/all_modes/100/manifest")
    assert manifest.status_code == 200 and manifest.json()["files"][0]["path"] == "saved_model.pb"
    page = client.get("/ui/models/example/versions/all_modes/100")
    assert page.status_code == 200 and "variables/variables.index" in page.text and "2.0 KiB" in page.text

    missing = client.get("/api/models/example/versions/all_modes/999/manifest")
    assert missing.status_code == 404 and "no version '999'" in missing.json()["detail"]
    assert client.get("/api/models/example/versions/all_modes/..%2F..%2Fetc/manifest").status_code == 404
    assert client.get("/api/models/example/versions/..%2F100/100/manifest").status_code == 404
    assert client.get("/api/models/nope").status_code == 404


def ledger_bytes(client: TestClient) -> bytes:
    return client.app.state.ledger_path.read_bytes()


def test_a_manifest_that_is_gone_is_a_clear_502(client: TestClient) -> None:
    before = ledger_bytes(client)
    response = client.get("/api/models/example/versions/all_modes/300/manifest")
    assert ledger_bytes(client) == before  # the page only reads
    assert response.status_code == 502
    assert "cannot read the manifest" in response.json()["detail"] and "/300/" in response.json()["detail"]


def test_an_unknown_metric_is_a_400_naming_the_choices(client: TestClient) -> None:
    before = ledger_bytes(client)
    response = client.get("/api/models/example", params={"metric": "precision"})
    assert ledger_bytes(client) == before
    assert response.status_code == 400 and "['auc', 'loss']" in response.json()["detail"]


def test_the_plugin_registers_page_and_menu_entry_without_loading_fastapi_or_tensorflow() -> None:
    """Every task process loads plugins; the page's app is only built when the api-server serves it."""
    script = (
        "import json, sys\n"
        "from plugins.exportflow_plugin import ExportflowPlugin as P\n"
        "print(json.dumps({'prefix': P.fastapi_apps[0]['url_prefix'], 'view': P.external_views[0],\n"
        "  'loaded': sorted(m for m in ('fastapi', 'tensorflow', 'plugins.ui.app') if m in sys.modules)}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
    )
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["loaded"] == []
    assert found["prefix"] == "/exportflow"
    assert found["view"]["name"] == "Model exports" and found["view"]["href"] == "/exportflow/ui/"
    assert found["view"]["url_route"] == "model-exports" and found["view"]["category"] == "browse"


def test_airflow_does_not_import_the_page_package_as_plugin_modules() -> None:
    """Airflow imports every .py under its plugins folder by file name (``app``, ``chart``, ...), which
    would shadow other modules of those names; plugins/ui/.airflowignore keeps the package out of that."""
    from airflow._shared.module_loading.file_discovery import find_path_from_directory

    found = [Path(p) for p in find_path_from_directory(ROOT / "plugins", ".airflowignore")]
    assert ROOT / "plugins" / "exportflow_plugin.py" in found
    assert [p for p in found if (ROOT / "plugins" / "ui") in p.parents] == []
