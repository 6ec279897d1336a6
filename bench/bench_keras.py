"""Keras 3 models: what exportflow costs per checkpoint over a bare ``model.export()`` loop.

Both sides run in the Keras runtime (TF 2.21) on the example Keras model's checkpoints:

* baseline — for each checkpoint: build the model, load its weights, ``model.export()``;
* ours — for each checkpoint: evaluate (``model.evaluate`` on the eval dataset, blessing, ledger), export
  (ExportArchive, loaded back and every endpoint called, verified, staged) and warmup (20 raw-tensor
  Predict requests built, linted and replayed), the stage functions called in one process;
* plus what the external runtime adds per stage process: starting the Keras interpreter and importing
  TensorFlow (each Airflow task of a Keras model is its own process);
* and the plain runner (``exportflow run``, from the Estimator runtime) on the same checkpoints with the
  example's strategies, both sides in this run: per-stage processes (the old way: evaluate, then export,
  warmup and publish per strategy, each a ``call_external`` of its own) against one ``run_checkpoints``
  process for the whole run (today's ``run_pipeline``).

    uv run python bench/bench_keras.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

INNER = """
import json, os, sys, time, yaml
root = sys.argv[1]
from examples.keras.model import build_model
from examples.keras.train import train
epochs = train(os.path.join(root, "model"), os.path.join(root, "data"), epochs=3)
import tensorflow as tf

def baseline():
    times = []
    for epoch in epochs:
        started = time.perf_counter()
        model = build_model()
        model.load_weights(os.path.join(root, "model", f"ckpt-{epoch:03d}.weights.h5"))
        model.export(os.path.join(root, "bare", str(epoch)), verbose=False)
        times.append(time.perf_counter() - started)
    return times

def ours():
    from components.config import load_config
    from components.discovery import lease
    from components.pipeline.options import RunOptions
    from components.pipeline.stages import discover_stage, evaluate_stage, export_stage, warmup_stage
    config = load_config(os.path.join(root, "configs", "example_keras.yaml"))
    options = RunOptions()
    times = []
    checkpoints = discover_stage(config, options, owner=lease.LeaseOwner.this_process())
    for checkpoint in checkpoints:
        started = time.perf_counter()
        evaluation = evaluate_stage(config, checkpoint)
        exported = export_stage(config, "latest", evaluation, options)
        warmup_stage(config, exported)
        times.append(time.perf_counter() - started)
        lease.release(checkpoint)
    return times

