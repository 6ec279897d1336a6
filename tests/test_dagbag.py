"""Parse the real ``dags/`` folder with Airflow's DagBag in a fresh interpreter."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.example_pipeline import TrainedModel, example_config_dict, write_configs

ROOT = Path(__file__).resolve().parent.parent

PARSE = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tensorflow_estimator', 'keras')
               or m.startswith('google.cloud.storage'))
dags = {d: {'tasks': sorted(t.task_id for t in bag.dags[d].tasks), 'params': sorted(bag.dags[d].params)}
        for d in bag.dag_ids}
print(json.dumps({'dags': dags, 'errors': {k: str(v) for k, v in bag.import_errors.items()}, 'heavy': heavy}))
"""


def parse_dags(tmp_path: Path, configs: Path) -> dict:
    env = dict(os.environ)
    env.update(
        AIRFLOW_HOME=str(tmp_path / "airflow"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        EXPORTFLOW_CONFIGS_DIR=str(configs),
    )
    result = subprocess.run(
        [sys.executable, "-c", PARSE, str(ROOT / "dags")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_dags_folder_parses_one_dag_per_config_without_tensorflow(tmp_path: Path) -> None:
    model = TrainedModel(tmp_path / "model", tmp_path / "data", ())
    configs = write_configs(
        tmp_path / "configs",
        {name: example_config_dict(model, tmp_path / "published", name=name) for name in ("alpha", "beta")},
    )
    parsed = parse_dags(tmp_path, configs)
    assert parsed["errors"] == {}
    assert sorted(parsed["dags"]) == ["exportflow__alpha", "exportflow__beta"]
    assert parsed["dags"]["exportflow__alpha"]["tasks"] == sorted(
        ["discover", "evaluate", "export", "warmup", "publish", "report"]
    )
    assert parsed["dags"]["exportflow__alpha"]["params"] == sorted(
        ["checkpoint", "strategies", "force", "dry_run", "max_checkpoints"]
    )
    assert parsed["heavy"] == []


def test_shipped_default_configs_parse(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "dags" / "configs", tmp_path / "configs")
    parsed = parse_dags(tmp_path, tmp_path / "configs")
    assert parsed["errors"] == {}
    assert "exportflow__example" in parsed["dags"]
