"""Export cost: tf.estimator's all-modes export against ours, normal and with variables by reference.

For each size (a model whose one embedding table is 1 GiB, then 4 GiB), the bench writes its own
checkpoint, then exports TRAIN + EVAL + PREDICT graphs three ways, each in a fresh Python process whose
export call is timed and whose peak RSS (``ru_maxrss``) is read at the end:

* ``tf``: ``Estimator.experimental_export_all_saved_models`` (restores the checkpoint once per mode,
  saves the variables once; no verification);
* ``ours``: ``export_all_saved_models`` (restores and saves once, checks the other modes against the
  index, then verifies every tag with ``verify="graph"``);
* ``ours_ref``: the same with ``by_reference=True`` (the checkpoint files hard-linked as ``variables/``).

It also times a full verification (every tag loaded with its variables) of the by-reference export,
and checks that the tf and by-reference exports answer a fixed batch identically. Everything it writes
is removed at the end. Needs about 3.2x the largest size in free disk and 3x in free memory; sizes that
do not fit are skipped with a message.

    uv run python bench/bench_export.py [--sizes 1,4] [--workdir /tmp]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the project, for the worker processes
GIB = 1 << 30
DIM = 256  # embedding width; rows = size / (DIM * 4 bytes)
TABLE = "big_embedding"
METHODS = ("tf", "ours", "ours_ref")


def bench_model_fn(features, labels, mode, params):
    """One big embedding table, a tiny dense layer on top; every mode exportable."""
    import tensorflow as tf

    v1 = tf.compat.v1
    table = v1.get_variable(TABLE, shape=[params["rows"], DIM], initializer=_tiled_random)
    ids = tf.math.floormod(tf.reshape(features["ids"], [-1]), params["rows"])
    pooled = tf.nn.embedding_lookup(table, ids)
    weights = v1.get_variable(
        "dense/kernel", shape=[DIM, 1], initializer=v1.glorot_uniform_initializer(seed=8)
    )
    logit = tf.reshape(tf.matmul(pooled, weights), [-1], name="logit")
    outputs = {"logit": logit}
    export_outputs = {"serving_default": tf.estimator.export.PredictOutput(outputs)}
    if mode == tf.estimator.ModeKeys.PREDICT:
        return tf.estimator.EstimatorSpec(mode, predictions=outputs, export_outputs=export_outputs)
    loss = v1.losses.sigmoid_cross_entropy(tf.cast(tf.reshape(labels, [-1]), tf.float32), logit)
    train_op = v1.train.GradientDescentOptimizer(0.1).minimize(
        loss, global_step=v1.train.get_or_create_global_step()
    )
    return tf.estimator.EstimatorSpec(
        mode, loss=loss, train_op=train_op, predictions=outputs, export_outputs=export_outputs
    )


def _tiled_random(shape, dtype=None, partition_info=None):
    """Random rows, tiled: as varied as the lookups need, and quick to make at 4 GiB."""
    import tensorflow as tf

    block = tf.random.uniform([1024, shape[1]], -0.05, 0.05, seed=7, dtype=dtype or tf.float32)
    return tf.tile(block, [shape[0] // 1024, 1])


def serving_receiver():
    import tensorflow as tf

    ids = tf.compat.v1.placeholder(tf.int64, [None], name="ids")
    return tf.estimator.export.ServingInputReceiver({"ids": ids}, {"ids": ids})


def supervised_receiver():
    import tensorflow as tf
    from tensorflow_estimator.python.estimator.export.export_lib import SupervisedInputReceiver

    ids = tf.compat.v1.placeholder(tf.int64, [None], name="ids")
    labels = tf.compat.v1.placeholder(tf.int64, [None], name="labels")
    return SupervisedInputReceiver({"ids": ids}, labels, {"ids": ids, "labels": labels})


def receivers():
    return {"train": supervised_receiver, "eval": supervised_receiver, "infer": serving_receiver}


def estimator(model_dir: str, rows: int):
    import tensorflow as tf

    return tf.estimator.Estimator(bench_model_fn, model_dir=model_dir, params={"rows": rows})


# --------------------------------------------------------------------------------------------------
# Workers (each in its own process; the last stdout line is a JSON result)


def write_checkpoint(model_dir: str, rows: int) -> dict:
    import tensorflow as tf

    prefix = os.path.join(model_dir, "model.ckpt-1000")
    with tf.Graph().as_default():
        global_step = tf.compat.v1.train.get_or_create_global_step()
        receiver = supervised_receiver()
        bench_model_fn(receiver.features, receiver.labels, tf.estimator.ModeKeys.TRAIN, {"rows": rows})
        with tf.compat.v1.Session() as session:
            started = time.perf_counter()
            session.run(tf.compat.v1.global_variables_initializer())
            session.run(global_step.assign(1000))
            initialised = time.perf_counter()
            tf.compat.v1.train.Saver().save(session, prefix, write_meta_graph=False)
            saved = time.perf_counter()
    return {
        "prefix": prefix,
        "bytes": sum(f.stat().st_size for f in Path(model_dir).glob("model.ckpt-1000.*")),
        "init_seconds": initialised - started,
        "save_seconds": saved - initialised,
    }


def run_method(method: str, model_dir: str, rows: int, out_dir: str) -> dict:
    from components.export.compat.export_all_saved_models import export_all_saved_models

    est = estimator(model_dir, rows)
    prefix = os.path.join(model_dir, "model.ckpt-1000")
    started = time.perf_counter()
    if method == "tf":
        path = os.fsdecode(
            est.experimental_export_all_saved_models(out_dir, receivers(), checkpoint_path=prefix)
        )
    else:
        path = export_all_saved_models(
            est,
            out_dir,
            receivers(),
            checkpoint_path=prefix,
            by_reference=method == "ours_ref",
            verify="graph",
        )
    return {"seconds": time.perf_counter() - started, "path": path}


def verify_full(path: str) -> dict:
    from components.export.savedmodel.verify import verify_export

    started = time.perf_counter()
    verify_export(path, "full")
    return {"seconds": time.perf_counter() - started}


def answers(paths: list[str]) -> dict:
    import numpy as np
    import tensorflow as tf

    ids = np.arange(0, 4096 * 97, 97, dtype=np.int64)
    results = []
    for path in paths:
        with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
            meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], path)
            sig = meta_graph.signature_def["serving_default"]
            results.append(session.run(sig.outputs["logit"].name, {sig.inputs["ids"].name: ids}))
    return {"identical": bool(all(np.array_equal(results[0], r) for r in results[1:])), "n": len(ids)}


def worker(args: argparse.Namespace) -> None:
    import logging

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    if args.worker == "checkpoint":
        result = write_checkpoint(args.model_dir, args.rows)
    elif args.worker == "verify":
        result = verify_full(args.path)
    elif args.worker == "answers":
        result = answers(args.path.split(","))
    elif args.worker == "baseline":
        import tensorflow  # noqa: F401 - the RSS floor every TF process pays

        result = {"seconds": 0.0}
    else:
        result = run_method(args.worker, args.model_dir, args.rows, args.out_dir)
    result["max_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def spawn(*argv: str) -> dict:
    process = subprocess.run(
        [sys.executable, os.path.abspath(__file__), *argv], capture_output=True, text=True, check=False
    )
    if process.returncode != 0:
        raise RuntimeError(f"worker {argv[:2]} failed:\n{process.stderr[-3000:]}")
    return json.loads(process.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------------------


def free_memory_bytes() -> int:
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def bench_size(size_gib: int, workdir: Path) -> dict | None:
    size = size_gib * GIB
    disk, memory = shutil.disk_usage(workdir).free, free_memory_bytes()
    if disk < 3.2 * size or memory < 3 * size:
        print(
            f"skipping {size_gib} GiB: needs {3.2 * size_gib:.1f} GiB disk and {3 * size_gib} GiB memory free, "
            f"have {disk / GIB:.1f} GiB and {memory / GIB:.1f} GiB"
        )
        return None
    rows = size // (DIM * 4)  # a multiple of 1024
    root = Path(tempfile.mkdtemp(prefix=f"bench-export-{size_gib}g-", dir=workdir))
    try:
        model_dir = root / "model"
        model_dir.mkdir()
        started = time.perf_counter()
        checkpoint = spawn("--worker", "checkpoint", "--model-dir", str(model_dir), "--rows", str(rows))
        print(
            f"{size_gib} GiB: checkpoint of {checkpoint['bytes'] / GIB:.2f} GiB written in "
            f"{time.perf_counter() - started:.1f} s (initialising {checkpoint['init_seconds']:.1f} s, "
            f"saving {checkpoint['save_seconds']:.1f} s)"
        )
        results = {}
        for method in METHODS:
            out = spawn(
                "--worker",
                method,
                "--model-dir",
                str(model_dir),
                "--rows",
                str(rows),
                "--out-dir",
                str(root / method),
            )
            results[method] = out
            print(f"  {method:9s} {out['seconds']:8.3f} s   peak RSS {out['max_rss_mib']:8.0f} MiB")
        results["verify_full_ref"] = spawn("--worker", "verify", "--path", results["ours_ref"]["path"])
        print(
            f"  full verification of the by-reference export (3 tags, variables loaded): "
            f"{results['verify_full_ref']['seconds']:.2f} s, peak RSS {results['verify_full_ref']['max_rss_mib']:.0f} MiB"
        )
        check = spawn("--worker", "answers", "--path", ",".join(results[m]["path"] for m in METHODS))
        print(
            f"  serving answers on {check['n']} ids identical across tf / ours / ours_ref: {check['identical']}"
        )
        results["identical"] = check["identical"]
        results["checkpoint_bytes"] = checkpoint["bytes"]
        return results
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,4", help="embedding sizes in GiB, comma-separated")
    parser.add_argument("--workdir", default=tempfile.gettempdir(), help="where checkpoints and exports go")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out-dir", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    Path(args.workdir).mkdir(parents=True, exist_ok=True)  # a fresh --workdir is created, not an error
    floor = spawn("--worker", "baseline")
    print(f"a process that only imports TensorFlow peaks at {floor['max_rss_mib']:.0f} MiB RSS")
    summary = {}
    for size in [int(s) for s in args.sizes.split(",") if s]:
        result = bench_size(size, Path(args.workdir))
        if result is None:
            continue
        summary[size] = result
        tf_s, ours_s, ref_s = (result[m]["seconds"] for m in METHODS)
        print(
            f"  ratios at {size} GiB: tf / ours = {tf_s / ours_s:.1f}x, tf / ours_ref = {tf_s / ref_s:.0f}x, "
            f"ours / ours_ref = {ours_s / ref_s:.0f}x (goal: by reference >= 8x faster than tf)"
        )
    sizes = sorted(summary)
    if len(sizes) >= 2:
        small, large = summary[sizes[0]], summary[sizes[-1]]
        print(
            f"growth {sizes[0]} -> {sizes[-1]} GiB (time): tf {large['tf']['seconds'] / small['tf']['seconds']:.1f}x, "
            f"ours {large['ours']['seconds'] / small['ours']['seconds']:.1f}x, "
            f"ours_ref {large['ours_ref']['seconds'] / small['ours_ref']['seconds']:.2f}x (goal: flat)"
        )
        print(
            f"growth {sizes[0]} -> {sizes[-1]} GiB (peak RSS): tf "
            f"{large['tf']['max_rss_mib'] / small['tf']['max_rss_mib']:.1f}x, ours_ref "
            f"{large['ours_ref']['max_rss_mib'] / small['ours_ref']['max_rss_mib']:.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