base = baseline()  # first: it pays TF's first-trace costs, which favours ours
mine = ours()
print(json.dumps({"baseline": base, "ours": mine}))
"""
STARTUP = "import time; s = time.perf_counter(); import tensorflow; print(time.perf_counter() - s)"


def plain_config(root: Path, python: Path, side: str) -> Path:
    """The example's config (every strategy) for one side of the plain-run comparison: its own destination,
    so each side finds every checkpoint new."""
    config = yaml.safe_load((ROOT / "examples" / "keras" / "pipeline.yaml").read_text())
    config.update(
        model_dir="../model",
        warmup={**config["warmup"], "path": "../data/warmup.json"},
        destination={**config["destination"], "uri": f"../published-{side}"},
        airflow={**config["airflow"], "python": str(python)},
    )
    path = root / "configs" / f"{side}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def per_stage_run(config_path: Path) -> Any:
    """The baseline: the plain run as it was, every stage after discovery its own Keras process."""
    from components.artifacts import EvaluationArtifact, ExportArtifact, PushedModelArtifact
    from components.config import load_config
    from components.discovery import lease
    from components.pipeline.contract import StageRequest
    from components.pipeline.external import call_external
    from components.pipeline.options import RunOptions, selected_strategies
    from components.pipeline.runner import RunReport
    from components.pipeline.stages import discover_stage

    config, options = load_config(str(config_path)), RunOptions()
    python = config.airflow.python or ""

    def call(stage: str, **inputs: object) -> Any:
        return call_external(python, StageRequest(stage, config.source, options, dict(inputs)))

    checkpoints = discover_stage(config, options, owner=lease.LeaseOwner.this_process(options.run_id))
    evaluations, exports, published = [], [], []
    try:
        for checkpoint in checkpoints:
            evaluation = EvaluationArtifact.from_dict(call("evaluate", checkpoint=checkpoint.to_dict()))
            evaluations.append(evaluation)
            for strategy in selected_strategies(config, options):
                exported = call("export", strategy=strategy.name, evaluation=evaluation.to_dict())
                if exported is None:
                    continue
                warmed = ExportArtifact.from_dict(call("warmup", export=exported))
                exports.append(warmed)
                published.append(PushedModelArtifact.from_dict(call("publish", export=warmed.to_dict())))
    finally:
        for checkpoint in checkpoints:
            lease.release(checkpoint)
    return RunReport(tuple(evaluations), tuple(exports), tuple(published))


def one_process_run(config_path: Path) -> Any:
    from components.config import load_config
    from components.pipeline.runner import run_pipeline

    return run_pipeline(load_config(str(config_path)))


def compare_plain_runs(root: Path, python: Path) -> None:
    """Both sides of the plain run, each counted at the seam every stage process starts through."""
    from components.pipeline import external

    real = external.run_stage_process
    started: list[str] = []

    def counting(python: str, request: Any, **kwargs: Any) -> Any:
        started.append(request.stage)
        return real(python, request, **kwargs)

    external.run_stage_process = counting  # type: ignore[assignment]
    results = {}
    try:
        for side, run in (("per_stage", per_stage_run), ("one_process", one_process_run)):
            started.clear()
            wall = time.perf_counter()
            report = run(plain_config(root, python, side))
            results[side] = (time.perf_counter() - wall, len(started), report)
    finally:
        external.run_stage_process = real  # type: ignore[assignment]
    published = {side: [(p.strategy, p.step) for p in r[2].published] for side, r in results.items()}
    if published["per_stage"] != published["one_process"]:
        sys.exit(f"the two plain runs published different versions: {published}")
    (old_s, old_n, report), (new_s, new_n, _) = results["per_stage"], results["one_process"]
    print(f"plain run of {len(report.evaluations)} checkpoints, {len(report.published)} versions published "
          f"({', '.join(f'{s}@{n}' for s, n in published['one_process'])}):")
    print(f"  per-stage processes (old): {old_n:>3} Keras processes, {old_s:6.1f}s")
    print(f"  one process (ours):        {new_n:>3} Keras process,   {new_s:6.1f}s   ratio {new_s / old_s:.2f}x "
          f"({old_s / new_s:.1f}x faster)")


def main() -> None:
    from components.keras.runtime import build_keras_env

    started = time.perf_counter()
    python = build_keras_env()
    print(f"Keras runtime up to date in {time.perf_counter() - started:.1f}s: {python}")
    with tempfile.TemporaryDirectory(prefix="bench-keras-") as tmp:
        root = Path(tmp)
        config = yaml.safe_load((ROOT / "examples" / "keras" / "pipeline.yaml").read_text())
        config["strategies"] = [{"name": "latest", "kind": "latest"}]
        (root / "configs").mkdir()
        (root / "configs" / "example_keras.yaml").write_text(
            yaml.safe_dump({**config, "model_dir": "../model", "warmup": {**config["warmup"], "path": "../data/warmup.json"}})
        )
        env = {"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"}
        inner = [str(python), "-c", textwrap.dedent(INNER), str(root)]
        out = subprocess.run(inner, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
        if out.returncode != 0:
            sys.exit(out.stderr[-3000:])
        result = json.loads(out.stdout.strip().splitlines()[-1])
        compare_plain_runs(root, python)
        startups = []
        for _ in range(3):
            wall = time.perf_counter()
            subprocess.run([str(python), "-c", STARTUP], capture_output=True, check=True, env=env)
            startups.append(time.perf_counter() - wall)
    base, ours = result["baseline"], result["ours"]
    print(f"{'checkpoint':>10}  {'model.export() s':>16}  {'evaluate+export+warmup s':>24}  ratio")
    for i, (b, o) in enumerate(zip(base, ours, strict=True), start=1):
        print(f"{i:>10}  {b:>16.2f}  {o:>24.2f}  {o / b:5.2f}x")
    mean_b, mean_o = sum(base) / len(base), sum(ours) / len(ours)
    print(f"{'mean':>10}  {mean_b:>16.2f}  {mean_o:>24.2f}  {mean_o / mean_b:5.2f}x")
    print(f"external runtime: start the Keras interpreter + import TF = {min(startups):.2f}s per stage process "
          f"(3 TF stages per checkpoint and strategy: +{3 * min(startups):.1f}s when each runs as its own process)")


if __name__ == "__main__":
    main()
