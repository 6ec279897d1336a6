"""Hand-over cost between export, warmup and publish: local staging vs object staging, side by side.

Two models, each run twice through the same stage functions the orchestrators call (discover and evaluate
untimed; export, warmup and publish timed one by one):

* **local** — model_dir, staging and destination on local disk (staging beside the destination: today's
  default; the hand-over is a folder, variables by reference are hard links);
* **object** — model_dir, staging and destination in one bucket on gcp-storage-emulator (its own
  process, in memory, loopback): every stage reads its input by URI.

Models: the example model (trained here for 100 steps, warmup from 10 eval examples) and a 1 GiB
embedding model exported by reference (``bench_export``'s model; checkpoint written here, never
downloaded; warmup off). For the object runs, the bytes that crossed the worker are counted at our own
Storage seam (``GCSStorage.upload_file`` / ``download_file`` / ``copy``): uploads and downloads go
through the worker, copies are server-side. The goal is 0 variable bytes uploaded; downloads are the
checkpoint fetched once into the worker's scratch cache so TensorFlow can build and verify the export.
Then warmup runs again on a "second worker" (a fresh scratch folder) for the example model: it downloads
what loading needs once, and nothing on a repeat.

    uv run python bench/bench_handover.py [--gib 1] [--skip-big]
"""

from __future__ import annotations

import argparse
import dataclasses
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
GIB = 1 << 30


@dataclasses.dataclass
class Traffic:
    uploaded: int = 0
    uploaded_variables: int = 0
    downloaded: int = 0
    downloaded_variables: int = 0
    copied: int = 0

    def reset(self) -> None:
        self.__init__()


TRAFFIC = Traffic()


def count_traffic() -> None:
    """Wrap our GCS back-end's three byte-moving verbs (the seam every stage goes through)."""
    from components.storage.gcs import GCSStorage

    upload, download, copy = GCSStorage.upload_file, GCSStorage.download_file, GCSStorage.copy

    def counted_upload(self, local_path, uri, **kwargs):
        size = os.path.getsize(local_path)
        TRAFFIC.uploaded += size
        TRAFFIC.uploaded_variables += size if "/variables/" in uri else 0
        return upload(self, local_path, uri, **kwargs)

    def counted_download(self, uri, local_path):
        download(self, uri, local_path)
        size = os.path.getsize(local_path)
        TRAFFIC.downloaded += size
        TRAFFIC.downloaded_variables += size if ("/variables/" in uri or ".ckpt-" in uri) else 0

    def counted_copy(self, src_uri, dst_uri, **kwargs):
        info = copy(self, src_uri, dst_uri, **kwargs)
        TRAFFIC.copied += info.size
        return info

    GCSStorage.upload_file, GCSStorage.download_file, GCSStorage.copy = counted_upload, counted_download, counted_copy


def upload_tree(local: Path, uri: str) -> str:
    from components.storage import storage_for

    storage = storage_for(uri)
    for path in sorted(local.rglob("*")):
        if path.is_file():
            storage.upload_file(str(path), storage.join(uri, str(path.relative_to(local))))
    return uri


def example_config(base: Path, model_dir: str, data_dir: Path, destination: str, staging: str | None) -> Any:
    from components.config.loader import parse_config

    data = {
        "name": "example", "model_dir": model_dir, "model_fn": "examples.model:model_fn",
        "params": {"embedding_dim": 16, "hidden_units": 32},
        "receivers": {"predict": "examples.model:serving_input_receiver_fn",
                      "train": "examples.model:supervised_input_receiver_fn",
                      "eval": "examples.model:supervised_input_receiver_fn"},
        "evaluation": {"input_fn": "examples.model:eval_input_fn",
                       "input_fn_kwargs": {"path": str(data_dir / "eval.tfrecord")}, "steps": 2},
        "warmup": {"source": "examples", "path": str(data_dir / "eval.tfrecord"), "num_records": 10},
        "strategies": [{"name": "all_modes", "kind": "all_modes", "params": {"by_reference": True}}],
        "destination": {"uri": destination},
        "scratch_dir": str(base / "scratch"),
    }
    if staging:
        data["staging"] = staging
    return parse_config(data, base_dir=base)


def big_config(base: Path, model_dir: str, rows: int, destination: str, staging: str | None) -> Any:
    from components.config.loader import parse_config

    data = {
        "name": "big", "model_dir": model_dir, "model_fn": "bench_export:bench_model_fn", "params": {"rows": rows},
        "receivers": {"predict": "bench_export:serving_receiver", "train": "bench_export:supervised_receiver",
                      "eval": "bench_export:supervised_receiver"},
        "strategies": [{"name": "all_modes", "kind": "all_modes",
                        "params": {"by_reference": True, "verify": "graph"}}],
        "destination": {"uri": destination},
        "scratch_dir": str(base / "scratch"),
    }
    if staging:
        data["staging"] = staging
    return parse_config(data, base_dir=base)


