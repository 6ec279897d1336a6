"""The Model exports page, live: a real api-server (our plugin mounted by Airflow), a ledger written by a real
pipeline run, and Debian's headless Chromium driven by Selenium through chromedriver.

The page runs on the session's shared deployment (``shared_airflow``), its model ``ui_example`` beside the
other modules' models. Its two DAGs are paused before anything is triggered, so the scheduler leaves the runs
made here queued: the export run is the Airflow run the pipeline's publications are recorded under (the plain
runner writes the same ledger the DAG's tasks write), so the page's run links point at a run that exists.
The model has ``serving.mode: labels``: ``stable`` is promoted twice through ``components.serving.control``
(the promote DAG's own code), and two more export runs exist, a dry run and one marked failed through the
REST API, for the serving panel and its run list.
Screenshots go to ``$EXPORTFLOW_TEST_ARTIFACTS`` (default: pytest's tmp dir).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from components.config import ConfigError, load_config, load_configs_dir
from components.ledger import Ledger
from components.ledger.label_history import LabelMove
from components.ledger.schema import LedgerState
from components.pipeline.options import RunOptions
from components.pipeline.runner import run_pipeline
from tests.support.airflow_live import ADMIN_PASSWORD, ADMIN_USER, LiveAirflow, SharedAirflow
from tests.support.example_pipeline import TrainedModel, example_config_dict, write_config

NAME = "ui_example"  # the model's own name in the shared deployment
DAG_ID = f"exportflow__{NAME}"
PROMOTE_DAG_ID = f"exportflow__{NAME}__promote"
RUN_ID = "manual__exportflow-ui-test"
DRY_RUN_ID = "manual__exportflow-ui-dry-run"
FAILED_RUN_ID = "manual__exportflow-ui-failed"
PROMOTE_RUN_ID = "manual__exportflow-ui-promote"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@dataclasses.dataclass(frozen=True)
class Deployment:
    airflow: LiveAirflow
    configs_dir: Path  # the shared deployment's, holding other modules' models too
    ledger: LedgerState
    moves: tuple[LabelMove, ...]  # the label moves made, oldest first


@pytest.fixture(scope="module")
def deployment(
    shared_airflow: SharedAirflow, trained_model: TrainedModel, tmp_path_factory: pytest.TempPathFactory
) -> Deployment:
    root = tmp_path_factory.mktemp("ui-live")
    serving = {"mode": "labels", "label_wait_seconds": 0}
    data = example_config_dict(trained_model, root / "published", name=NAME, serving=serving)
    # The dag-processor parses the new config while the pipeline runs TF here.
    config = load_config(write_config(data, shared_airflow.configs_dir / f"{NAME}.yaml"))
    run_pipeline(config, RunOptions(run_id=RUN_ID))
    moves = promote_twice(config)
    airflow = shared_airflow.airflow
    for dag_id in (DAG_ID, PROMOTE_DAG_ID):
        airflow.wait_for_dag(dag_id)
        status, body = airflow.request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": True})
        assert status == 200 and body["is_paused"] is True, body  # the scheduler starts none of its runs
    for dag_id, run_id, conf in (
        (DAG_ID, RUN_ID, {}),
        (DAG_ID, DRY_RUN_ID, {"dry_run": True}),
        (DAG_ID, FAILED_RUN_ID, {}),
        (PROMOTE_DAG_ID, PROMOTE_RUN_ID, {"action": "promote", "label": "stable", "version": moves[-1].to_version}),
    ):
        status, body = airflow.request(
            "POST", f"/api/v2/dags/{dag_id}/dagRuns", {"dag_run_id": run_id, "logical_date": None, "conf": conf}
        )
        assert status == 200, body
    status, body = airflow.request("PATCH", f"/api/v2/dags/{DAG_ID}/dagRuns/{FAILED_RUN_ID}", {"state": "failed"})
    assert status == 200 and body["state"] == "failed", body
    return Deployment(airflow, shared_airflow.configs_dir, Ledger(config.destination.uri, config.name).load(), moves)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = os.environ.get("EXPORTFLOW_TEST_ARTIFACTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("ui-artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="exportflow-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1440,1000",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def http(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    """One request that does not follow redirects: status, headers, body."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(urllib.request.Request(url, headers=headers or {}), timeout=30) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


