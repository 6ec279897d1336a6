"""Keras 3 models: what exportflow costs per checkpoint over a bare ``model.export()`` loop.

Both sides run in the Keras runtime (TF 2.21) on the example Keras model's checkpoints:

* baseline — for each checkpoint: build the model, load its weights, ``model.export()``;
* ours — for each checkpoint: evaluate (``model.evaluate`` on the eval dataset, blessing, ledger), export
  (ExportArchive, loaded back and every endpoint called, verified, staged) and warmup (20 raw-tensor
  Predict requests built, linted and replayed), the stage functions called in one process;
* plus what the external runtime adds per stage in a plain run or Airflow task: starting the Keras
  interpreter and importing TensorFlow (each stage of a Keras model is its own process).

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
