"""A Keras 3 model's DAG through Airflow (``dags test``): Airflow and the operators in the Estimator
runtime, every stage of the model in the Keras runtime's interpreter (``airflow.runtime:
external_python``, its default for framework: keras)."""

from __future__ import annotations

from pathlib import Path

import yaml

from components.discovery import lease
from components.ledger import Ledger
from tests.support.airflow_live import airflow_home_from
from tests.support.dag_test_run import airflow_env, run_dag_test
from tests.support.keras_env import keras_config_dict

DAG_ID = "exportflow__example_keras"


def test_a_keras_model_publishes_through_airflow(keras_trained, migrated_airflow_db, tmp_path) -> None:
    configs = tmp_path / "configs"
    configs.mkdir()
    data = keras_config_dict(keras_trained, tmp_path / "published", strategies=[{"name": "latest", "kind": "latest"}])
    (configs / "example_keras.yaml").write_text(yaml.safe_dump(data))
    home = airflow_home_from(migrated_airflow_db, tmp_path / "airflow")

    summary = run_dag_test(airflow_env(home, configs), DAG_ID, {"checkpoint": 2})

    assert summary["error"] is None and summary["state"] == "success", summary["output"][-4000:]
    assert summary["tasks"]["export[0]"]["label"] == "latest @ step 2"
    output = summary["output"]
    assert f"running stage export in {keras_trained.python}" in output  # the Keras runtime ran it
    version = tmp_path / "published" / "example_keras" / "2"
    assert (version / "saved_model.pb").exists() and (version / "assets.extra" / "tf_serving_warmup_requests").exists()
    state = Ledger(str(tmp_path / "published"), "example_keras").load()
    assert set(state.record(2).publications) == {"latest"}
    assert state.record(2).evaluation.metrics["click_auc"] > 0.6
    assert lease.count_leases(str(Path(keras_trained.model_dir) / ".exportflow-leases")) == 0
