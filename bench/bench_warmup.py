"""Warmup: what building, linting and replaying 1000 requests costs, and the cold start it removes.

Two measurements on the example model's all-modes export (predict signature ``serving_default``, a
parsing receiver fed serialized tf.Examples), each in fresh Python processes so nothing is cached:

1. Cost: generating 1000 warmup requests from eval examples, linting them against the export, and
   replaying them on the loaded SavedModel — next to the model's own load time (the baseline a serving
   host pays anyway).
2. Effect: in a fresh process, load the model and time the first real request (no warmup: the cold
   start); in another fresh process, load, replay the warmup file, then time the first real request.
   The ratio cold / after-warmup is the latency warmup takes off a version's first user request.

    uv run python bench/bench_warmup.py [--records 1000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

MODEL = "example"
SIGNATURE = "serving_default"


def prepare(root: Path, records: int) -> tuple[str, str, str]:
    """Train the example model briefly, export it, and write warmup and held-out examples."""
    import logging

    from examples import data
    from examples.model import all_modes_receiver_fn_map, make_estimator
    from examples.train import train

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    steps = train(str(root / "model"), str(root / "data"), steps=100, checkpoint_every=100)
    estimator = make_estimator(root / "scratch")
    export_dir = os.fsdecode(
        estimator.experimental_export_all_saved_models(
            str(root / "export"),
            all_modes_receiver_fn_map(),
            checkpoint_path=str(root / "model" / f"model.ckpt-{steps[-1]}"),
        )
    )
    warmup_examples = root / "warmup_examples.tfrecord"
    held_out = root / "held_out.tfrecord"
    data.write_tfrecords(warmup_examples, records, seed=21)
    data.write_tfrecords(held_out, 1, seed=22)  # the "real" request: an example warmup never saw
    return export_dir, str(warmup_examples), str(held_out)


# --------------------------------------------------------------------------------------------------
# Workers: each runs in its own fresh process and prints one JSON line.


def _imports() -> None:
    """Import everything up front so no timing below includes a module import."""
    import tensorflow  # noqa: F401
    from tensorflow_serving.apis import prediction_log_pb2  # noqa: F401

    from components.warmup import build, lint, replay, signatures, sources  # noqa: F401


def _build(export_dir: str, examples_path: str, count: int) -> tuple[object, list[bytes]]:
    from components.warmup import build, sources
    from components.warmup.signatures import read_serving_graph

    graph = read_serving_graph(export_dir)
    examples = sources.read_examples(examples_path, count)
    return graph, build.from_examples(graph, build.Target(MODEL, SIGNATURE), examples)


def worker_costs(export_dir: str, examples_path: str, records: int) -> dict:
    from components.warmup.lint import lint_records
    from components.warmup.replay import replay

    started = time.perf_counter()
    graph, built = _build(export_dir, examples_path, records)
    generate = time.perf_counter() - started
    started = time.perf_counter()
    report = lint_records(built, graph, model_name=MODEL, truncate=False)
    lint = time.perf_counter() - started
    assert not report.problems, report.problems
    started = time.perf_counter()
    stats = replay(graph, report.records)
    replay_total = time.perf_counter() - started
    return {
        "generate_s": generate,
        "lint_s": lint,
        "replay_s": replay_total - stats.load_seconds,
        "replay_load_s": stats.load_seconds,
        "records": stats.records,
        "first_call_ms": stats.first_call_ms,
        "p50_ms": stats.p50_ms,
        "p99_ms": stats.p99_ms,
    }


def worker_first_request(
    export_dir: str, examples_path: str, held_out: str, records: int, warm: bool
) -> dict:
    from components.warmup.replay import run_record, serving_session

    graph, (real,) = _build(export_dir, held_out, 1)
    warmup = _build(export_dir, examples_path, records)[1] if warm else []
    with serving_session(graph) as (session, load_seconds):
        started = time.perf_counter()
        for index, record in enumerate(warmup):
            run_record(session, graph, record, index)
        warmup_seconds = time.perf_counter() - started
        timings = []
        for _ in range(2):  # the first real request, then one more for the steady state
            started = time.perf_counter()
            run_record(session, graph, real, 0)
            timings.append((time.perf_counter() - started) * 1000.0)
    return {
        "load_s": load_seconds,
        "warmup_s": warmup_seconds,
        "first_ms": timings[0],
        "second_ms": timings[1],
    }


def run_worker(*args: str) -> dict:
    result = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _imports()
        mode, export_dir, examples_path, held_out = args.worker
        if mode == "costs":
            out = worker_costs(export_dir, examples_path, args.records)
        else:
            out = worker_first_request(export_dir, examples_path, held_out, args.records, warm=mode == "warm")
        print(json.dumps(out))
        return

    with tempfile.TemporaryDirectory(prefix="bench-warmup-") as tmp:
        print(f"preparing: training the example model and exporting it ({args.records} warmup examples)")
        export_dir, examples_path, held_out = prepare(Path(tmp), args.records)
        paths = (export_dir, examples_path, held_out)
        records = ("--records", str(args.records))
        costs = [run_worker(*records, "--worker", "costs", *paths) for _ in range(args.repeats)]
        cold = [run_worker(*records, "--worker", "cold", *paths) for _ in range(args.repeats)]
        warm = [run_worker(*records, "--worker", "warm", *paths) for _ in range(args.repeats)]

    def med(rows: list[dict], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    load = med(cold + warm, "load_s")
    print(
        f"\nmedians of {args.repeats} fresh processes each; {args.records} requests, predict on {SIGNATURE!r}\n"
    )
    print("1. cost of warmup vs the model's load time")
    print(f"   model load (serve tag, fresh process)      {load * 1000:9.1f} ms   (baseline)")
    total = 0.0
    for label, key in (
        ("generate", "generate_s"),
        ("lint", "lint_s"),
        ("replay (after its own load)", "replay_s"),
    ):
        value = med(costs, key)
        total += value
        print(f"   {label:<42} {value * 1000:9.1f} ms   {value / load:6.1f}x load")
    print(f"   {'all three':<42} {total * 1000:9.1f} ms   {total / load:6.1f}x load")
    print(
        f"   replay per request: first {med(costs, 'first_call_ms'):.2f} ms, then p50 {med(costs, 'p50_ms'):.3f} ms, "
        f"p99 {med(costs, 'p99_ms'):.3f} ms"
    )
    cold_first, warm_first = med(cold, "first_ms"), med(warm, "first_ms")
    print("\n2. first real request on a freshly loaded model")
    print(f"   without warmup (cold start)                {cold_first:9.3f} ms")
    print(f"   after replaying the warmup file            {warm_first:9.3f} ms")
    print(f"   steady state (second request, no warmup)   {med(cold, 'second_ms'):9.3f} ms")
    print(f"   cold / after-warmup                        {cold_first / warm_first:9.1f}x")
    print(f"   (warmup replay took {med(warm, 'warmup_s') * 1000:.1f} ms during the load)")


if __name__ == "__main__":
    main()
