"""Airflow overhead: DAG parse time at 100 model configs, and the chain through Airflow vs the plain runner.

1. Parse: Airflow's DagBag over ``dags/`` with 100 configs, against a one-DAG baseline folder (one
   EmptyOperator) parsed the same way — each in a fresh interpreter (Airflow's own import timed apart),
   timing the DagBag call — and
   the heavy modules each parse imported (TensorFlow must not be among them).
2. Chain: ``airflow dags test`` of the example model's DAG (SQLite, in-process tasks) against
   ``components.pipeline.runner.run_pipeline`` on the same checkpoints, each publishing to a fresh destination.

    uv run python bench/bench_airflow.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from components.airflow_env import embedded_airflow_env

ROOT = Path(__file__).resolve().parent.parent
PARSE = """
import json, sys, time
start = time.perf_counter()
from airflow.dag_processing.dagbag import DagBag
imported = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
elapsed = time.perf_counter() - imported
heavy = sorted({m.split('.')[0] for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tensorflow_serving')})
print(json.dumps({"seconds": elapsed, "import_seconds": imported - start, "dags": len(bag.dag_ids), "errors": len(bag.import_errors), "heavy": heavy,
                  "modules": len(sys.modules)}))
"""
BASELINE_DAG = """
from airflow.sdk import DAG
from airflow.providers.standard.operators.empty import EmptyOperator
with DAG("baseline", schedule=None):
    EmptyOperator(task_id="noop")
"""


def parse(folder: Path, env: dict[str, str], repeats: int = 3) -> dict:
    results = [
        json.loads(
            subprocess.run([sys.executable, "-c", PARSE, str(folder)], env=env, capture_output=True, text=True, check=True)
            .stdout.strip().splitlines()[-1]
        )
        for _ in range(repeats)
    ]
    best = min(results, key=lambda r: r["seconds"])
    return best


def bench_parse(tmp: Path) -> None:
    example = yaml.safe_load((ROOT / "examples" / "pipeline.yaml").read_text())
    configs = tmp / "configs100"
    configs.mkdir()
    for i in range(100):
        (configs / f"model{i:03d}.yaml").write_text(yaml.safe_dump({**example, "name": f"model{i:03d}"}))
    baseline = tmp / "baseline_dags"
    baseline.mkdir()
    (baseline / "baseline.py").write_text(BASELINE_DAG)
    empty = tmp / "no_configs"
    empty.mkdir()
    env = embedded_airflow_env(tmp / "home", configs)
    ours = parse(ROOT / "dags", env)
    base = parse(baseline, embedded_airflow_env(tmp / "home", empty))
    print("parse: DagBag, best of 3, fresh interpreter each")
    print(f"  importing Airflow itself:     {base['import_seconds']:6.3f} s  (not counted below)")
    print(f"  baseline, 1 trivial DAG:      {base['seconds']:6.3f} s  ({base['modules']} modules)")
    print(f"  exportflow, 100 model DAGs:   {ours['seconds']:6.3f} s  ({ours['dags']} DAGs, {ours['errors']} import errors, "
          f"{ours['modules']} modules)")
    print(f"  ratio 100 configs / baseline: {ours['seconds'] / base['seconds']:6.2f}x")
    print(f"  heavy modules imported:       {ours['heavy'] or 'none'}")


def bench_chain(tmp: Path) -> None:
    from components.config import load_config
    from components.pipeline.runner import run_pipeline
    from examples.train import train

    train(str(tmp / "model"), str(tmp / "data"), steps=300)
    example = yaml.safe_load((ROOT / "examples" / "pipeline.yaml").read_text())
    example["evaluation"]["thresholds"] = []

    def write_config(name: str) -> Path:
        folder = tmp / name / "configs"
        folder.mkdir(parents=True)
        data = {**example, "model_dir": str(tmp / "model"), "destination": {"uri": str(tmp / name / "published")}}
        data["evaluation"] = {**example["evaluation"], "input_fn_kwargs": {"path": str(tmp / "data" / "eval.tfrecord")}}
        data["warmup"] = {**example["warmup"], "path": str(tmp / "data" / "eval.tfrecord")}
        (folder / "example.yaml").write_text(yaml.safe_dump(data))
        return folder

    runner_configs = write_config("runner")
    airflow_configs = write_config("airflow")
    env = embedded_airflow_env(tmp / "home", airflow_configs)
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True)

    start = time.perf_counter()
    report = run_pipeline(load_config(runner_configs / "example.yaml"))
    runner_s = time.perf_counter() - start

    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "test", "exportflow__example"],
        env=env, check=True, capture_output=True,
    )
    airflow_s = time.perf_counter() - start
    published = sorted(p.name for p in (tmp / "airflow" / "published" / "example").iterdir() if p.name.isdigit())
    print("chain: example model, 4 checkpoints (0, 100, 200, 300), every one blessed")
    print(f"  plain runner:        {runner_s:6.2f} s  (published {len(report.published)})")
    print(f"  airflow dags test:   {airflow_s:6.2f} s  (published {len(published)})")
    print(f"  overhead:            {airflow_s - runner_s:6.2f} s, ratio {airflow_s / runner_s:5.2f}x")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-airflow-") as tmp:
        bench_parse(Path(tmp))
    with tempfile.TemporaryDirectory(prefix="bench-airflow-chain-") as tmp:
        bench_chain(Path(tmp))


if __name__ == "__main__":
    main()