ENDPOINTS = [
    "/exportflow/api/models",
    f"/exportflow/api/models/{NAME}",
    f"/exportflow/api/models/{NAME}?metric=loss",
    f"/exportflow/api/models/{NAME}/serving",
    f"/exportflow/api/models/{NAME}/versions/all_modes/300/manifest",
]
PAGES = [
    "/exportflow/ui/",
    f"/exportflow/ui/models/{NAME}",
    f"/exportflow/ui/models/{NAME}/versions/all_modes/300",
    "/exportflow/ui/icon.svg",
]


def promote_twice(config: Any) -> tuple[LabelMove, ...]:
    """``stable`` to the oldest published version, then to the newest (recorded as the promote DAG run)."""
    from components.serving import control

    versions = control.published_versions(control.target_for(config), config.name)
    assert len(versions) >= 2, versions  # a rollback needs an earlier version
    first = control.promote(config, versions[-1], "stable", who="alice", reason="first stable")
    second = control.promote(
        config, versions[0], "stable", who="bob", run_id=PROMOTE_RUN_ID, reason="better <auc> & loss"
    )
    assert first is not None and second is not None
    return first, second


def test_no_data_without_a_login(deployment: Deployment) -> None:
    base = deployment.airflow.base_url
    for path in ENDPOINTS:
        status, _, body = http(base + path)
        assert status == 401, (path, status)
        assert json.loads(body) == {"detail": "Not authenticated"}
        status, _, body = http(base + path, {"Authorization": "Bearer not-a-jwt"})
        assert status == 403 and "checkpoints" not in body, (path, status)
        status, _, body = http(base + path, {"Cookie": "_token=not-a-jwt"})
        assert status in (401, 403) and "checkpoints" not in body, (path, status)
    for path in PAGES:
        status, headers, body = http(base + path)
        assert status == 303, (path, status)
        login, _, query = headers["location"].partition("?")
        assert login == "/auth/login" and parse_qs(query)["next"] == [base + path]
        assert "checkpoints" not in body and "published" not in body


def test_json_endpoints_match_the_ledger(deployment: Deployment) -> None:
    airflow, ledger = deployment.airflow, deployment.ledger
    status, listing = airflow.request("GET", "/exportflow/api/models")
    assert status == 200
    configured = load_configs_dir(deployment.configs_dir).values()
    assert not any(isinstance(c, ConfigError) for c in configured) and listing["config_errors"] == []
    models = {m["model"]: m for m in listing["models"]}
    assert sorted(models) == sorted(c.name for c in configured)  # every configured model, ours among them
    summary = models[NAME]
    assert summary["model"] == NAME and summary["dag_id"] == DAG_ID
    assert summary["checkpoints"] == len(ledger.checkpoints) == 4
    assert summary["published"] == len(ledger.published_steps())

    status, history = airflow.request("GET", f"/exportflow/api/models/{NAME}")
    assert status == 200
    assert [c["step"] for c in history["checkpoints"]] == sorted(
        (r.step for r in ledger.checkpoints.values()), reverse=True
    )
    for row in history["checkpoints"]:
        record = ledger.record(row["step"])
        assert row["metrics"] == record.evaluation.metrics
        assert row["blessed"] == record.evaluation.blessed
        assert [r["reason"] for r in row["reasons"]] == [r.reason for r in record.evaluation.reasons]
        assert [e["strategy"] for e in row["exports"]] == sorted(record.exports)
        for publication in row["publications"]:
            pushed = record.publications[publication["strategy"]]
            assert (publication["version"], publication["uri"]) == (pushed.version, pushed.uri)
            assert publication["bytes_total"] == pushed.bytes_total > 0
            assert publication["run_id"] == RUN_ID and publication["published_at"] == pushed.published_at
    assert len(history["chart"]["points"]) == sum(1 for r in ledger.checkpoints.values() if r.evaluation)
    assert (
        history["best_by_strategy"]
        == {"all_modes": ledger.best["all_modes"].step}
        == {"all_modes": history["best_step"]}
    )

    status, manifest = airflow.request("GET", f"/exportflow/api/models/{NAME}/versions/all_modes/300/manifest")
    pushed = ledger.record(300).publications["all_modes"]
    assert status == 200 and manifest == json.loads(Path(pushed.manifest_uri).read_text())