def timed_stages(config: Any) -> dict[str, float]:
    from components.pipeline.options import RunOptions
    from components.pipeline.stages import (
        discover_stage,
        evaluate_stage,
        export_stage,
        publish_stage,
        warmup_stage,
    )

    options = RunOptions()
    (checkpoint, *_) = discover_stage(config, options)
    evaluation = evaluate_stage(config, checkpoint)
    TRAFFIC.reset()
    seconds = {}
    started = time.perf_counter()
    exported = export_stage(config, "all_modes", evaluation, options)
    seconds["export"] = time.perf_counter() - started
    started = time.perf_counter()
    warmed = warmup_stage(config, exported)
    seconds["warmup"] = time.perf_counter() - started
    started = time.perf_counter()
    pushed = publish_stage(config, warmed, options)
    seconds["publish"] = time.perf_counter() - started
    seconds["total"] = seconds["export"] + seconds["warmup"] + seconds["publish"]
    seconds["traffic"] = dataclasses.replace(TRAFFIC)  # type: ignore[assignment]
    seconds["exported"] = exported  # type: ignore[assignment]
    seconds["pushed"] = pushed  # type: ignore[assignment]
    return seconds


def second_worker_warmup(config: Any, base: Path) -> tuple[int, int]:
    """Export (dry run) here, then warm it up twice on a worker with an empty scratch folder."""
    from components.pipeline.options import RunOptions
    from components.pipeline.stages import discover_stage, evaluate_stage, export_stage, warmup_stage

    options = RunOptions(force=True, dry_run=True)
    (checkpoint, *_) = discover_stage(config, options)
    exported = export_stage(config, "all_modes", evaluate_stage(config, checkpoint), options)
    other = dataclasses.replace(config, scratch_dir=str(base / "other-worker"))
    counts = []
    for _ in range(2):
        TRAFFIC.reset()
        warmup_stage(other, exported)
        counts.append(TRAFFIC.downloaded)
    return counts[0], counts[1]


def row(label: str, local: dict, remote: dict) -> list[str]:
    lines = [f"{label}"]
    for stage in ("export", "warmup", "publish", "total"):
        ratio = remote[stage] / local[stage] if local[stage] > 0 else float("nan")
        lines.append(f"  {stage:<8} local {local[stage]:8.2f} s   object {remote[stage]:8.2f} s   object/local {ratio:6.2f}x")
    t: Traffic = remote["traffic"]
    lines.append(
        f"  object staging, through the worker: uploaded {t.uploaded / MiB:9.2f} MiB (variables {t.uploaded_variables / MiB:.2f} MiB), "
        f"downloaded {t.downloaded / MiB:9.2f} MiB (checkpoint/variables {t.downloaded_variables / MiB:.2f} MiB); "
        f"server-side copies {t.copied / MiB:9.2f} MiB"
    )
    lines.append(f"  published: local {local['pushed'].uri}  object {remote['pushed'].uri}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gib", type=float, default=1.0, help="size of the big model's embedding table")
    parser.add_argument("--skip-big", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from bench_publish import BUCKET, emulator

    from components.storage import registry
    from examples.train import train

    count_traffic()
    work = Path(tempfile.mkdtemp(prefix="bench-handover-"))
    lines: list[str] = []
    try:
        with emulator() as (address, _pid):
            os.environ["STORAGE_EMULATOR_HOST"] = f"http://{address}"
            registry._instances.clear()
            data_dir = work / "data"
            train(str(work / "example-model"), str(data_dir), steps=100, checkpoint_every=100)
            local = timed_stages(example_config(work / "ex-local", str(work / "example-model"), data_dir, str(work / "ex-local" / "published"), None))
            model_uri = upload_tree(work / "example-model", f"gs://{BUCKET}/example/model")
            remote_config = example_config(work / "ex-object", model_uri, data_dir, f"gs://{BUCKET}/example/published", f"gs://{BUCKET}/example/staging")
            remote = timed_stages(remote_config)
            lines += row("example model (all_modes by reference, warmup 10 examples)", local, remote)
            first, again = second_worker_warmup(remote_config, work / "ex-object")
            lines.append(f"  warmup on a second worker: downloaded {first / MiB:.2f} MiB the first time, {again / MiB:.2f} MiB the second")

            if not args.skip_big:
                from bench_export import DIM, write_checkpoint

                rows = int(args.gib * GIB) // (DIM * 4) // 1024 * 1024
                model_dir = work / "big-model"
                model_dir.mkdir()
                checkpoint = write_checkpoint(str(model_dir), rows)
                (model_dir / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-1000"\nall_model_checkpoint_paths: "model.ckpt-1000"\n')
                local = timed_stages(big_config(work / "big-local", str(model_dir), rows, str(work / "big-local" / "published"), None))
                model_uri = upload_tree(model_dir, f"gs://{BUCKET}/big/model")
                shutil.rmtree(work / "big-local", ignore_errors=True)
                remote = timed_stages(big_config(work / "big-object", model_uri, rows, f"gs://{BUCKET}/big/published", f"gs://{BUCKET}/big/staging"))
                lines += row(f"{checkpoint['bytes'] / GIB:.2f} GiB by-reference export (verify graph, warmup off)", local, remote)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
