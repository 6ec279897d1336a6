"""Whole chain through the plain runner vs the bare TensorFlow work, for the example model.

Baseline: for each checkpoint, ``experimental_export_all_saved_models`` (TRAIN/EVAL/PREDICT) and a
``shutil.copytree`` of the result to a destination — what a cron script would do. Ours: discovery,
evaluation and blessing, the same export plus a verification load of every tag, warmup generation,
the manifest with CRC32C of every file, ordered verified publication and the ledger. Both in one run,
on the same checkpoints; the ratio is ours / baseline. A rerun of ours (nothing new) is timed too.

    uv run python bench/bench_chain.py
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent


def baseline(model_dir: Path, steps: list[int], destination: Path, work: Path) -> float:
    import tensorflow as tf

    from examples.model import all_modes_receiver_fn_map, model_fn

    start = time.perf_counter()
    estimator = tf.estimator.Estimator(model_fn=model_fn, model_dir=str(work))
    for step in steps:
        written = estimator.experimental_export_all_saved_models(
            str(work / "export"), all_modes_receiver_fn_map(), checkpoint_path=str(model_dir / f"model.ckpt-{step}")
        )
        shutil.copytree(os.fsdecode(written), destination / str(step))
    return time.perf_counter() - start


def ours(config_path: Path) -> tuple[float, int]:
    from components.config import load_config
    from components.pipeline.runner import run_pipeline

    start = time.perf_counter()
    report = run_pipeline(load_config(config_path))
    return time.perf_counter() - start, len(report.published)


def main() -> None:
    import yaml

    from examples.train import train

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="bench-chain-") as tmp:
        root = Path(tmp)
        steps = [s for s in train(str(root / "model"), str(root / "data"), steps=300) if s > 0]
        config = yaml.safe_load((ROOT / "examples" / "pipeline.yaml").read_text())
        config["evaluation"]["thresholds"] = []  # bless every checkpoint so both sides export the same ones
        config["discovery"]["policy"] = "all_new"
        (root / "configs").mkdir()
        config_path = root / "configs" / "example.yaml"
        config_path.write_text(yaml.safe_dump(config))
        (root / "model" / "model.ckpt-0.index").unlink()  # step 0: baseline skips it, so ours must too

        # One untimed baseline pass pays TensorFlow's one-off start-up costs for both sides.
        baseline(root / "model", steps[:1], root / "warmup-dest", root / "warmup-work")
        base_s = baseline(root / "model", steps, root / "baseline-dest", root / "baseline-work")
        ours_s, published = ours(config_path)
        rerun_s, republished = ours(config_path)

    print(f"checkpoints exported:          {len(steps)} (ours published {published}, rerun {republished})")
    print(f"baseline (export + copytree):  {base_s:7.2f} s")
    print(f"exportflow plain runner:       {ours_s:7.2f} s")
    print(f"exportflow rerun, nothing new: {rerun_s:7.2f} s")
    print(f"ratio ours / baseline:         {ours_s / base_s:7.2f}x")


if __name__ == "__main__":
    main()
