"""The promote DAG in real Airflow: parsed only for models with serving labels, its form, a promotion
run end to end with ``dag.test()``, and a bad version refused before anything moves."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.ledger.label_history import LabelHistory
from components.publish.executor import publish
from components.serving import config_file, control, model_config
from components.storage import storage_for
from tests.support.airflow_live import airflow_home_from
from tests.support.dag_test_run import airflow_env, parse_dags, run_dag_test
from tests.support.example_pipeline import example_config_dict, write_configs
from tests.support.publishing import make_export, params_for
from tests.support.serving import publish_versions, serving_config, serving_config_dict

PROMOTE = "exportflow__example__promote"


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory: pytest.TempPathFactory, migrated_airflow_db: Path) -> Path:
    return airflow_home_from(migrated_airflow_db, tmp_path_factory.mktemp("airflow"))


def test_promote_dag_only_for_labels_models_with_a_form_of_configured_choices(airflow_home: Path, tmp_path: Path) -> None:
    configs = write_configs(tmp_path / "configs", {
        "example": serving_config_dict(tmp_path, publish_label="shadow", approval=True),
        "plain": example_config_dict(tmp_path / "model", tmp_path / "published", name="plain"),  # serving: latest
    })
    parsed = parse_dags(airflow_home, configs)
    assert parsed["errors"] == {} and parsed["heavy"] == []
    assert sorted(d for d in parsed["dags"] if d.endswith("__promote")) == [PROMOTE]
    dag = parsed["dags"][PROMOTE]
    assert set(dag["tasks"]) == {"check", "approve", "no_approval_needed", "move_label"}
    params = dag["params"]
    assert params["label"]["examples"] == ["canary", "shadow", "stable"]
    assert params["servable"]["enum"] == ["example"]
    assert params["action"]["enum"] == ["promote", "rollback", "unlabel"]
    assert params["version"]["type"] == ["null", "integer"]


def test_the_form_proposes_exactly_the_labels_control_accepts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One list: control's. What the form proposes passes control's check with no label in the server
    config yet; a misspelt one is refused by control, a malformed one by the form (no I/O at parse)."""
    from airflow.sdk.definitions.param import ParamValidationError

    from components.errors import ExportflowError
    from components.serving import control
    from plugins.promote_dag import build_params

    config = serving_config(tmp_path, publish_label="shadow")
    publish_versions(config, tmp_path, 100)
    target = control.target_for(config)
    label = build_params(config)["label"]
    assert label.schema["examples"] == control.promotable_labels(config) == ["canary", "shadow", "stable"]
    for proposed in label.schema["examples"]:
        label.resolve(proposed)
        control.check_known_label(config, target, "example", proposed)
    with pytest.raises(ExportflowError, match="'stabel' is not a label of servable 'example'"):
        control.check_known_label(config, target, "example", "stabel")
    with pytest.raises(ParamValidationError):
        label.resolve("Stable!")  # not a label at all: the form refuses it before any task runs

    monkeypatch.setattr(control, "STANDARD_LABELS", ("stable", "canary", "blue"))  # control's list changes ...
    assert build_params(config)["label"].schema["examples"] == ["blue", "canary", "shadow", "stable"]  # ... so does the form


def test_a_promotion_run_moves_the_label_and_records_the_run(airflow_home: Path, tmp_path: Path) -> None:
    config = serving_config(tmp_path)
    publish_versions(config, tmp_path, 100, 200)
    configs = write_configs(tmp_path / "configs", {"example": serving_config_dict(tmp_path, approval=True)})
    env = airflow_env(airflow_home, configs)

    # canary needs no approval (approval guards stable only)
    summary = run_dag_test(env, PROMOTE, {"action": "promote", "version": 200, "label": "canary", "reason": "try it"})
    assert summary["state"] == "success", summary["output"][-3000:]
    states = {task: info["state"] for task, info in summary["tasks"].items()}
    assert states == {
        "check[-1]": "success", "no_approval_needed[-1]": "success", "approve[-1]": "skipped", "move_label[-1]": "success"
    }
    read = config_file.read(storage_for(str(tmp_path)), str(tmp_path / "published" / "models.config"))
    assert model_config.find(read.config, "example").labels == {"canary": 200}
    (move,) = LabelHistory(storage_for(str(tmp_path)), str(tmp_path / "published"), "example").load().moves
    assert (move.to_version, move.run_id, move.reason) == (200, summary["run_id"], "try it")