def test_page_in_headless_chromium(deployment: Deployment, browser: Any, artifacts: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    base, ledger = deployment.airflow.base_url, deployment.ledger
    wait = WebDriverWait(browser, 60)

    # Not logged in: the page sends the browser to Airflow's login form, which comes back after login.
    browser.get(f"{base}/exportflow/ui/models/{NAME}")
    wait.until(ec.presence_of_element_located((By.NAME, "username"))).send_keys(ADMIN_USER)
    assert "/auth/login" in browser.current_url and not browser.find_elements(By.ID, "checkpoints")
    browser.find_element(By.NAME, "password").send_keys(ADMIN_PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(ec.presence_of_element_located((By.ID, "checkpoints")))
    assert browser.current_url == f"{base}/exportflow/ui/models/{NAME}"
    save_full_page(browser, artifacts / "model-exports-page.png")

    assert_table_matches_ledger(browser, ledger)
    assert_chart_matches_ledger(browser, ledger)

    # The trigger link opens the DAG (whose Trigger button shows the Params form).
    assert browser.find_element(By.ID, "trigger-link").get_attribute("href") == f"{base}/dags/{DAG_ID}"

    # A version's manifest view lists the files its manifest records.
    browser.find_element(By.CSS_SELECTOR, "#checkpoints tr[data-step='300'] td.version a").click()
    wait.until(ec.presence_of_element_located((By.ID, "manifest-files")))
    manifest = json.loads(Path(ledger.record(300).publications["all_modes"].manifest_uri).read_text())
    paths = [td.text for td in browser.find_elements(By.CSS_SELECTOR, "#manifest-files tbody td:first-child")]
    assert paths == [f["path"] for f in manifest["files"]]
    save_full_page(browser, artifacts / "model-exports-manifest.png")


def test_serving_panel_in_headless_chromium(deployment: Deployment, browser: Any, artifacts: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    base = deployment.airflow.base_url
    first, second = deployment.moves
    wait = WebDriverWait(browser, 60)
    browser.get(f"{base}/exportflow/ui/models/{NAME}")
    if browser.find_elements(By.NAME, "username"):  # when run on its own, log in first
        browser.find_element(By.NAME, "username").send_keys(ADMIN_USER)
        browser.find_element(By.NAME, "password").send_keys(ADMIN_PASSWORD)
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    panel = wait.until(ec.presence_of_element_located((By.ID, "serving")))
    assert panel.get_attribute("data-mode") == "labels"
    save_full_page(browser, artifacts / "model-exports-serving.png")

    # What is serving: the label and its version, the versions the config loads.
    rows = browser.find_elements(By.CSS_SELECTOR, "#serving table.labels tbody tr[data-label]")
    assert [(r.get_attribute("data-label"), r.find_element(By.CSS_SELECTOR, "td.version").text) for r in rows] == [
        ("stable", str(second.to_version))
    ]
    loaded = browser.find_element(By.CSS_SELECTOR, "#serving dd.loaded").text
    assert loaded == str(second.to_version)  # the old version is unlisted once the label moved

    # Label history, newest first: from, to, who, run, reason (escaped text, not markup).
    history = browser.find_elements(By.CSS_SELECTOR, "#serving table.label-history tbody tr")
    cells = [
        [r.find_element(By.CSS_SELECTOR, f"td.{c}").text for c in ("label", "action", "from", "to", "who", "run", "reason")]
        for r in history
    ]
    assert cells == [
        ["stable", "promote", str(first.to_version), str(second.to_version), "bob", PROMOTE_RUN_ID, "better <auc> & loss"],
        ["stable", "promote", "—", str(first.to_version), "alice", "—", "first stable"],
    ]
    run_link = history[0].find_element(By.CSS_SELECTOR, "td.run a").get_attribute("href")
    assert run_link == f"{base}/dags/{PROMOTE_DAG_ID}/runs/{PROMOTE_RUN_ID}"

    # Roll back and promote are links to the promote DAG, carrying the form's values.
    rollback = browser.find_element(By.CSS_SELECTOR, "#serving a.rollback-link")
    assert rollback.text == f"Roll back to {first.to_version}…"
    target = urlsplit(rollback.get_attribute("href"))
    assert f"{target.scheme}://{target.netloc}{target.path}" == f"{base}/dags/{PROMOTE_DAG_ID}"
    assert json.loads(parse_qs(target.query)["conf"][0]) == {
        "action": "rollback", "label": "stable", "servable": NAME, "version": first.to_version,
        "reason": f"roll stable back from {second.to_version} to {first.to_version}",
    }
    promote = browser.find_element(By.CSS_SELECTOR, "#serving a.promote-link[data-label='canary']")
    conf = json.loads(parse_qs(urlsplit(promote.get_attribute("href")).query)["conf"][0])
    assert (conf["action"], conf["label"], conf["version"]) == ("promote", "canary", second.to_version)

    # The run list shows the dry run and the failed run of the export DAG, and the promote run.
    runs = {
        r.get_attribute("data-run-id"): (r.get_attribute("data-state"), r.get_attribute("data-dry-run"))
        for r in browser.find_elements(By.CSS_SELECTOR, "#runs tbody tr[data-run-id]")
    }
    assert runs[DRY_RUN_ID] == ("queued", "true")
    assert runs[FAILED_RUN_ID] == ("failed", "false")
    assert runs[PROMOTE_RUN_ID][1] == "false" and runs[RUN_ID] == ("queued", "false")
    dry = browser.find_element(By.CSS_SELECTOR, f"#runs tr[data-run-id='{DRY_RUN_ID}']")
    assert dry.find_element(By.CSS_SELECTOR, ".dry-run").text == "dry run"

    # Following the rollback link opens the promote DAG's page in the Airflow UI (whose Trigger shows the form).
    rollback.click()
    wait.until(lambda driver: urlsplit(driver.current_url).path == f"/dags/{PROMOTE_DAG_ID}")
    status, body = deployment.airflow.request("GET", f"/exportflow/api/models/{NAME}/serving")
    assert status == 200 and [m["to_version"] for m in body["servables"][0]["history"]] == [
        second.to_version, first.to_version,
    ]  # nothing moved by looking or by opening the link


def test_menu_entry_opens_the_page_inside_the_airflow_ui(
    deployment: Deployment, browser: Any, artifacts: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    base, ledger = deployment.airflow.base_url, deployment.ledger
    wait = WebDriverWait(browser, 60)
    browser.get(f"{base}/")
    if browser.find_elements(By.NAME, "username"):  # when run on its own, log in first
        browser.find_element(By.NAME, "username").send_keys(ADMIN_USER)
        browser.find_element(By.NAME, "password").send_keys(ADMIN_PASSWORD)
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(ec.element_to_be_clickable((By.XPATH, "//button[normalize-space()='Browse']"))).click()
    wait.until(
        ec.element_to_be_clickable((By.XPATH, "//a[@role='menuitem'][normalize-space()='Model exports']"))
    ).click()
    frame = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "iframe[title='Model exports']")))
    # The UI mirrors the frame's location into its own: /plugin/model-exports[/exportflow/ui/...]
    assert browser.current_url.startswith(f"{base}/plugin/model-exports")

    # The page in Airflow's frame is served with the login the UI holds (its cookie), nothing else.
    browser.switch_to.frame(frame)
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, f"#models tr[data-model='{NAME}'] a"))).click()
    wait.until(ec.presence_of_element_located((By.ID, "checkpoints")))
    assert_table_matches_ledger(browser, ledger)
    browser.switch_to.default_content()
    browser.save_screenshot(str(artifacts / "model-exports-in-airflow.png"))

    # A run link leaves the frame and opens the run in the whole window.
    browser.switch_to.frame(browser.find_element(By.CSS_SELECTOR, "iframe[title='Model exports']"))
    browser.find_element(By.CSS_SELECTOR, "#checkpoints td.run a").click()
    browser.switch_to.default_content()
    run_page = f"{base}/dags/{DAG_ID}/runs/{quote(RUN_ID, safe='')}"
    wait.until(lambda driver: driver.current_url == run_page)
    assert not browser.find_elements(By.CSS_SELECTOR, "iframe[title='Model exports']")
    status, run = deployment.airflow.request("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{RUN_ID}")
    assert status == 200 and run["dag_run_id"] == RUN_ID


