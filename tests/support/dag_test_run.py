"""Run one DAG with ``dag.test()`` in this (fresh) interpreter and print a JSON summary.

Used by tests through ``run_dag_test`` below (and ``parse_dags``, a DagBag parse on its own), so each run gets a clean ``sys.modules`` and its own
AIRFLOW_HOME: ``python tests/support/dag_test_run.py <dags folder> <dag id> <conf json>``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def airflow_env(home: Path, configs_dir: Path, **extra: str) -> dict[str, str]:
    from components.airflow_env import embedded_airflow_env

    return embedded_airflow_env(home, configs_dir, **extra)


def migrate(env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True)


PARSE = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
def describe(dag):
    tasks = {t.task_id: {"max_active_tis_per_dagrun": t.max_active_tis_per_dagrun, "pool": t.pool,
                         "timeout": t.execution_timeout.total_seconds() if t.execution_timeout else None,
                         "retries": t.retries, "owner": t.owner} for t in dag.tasks}
    params = {k: {**dag.params.get_param(k).schema, "description": dag.params.get_param(k).description} for k in dag.params}
    return {"schedule": str(dag.schedule), "tags": sorted(dag.tags), "doc_md": dag.doc_md,
            "max_active_runs": dag.max_active_runs, "tasks": tasks, "params": params}
heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))
print(json.dumps({"dags": {d: describe(bag.dags[d]) for d in bag.dag_ids},
                  "errors": {k: str(v) for k, v in bag.import_errors.items()}, "heavy": heavy}))
"""


def parse_dags(home: Path, configs: Path) -> dict[str, Any]:
    """Our dags folder parsed by a DagBag in a fresh interpreter: each DAG's schedule, tags, tasks and form,
    the import errors, and any TensorFlow or Keras module the parse loaded."""
    result = subprocess.run(
        [sys.executable, "-c", PARSE, str(ROOT / "dags")],
        env=airflow_env(home, configs),
        capture_output=True,
        text=True,
        check=True,
        stdin=subprocess.DEVNULL,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_dag_test(env: dict[str, str], dag_id: str, conf: dict[str, Any] | None = None) -> dict[str, Any]:
    """The run's state, task states by (task_id, map_index), rendered map indexes and any error."""
    result = subprocess.run(
        [sys.executable, __file__, str(ROOT / "dags"), dag_id, json.dumps(conf or {})],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
        check=False,  # the summary line says what happened; a crash is reported below
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("{\"summary\"")]
    if not lines:
        raise RuntimeError(f"dag test of {dag_id} printed no summary (exit {result.returncode}):\n{result.stderr[-4000:]}")
    summary = json.loads(lines[-1])["summary"]
    summary["output"] = result.stdout + result.stderr
    return summary


def _main() -> None:
    from airflow.dag_processing.dagbag import DagBag

    folder, dag_id, conf = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    dag = DagBag(dag_folder=folder).get_dag(dag_id)
    try:
        run = dag.test(run_conf=conf or None)
    except Exception as exc:  # noqa: BLE001 - reported to the test, which asserts on it
        print(json.dumps({"summary": {"state": None, "error": f"{type(exc).__name__}: {exc}"}}))
        return
    tasks = {
        f"{ti.task_id}[{ti.map_index}]": {"state": str(ti.state), "label": ti.rendered_map_index}
        for ti in run.get_task_instances()
    }
    print(json.dumps({"summary": {"state": str(run.state), "run_id": run.run_id, "tasks": tasks, "error": None}}))


if __name__ == "__main__":
    _main()