def test_an_unpublished_version_fails_the_check_and_moves_nothing(airflow_home: Path, tmp_path: Path) -> None:
    config = serving_config(tmp_path)
    publish_versions(config, tmp_path, 100)
    configs = write_configs(tmp_path / "configs", {"example": serving_config_dict(tmp_path)})
    summary = run_dag_test(airflow_env(airflow_home, configs), PROMOTE, {"action": "promote", "version": 7, "label": "stable"})
    assert summary["state"] == "failed"
    assert summary["tasks"]["check[-1]"]["state"] == "failed"
    assert summary["tasks"]["move_label[-1]"]["state"] != "success"
    assert "version 7 of 'example' is not published" in summary["output"]
    assert not (tmp_path / "published" / "models.config").exists()


def test_trigger_conf_cannot_name_anything_but_the_form_fields(airflow_home: Path, tmp_path: Path) -> None:
    config = serving_config(tmp_path)
    publish_versions(config, tmp_path, 100)
    configs = write_configs(tmp_path / "configs", {"example": serving_config_dict(tmp_path)})
    conf = {"action": "promote", "version": 100, "label": "canary", "config_path": "/tmp/elsewhere.config"}
    summary = run_dag_test(airflow_env(airflow_home, configs), PROMOTE, conf)
    assert summary["tasks"]["check[-1]"]["state"] == "failed"
    assert (
        "trigger conf has fields ['config_path'] this DAG does not accept; "
        "allowed: ['action', 'label', 'reason', 'servable', 'version']"
    ) in summary["output"]
    assert not (tmp_path / "published" / "models.config").exists()


def test_promoting_a_multi_graph_set_fails_the_check_naming_the_model_and_what_to_do(
    airflow_home: Path, tmp_path: Path
) -> None:
    config = serving_config(tmp_path)
    publish(params_for(config), make_export(tmp_path / "exports", step=100, graphs=("entry", "ps_0")))
    configs = write_configs(tmp_path / "configs", {"example": serving_config_dict(tmp_path)})
    summary = run_dag_test(airflow_env(airflow_home, configs), PROMOTE, {"action": "promote", "version": 100, "label": "canary"})
    assert summary["tasks"]["check[-1]"]["state"] == "failed"
    assert summary["tasks"]["move_label[-1]"]["state"] != "success"
    assert "model 'example': version 100 of 'example' is a multi-graph set (graphs ['entry', 'ps_0'])" in summary["output"]
    assert "Serve a set with serving.mode: latest" in summary["output"]
    assert not (tmp_path / "published" / "models.config").exists()


def test_a_misspelt_label_fails_the_check_before_any_approval(airflow_home: Path, tmp_path: Path) -> None:
    """The form accepts any well-formed label (a servable's own labels are known only at run time), so the
    check refuses one control would refuse, before a person is asked to approve it."""
    config = serving_config(tmp_path)
    publish_versions(config, tmp_path, 100)
    configs = write_configs(tmp_path / "configs", {"example": serving_config_dict(tmp_path, approval=True)})
    summary = run_dag_test(airflow_env(airflow_home, configs), PROMOTE, {"action": "promote", "version": 100, "label": "stabel"})
    assert summary["tasks"]["check[-1]"]["state"] == "failed"
    assert summary["tasks"]["approve[-1]"]["state"] != "success"
    assert "label 'stabel' is not a label of servable 'example' (known: canary, stable)" in summary["output"]
    assert not (tmp_path / "published" / "models.config").exists()


def test_an_unlabel_run_removes_the_label_and_a_missing_label_fails_the_check(airflow_home: Path, tmp_path: Path) -> None:
    config = serving_config(tmp_path)
    publish_versions(config, tmp_path, 100, 200)
    control.promote(config, 100, "stable", who="alice")
    control.promote(config, 200, "canary", who="alice")
    configs = write_configs(tmp_path / "configs", {"example": serving_config_dict(tmp_path, approval=True)})
    env = airflow_env(airflow_home, configs)

    missing = run_dag_test(env, PROMOTE, {"action": "unlabel", "label": "shadow"})
    assert missing["tasks"]["check[-1]"]["state"] == "failed"
    assert "servable 'example' has no label 'shadow'; its labels: ['canary', 'stable']" in missing["output"]

    summary = run_dag_test(env, PROMOTE, {"action": "unlabel", "label": "canary", "reason": "canary over"})
    assert summary["state"] == "success", summary["output"][-3000:]
    assert summary["tasks"]["approve[-1]"]["state"] == "skipped"  # approval guards stable only
    read = config_file.read(storage_for(str(tmp_path)), str(tmp_path / "published" / "models.config"))
    entry = model_config.find(read.config, "example")
    assert entry.labels == {"stable": 100} and entry.versions == (100,)
    moves = LabelHistory(storage_for(str(tmp_path)), str(tmp_path / "published"), "example").load().moves
    assert (moves[-1].action, moves[-1].from_version, moves[-1].to_version, moves[-1].run_id, moves[-1].reason) == (
        "remove", 200, None, summary["run_id"], "canary over"
    )