def save_full_page(browser: Any, path: Path) -> None:
    """A screenshot of the whole page, not just the window (headless Chromium's DevTools protocol)."""
    height = browser.execute_script("return document.documentElement.scrollHeight")
    metrics = {"width": 1440, "height": height, "deviceScaleFactor": 1, "mobile": False}
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    try:
        browser.save_screenshot(str(path))
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def assert_table_matches_ledger(browser: Any, ledger: LedgerState) -> None:
    from selenium.webdriver.common.by import By

    rows = browser.find_elements(By.CSS_SELECTOR, "#checkpoints tbody tr")
    assert [int(r.get_attribute("data-step")) for r in rows] == sorted(
        (r.step for r in ledger.checkpoints.values()), reverse=True
    )
    for row in rows:
        record = ledger.record(int(row.get_attribute("data-step")))
        evaluation = record.evaluation
        for name, value in evaluation.metrics.items():
            cell = row.find_element(By.CSS_SELECTOR, f"td.metric[data-metric='{name}']")
            assert cell.text == f"{value:.4g}"
        badge = row.find_element(By.CSS_SELECTOR, "td.blessing .badge").text
        assert badge == ("blessed" if evaluation.blessed else "not blessed")
        reasons = [li.text[2:] for li in row.find_elements(By.CSS_SELECTOR, "td.blessing li")]
        assert reasons == [r.reason for r in evaluation.reasons]
        strategies = [d.text for d in row.find_elements(By.CSS_SELECTOR, "td.strategies div")]
        assert strategies == sorted(record.exports)
        versions = [a.text for a in row.find_elements(By.CSS_SELECTOR, "td.version a")]
        assert versions == [p.version for _, p in sorted(record.publications.items())]
        uris = [c.text for c in row.find_elements(By.CSS_SELECTOR, "td.published-uri code")]
        assert uris == [p.uri for _, p in sorted(record.publications.items())]
        for link in row.find_elements(By.CSS_SELECTOR, "td.run a"):
            assert link.text == RUN_ID
            assert link.get_attribute("href").endswith(f"/dags/{DAG_ID}/runs/{quote(RUN_ID, safe='')}")
        assert row.get_attribute("data-status") == (
            "published"
            if record.publications
            else "exported"
            if record.exports
            else "blessed"
            if evaluation.blessed
            else "not blessed"
        )


def assert_chart_matches_ledger(browser: Any, ledger: LedgerState) -> None:
    from selenium.webdriver.common.by import By

    evaluated = sorted(r.step for r in ledger.checkpoints.values() if r.evaluation)
    points = browser.find_elements(By.CSS_SELECTOR, "#chart g.point")
    assert [int(p.get_attribute("data-step")) for p in points] == evaluated
    published = [
        int(p.get_attribute("data-step"))
        for p in browser.find_elements(By.CSS_SELECTOR, "#chart g.point.published")
    ]
    assert published == sorted(ledger.published_steps())
    # The chart shows the ranking metric by default: the example has no change threshold, so "best" is by loss.
    for point in points:
        step = int(point.get_attribute("data-step"))
        assert float(point.get_attribute("data-value")) == pytest.approx(
            ledger.record(step).evaluation.metrics["loss"]
        )
    (best,) = browser.find_elements(By.CSS_SELECTOR, "#chart g.point.best")
    best_row = browser.find_element(By.CSS_SELECTOR, "#checkpoints tr.best")
    assert best.get_attribute("data-step") == best_row.get_attribute("data-step")
    assert (
        int(best.get_attribute("data-step")) == ledger.best["all_modes"].step
    )  # as the publish stage keeps it
