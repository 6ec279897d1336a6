"""Disk used over consecutive runs: destination and staging stay bounded by ``keep`` (+ best).

20 runs (``--runs``) of a ~300 MB embedding model (``--mib``; ``bench_export``'s model, its checkpoints
written here, never downloaded) with ``destination.keep: 2``. Before each run the "trainer" writes one new
checkpoint and, like ``keep_checkpoint_max: 2``, deletes the older ones. Each run discovers it, exports it
(all modes, variables by reference), publishes it and applies retention. After each run the bench prints
the bytes of distinct files (hard links counted once) in the served folder, in staging and in the
trainer's model dir, and the version folders each holds.

The baseline is the bound itself: ``keep`` (+ best) versions of one checkpoint's size at the destination,
nothing in staging. Before staging was part of retention, staging grew by one checkpoint's size per run.

    uv run python bench/bench_disk_bound.py [--runs 20] [--mib 300] [--keep 2] [--object]

``--object`` puts staging and destination in a bucket of gcp-storage-emulator (sizes from its listing).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))
MiB = 1 << 20


def write_checkpoint(model_dir: Path, rows: int, step: int) -> None:
    """The trainer: one checkpoint at ``step``, older ones deleted (keep_checkpoint_max: 2 keeps this + one)."""
    import tensorflow as tf
    from bench_export import bench_model_fn, supervised_receiver

    with tf.Graph().as_default():
        global_step = tf.compat.v1.train.get_or_create_global_step()
        receiver = supervised_receiver()
        bench_model_fn(receiver.features, receiver.labels, tf.estimator.ModeKeys.TRAIN, {"rows": rows})
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            session.run(global_step.assign(step))
            tf.compat.v1.train.Saver().save(session, str(model_dir / f"model.ckpt-{step}"), write_meta_graph=False)
    steps = sorted(int(p.name.split("-")[1].split(".")[0]) for p in model_dir.glob("model.ckpt-*.index"))
    for old in steps[:-2]:
        for path in model_dir.glob(f"model.ckpt-{old}.*"):
            path.unlink()
    kept = steps[-2:]
    lines = [f'model_checkpoint_path: "model.ckpt-{kept[-1]}"'] + [f'all_model_checkpoint_paths: "model.ckpt-{s}"' for s in kept]
    (model_dir / "checkpoint").write_text("\n".join(lines) + "\n")


def config_for(base: Path, model_dir: Path, rows: int, keep: int, destination: str, staging: str | None) -> Any:
    from components.config.loader import parse_config

    data = {
        "name": "big", "model_dir": str(model_dir), "model_fn": "bench_export:bench_model_fn", "params": {"rows": rows},
        "receivers": {"predict": "bench_export:serving_receiver", "train": "bench_export:supervised_receiver",
                      "eval": "bench_export:supervised_receiver"},
        "strategies": [{"name": "all_modes", "kind": "all_modes", "params": {"by_reference": True, "verify": "graph"}}],
        "destination": {"uri": destination, "keep": keep},
        "scratch_dir": str(base / "scratch"),
    }
    if staging:
        data["staging"] = staging
    return parse_config(data, base_dir=base)


def local_usage(folder: str, exclude: str | None = None) -> tuple[int, list[str]]:
    """Bytes of distinct files below ``folder`` (hard links once), and its integer-named folders."""
    seen, total, versions = set(), 0, set()
    for root, dirs, files in os.walk(folder):
        if exclude and os.path.abspath(root).startswith(os.path.abspath(exclude)):
            dirs[:] = []
            continue
        for name in files:
            stat = os.stat(os.path.join(root, name))
            if (stat.st_dev, stat.st_ino) not in seen:
                seen.add((stat.st_dev, stat.st_ino))
                total += stat.st_size
        versions.update(d for d in dirs if d.isdigit())
    return total, sorted(versions, key=int)


def object_usage(uri: str, exclude: str | None = None) -> tuple[int, list[str]]:
    from components.storage import storage_for

    total, versions = 0, set()
    root = uri.rstrip("/")
    for info in storage_for(uri).list(root):
        if exclude and info.uri.startswith(exclude):
            continue
        total += info.size
        versions.update(p for p in info.uri[len(root) + 1 :].split("/")[:-1] if p.isdigit())
    return total, sorted(versions, key=int)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--mib", type=int, default=300, help="size of the embedding table")
    parser.add_argument("--keep", type=int, default=2)
    parser.add_argument("--object", action="store_true", help="staging and destination on the GCS emulator")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from bench_export import DIM

    from components.paths import staging_root
    from components.pipeline.options import RunOptions
    from components.pipeline.runner import run_pipeline

    rows = args.mib * MiB // (DIM * 4) // 1024 * 1024
    work = Path(tempfile.mkdtemp(prefix="bench-disk-"))
    model_dir = work / "model"
    model_dir.mkdir()
    try:
        with _store(args.object) as bucket:
            destination = f"gs://{bucket}/published" if bucket else str(work / "published")
            config = config_for(work, model_dir, rows, args.keep, destination, f"gs://{bucket}/staging" if bucket else None)
            usage = object_usage if bucket else local_usage
            staging = staging_root(config)
            served = f"{destination}/big"
            print(f"{'run':>4} {'seconds':>8} {'destination MiB':>16} {'staging MiB':>12} {'model_dir MiB':>14}  versions served / staged")
            peak = 0
            for run in range(1, args.runs + 1):
                write_checkpoint(model_dir, rows, 1000 * run)
                started = time.perf_counter()
                run_pipeline(config, RunOptions())
                seconds = time.perf_counter() - started
                served_bytes, served_versions = usage(served)
                staged_bytes, staged_versions = usage(staging)
                model_bytes, _ = local_usage(str(model_dir))
                peak = max(peak, served_bytes + staged_bytes)
                print(
                    f"{run:>4} {seconds:8.1f} {served_bytes / MiB:16.1f} {staged_bytes / MiB:12.1f} {model_bytes / MiB:14.1f}  "
                    f"{served_versions} / {staged_versions}"
                )
            checkpoint = sum(p.stat().st_size for p in model_dir.glob(f"model.ckpt-{1000 * args.runs}.*"))
            bound = (args.keep + 1) * checkpoint
            print(
                f"peak destination + staging {peak / MiB:.1f} MiB; bound (keep {args.keep} + best) x one checkpoint "
                f"({checkpoint / MiB:.1f} MiB) = {bound / MiB:.1f} MiB; peak / bound = {peak / bound:.2f}; "
                f"unbounded staging would hold {args.runs * checkpoint / MiB:.1f} MiB after {args.runs} runs"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


class _store:
    """The GCS emulator with a bucket (``--object``), else nothing."""

    def __init__(self, on: bool) -> None:
        self.on = on

    def __enter__(self) -> str | None:
        if not self.on:
            return None
        from bench_publish import BUCKET, emulator

        from components.storage import registry

        self._context = emulator()
        address, _ = self._context.__enter__()
        os.environ["STORAGE_EMULATOR_HOST"] = f"http://{address}"
        registry._instances.clear()
        return BUCKET

    def __exit__(self, *exc: object) -> None:
        if self.on:
            self._context.__exit__(*exc)


if __name__ == "__main__":
    raise SystemExit(main())
