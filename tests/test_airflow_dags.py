"""The export DAGs on a real Airflow: parsing, the form, and runs through ``dag.test()``.

Every run goes through Airflow's own machinery (DagBag, params validation, mapped task expansion,
XCom, the task runner) in a fresh interpreter with its own SQLite metadata DB.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from components.ledger import Ledger
from tests.support.airflow_live import airflow_home_from
from tests.support.dag_test_run import airflow_env, parse_dags, run_dag_test
from tests.support.example_pipeline import example_config_dict, write_configs

ROOT = Path(__file__).resolve().parent.parent
DAG_ID = "exportflow__example"


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory: pytest.TempPathFactory, migrated_airflow_db: Path) -> Path:
    return airflow_home_from(migrated_airflow_db, tmp_path_factory.mktemp("airflow"))


def published(destination: Path, model: str = "example") -> list[str]:
    folder = destination / model
    return sorted((p.name for p in folder.iterdir() if p.name.isdigit()), key=int) if folder.exists() else []


# --- parsing ------------------------------------------------------------------------------------


def test_one_dag_per_config_and_broken_configs_become_import_errors(airflow_home, trained_model, tmp_path) -> None:
    def config(name: str, **overrides) -> dict:
        return example_config_dict(trained_model, tmp_path / "published", name=name, **overrides)

    configs = {
        "alpha": config("alpha", airflow={"schedule": "0 */6 * * *", "tags": ["team-a"], "owner": "ml-platform"}),
        "beta": config("beta", airflow={"schedule": "asset", "pool": "tf_pool", "max_active_tf_tasks": 2}),
        "gamma": config("gamma", airflow={"schedule": "@daily", "timeouts": {"export": 45}}),
        "delta": config("delta"),
        "broken_field": config("broken", merge={"evaluation": {"steps": "ten"}}),
        "broken_cron": config("cronless", airflow={"schedule": "every morning"}),
    }
    parsed = parse_dags(airflow_home, write_configs(tmp_path / "configs", configs))

    assert sorted(parsed["dags"]) == [f"exportflow__{n}" for n in ("alpha", "beta", "delta", "gamma")]
    (error,) = parsed["errors"].values()
    assert str(tmp_path / "configs" / "broken_field.yaml") + ": evaluation.steps: expected an integer, got 'ten'" in error
    assert str(tmp_path / "configs" / "broken_cron.yaml") + ": airflow.schedule: 'every morning' is not a cron" in error
    assert "2 exportflow model config(s) are invalid" in error
    assert parsed["heavy"] == []

    alpha, beta, gamma, delta = (parsed["dags"][f"exportflow__{n}"] for n in ("alpha", "beta", "gamma", "delta"))
    assert alpha["schedule"] == "0 */6 * * *" and gamma["schedule"] == "@daily" and delta["schedule"] == "None"
    assert "Asset" in beta["schedule"] or "asset" in beta["schedule"].lower()
    assert alpha["tags"] == ["exportflow", "team-a"]
    assert all(t["owner"] == "ml-platform" for t in alpha["tasks"].values())
    assert "```yaml" in alpha["doc_md"] and "0 */6 * * *" in alpha["doc_md"]
    assert alpha["max_active_runs"] == 1
    for task in ("evaluate", "export", "warmup"):
        assert beta["tasks"][task]["max_active_tis_per_dagrun"] == 2 and beta["tasks"][task]["pool"] == "tf_pool"
        assert alpha["tasks"][task]["max_active_tis_per_dagrun"] == 1
    assert gamma["tasks"]["export"]["timeout"] == 45 * 60
    assert alpha["tasks"]["discover"]["timeout"] == 10 * 60
    form = alpha["params"]
    assert set(form) == {"checkpoint", "strategies", "force", "dry_run", "max_checkpoints"}
    assert all(field.get("title") and field.get("description") for field in form.values())
    assert form["strategies"]["items"]["enum"] == ["all_modes"]


# --- runs -----------------------------------------------------------------------------------------


@pytest.fixture
def example_env(airflow_home, trained_model, tmp_path):
    def make(**overrides):
        destination = tmp_path / "published"
        config = example_config_dict(trained_model, destination, **overrides)
        configs = write_configs(tmp_path / "configs", {"example": config})
        return airflow_env(airflow_home, configs), destination

    return make


def test_manual_run_with_form_choices_publishes_the_chosen_checkpoint(example_env) -> None:
    env, destination = example_env()
    summary = run_dag_test(env, DAG_ID, {"checkpoint": 200, "strategies": ["all_modes"]})
    assert summary["error"] is None and summary["state"] == "success", summary["output"][-3000:]
    assert published(destination) == ["200"]
    assert summary["tasks"]["export[0]"]["label"] == "all_modes @ step 200"
    state = Ledger(str(destination), "example").load()
    assert sorted(int(s) for s in state.checkpoints) == [200]
    assert set(state.record(200).publications) == {"all_modes"}


def test_dry_run_does_everything_but_publish(example_env) -> None:
    env, destination = example_env()
    summary = run_dag_test(env, DAG_ID, {"checkpoint": 300, "dry_run": True})
    assert summary["state"] == "success", summary["output"][-3000:]
    assert published(destination) == []
    record = Ledger(str(destination), "example").load().record(300)
    assert record.evaluation is not None and "all_modes" in record.exports and record.publications == {}


@pytest.mark.parametrize(
    "conf",
    [{"checkpoint": "latest"}, {"strategies": ["not_configured"]}, {"max_checkpoints": 0}, {"force": "yes"}],
    ids=["checkpoint-not-int", "unknown-strategy", "zero-cap", "force-not-bool"],
)
def test_invalid_form_values_are_refused_before_any_task_runs(example_env, conf) -> None:
    env, destination = example_env()
    summary = run_dag_test(env, DAG_ID, conf)
    assert summary["state"] is None
    assert "ParamValidationError" in summary["error"] or "Invalid input" in summary["error"]
    assert not destination.exists()


def test_trigger_conf_cannot_name_code_or_a_destination(example_env, tmp_path) -> None:
    env, destination = example_env()
    elsewhere = tmp_path / "elsewhere"
    summary = run_dag_test(env, DAG_ID, {"model_fn": "os:system", "destination": str(elsewhere)})
    assert summary["state"] == "failed"
    assert summary["tasks"]["discover[-1]"]["state"] == "failed"
    assert "trigger conf has fields ['destination', 'model_fn'] that this DAG does not accept" in summary["output"]
    assert not elsewhere.exists() and published(destination) == []


def test_scheduled_dag_runs_on_its_cron(example_env) -> None:
    env, destination = example_env(airflow={"schedule": "0 */6 * * *"}, discovery={"policy": "latest"})
    summary = run_dag_test(env, DAG_ID, {})
    assert summary["state"] == "success", summary["output"][-3000:]
    assert published(destination) == ["300"]  # policy latest


def test_external_python_runtime_runs_stages_in_a_separate_interpreter(example_env) -> None:
    env, destination = example_env(airflow={"runtime": "external_python", "python": sys.executable})
    summary = run_dag_test(env, DAG_ID, {"checkpoint": 300})
    assert summary["state"] == "success", summary["output"][-3000:]
    assert published(destination) == ["300"]
    for stage in ("discover", "evaluate", "export", "warmup", "publish"):
        assert f"running stage {stage} in {sys.executable}" in summary["output"]
