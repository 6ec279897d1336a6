"""Discovery over 10,000 checkpoints, local disk and the GCS emulator, against a naive baseline.

The model dir holds N checkpoints (``model.ckpt-<step>.index`` + S data shards each, small fake files:
discovery reads names and sizes, never contents) and a ``checkpoint`` state file. Both contenders
find the complete checkpoints and pick the new ones (all_new, cap 10, empty ledger):

* naive: list the names, then stat every checkpoint file for its size (what the walking skeleton did:
  one request per file on GCS);
* ours: ``components.discovery.executor.discover``: one listing that carries sizes
  (``Storage.list_files``: on GCS one paged list call, 1000 objects a page, sizes in the response; on
  local disk ``os.scandir`` with ``fstatat`` on the open folder).

Run with S=1 and S=4 shards to see how each grows with files per checkpoint. For GCS the HTTP requests
one discovery makes are counted too (the emulator answers a listing in one page; real GCS pages by
1000 objects). On local disk both contenders make one stat call per file (a listing carries no sizes
there), so expect parity; the saving is on object stores, where a stat is a round trip.

    uv run python bench/bench_discovery.py [--checkpoints 10000] [--shards 1 4] [--repeats 3] [--no-gcs]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
warnings.filterwarnings("ignore", category=FutureWarning)

from components.discovery.checkpoints import group_checkpoint_files, parse_state_file
from components.discovery.executor import discover
from components.discovery.spec import DiscoveryParams
from components.ledger.schema import LedgerState
from components.storage import Storage, storage_for


def checkpoint_names(checkpoints: int, shards: int) -> list[str]:
    names = []
    for step in range(checkpoints):
        names.append(f"model.ckpt-{step}.index")
        names += [f"model.ckpt-{step}.data-{i:05d}-of-{shards:05d}" for i in range(shards)]
    return names


def state_file(checkpoints: int) -> bytes:
    last = list(range(max(0, checkpoints - 5), checkpoints))
    lines = [f'model_checkpoint_path: "model.ckpt-{last[-1]}"'] + [
        f'all_model_checkpoint_paths: "model.ckpt-{s}"' for s in last
    ]
    return ("\n".join(lines) + "\n").encode()


def naive(model_dir: str, storage: Storage) -> list[int]:
    """List names, stat each checkpoint file, group, keep the complete ones, take the new ones."""
    names = storage.list_names(model_dir)
    sizes = {}
    for name in names:
        if ".index" in name or ".data-" in name:
            info = storage.stat(storage.join(model_dir, name))
            if info is not None:
                sizes[name] = info.size
    state = (
        storage.read_bytes(storage.join(model_dir, "checkpoint")).decode() if "checkpoint" in names else ""
    )
    parse_state_file(state)
    complete = sorted(f.step for f in group_checkpoint_files(sizes).values() if f.complete)
    return complete[:10]


def ours(model_dir: str, storage: Storage) -> list[int]:
    params = DiscoveryParams(model_name="bench", model_dir=model_dir, policy="all_new", max_per_run=10)
    return [c.step for c in discover(params, LedgerState(model="bench"), storage)]


def timed(fn: Callable[[], list[int]], repeats: int, storage: Storage) -> tuple[float, list[int], int | None]:
    """Median time of ``fn``, its result, and the HTTP requests one call made (GCS only)."""
    times, result = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result, count_requests(fn, storage)


def count_requests(fn: Callable[[], list[int]], storage: Storage) -> int | None:
    session = getattr(getattr(storage, "client", None), "_http", None)
    if session is None:
        return None
    calls = 0
    real = session.request

    def counting(*args, **kwargs):
        nonlocal calls
        calls += 1
        return real(*args, **kwargs)

    session.request = counting
    try:
        fn()
    finally:
        del session.request  # back to the class's method
    return calls


def make_local(root: Path, checkpoints: int, shards: int) -> str:
    folder = root / f"local-{shards}"
    folder.mkdir()
    for name in checkpoint_names(checkpoints, shards):
        (folder / name).write_bytes(b"x" * 16)
    (folder / "checkpoint").write_bytes(state_file(checkpoints))
    return str(folder)


def make_gcs(server: object, bucket: str, checkpoints: int, shards: int) -> str:
    """Seed the emulator's own storage directly: its HTTP create path rewrites its whole metadata index
    on every object (quadratic, minutes for 50,000 objects). Only the setup takes this shortcut; every
    timed call goes through the GCS JSON API like a real bucket."""
    from gcp_storage_emulator.handlers import objects

    emulated = server._storage
    base_url = os.environ["STORAGE_EMULATOR_HOST"]
    prefix = f"gcs-{shards}"
    names = [*checkpoint_names(checkpoints, shards), "checkpoint"]
    save_index = emulated._write_config_to_file
    emulated._write_config_to_file = lambda: None
    try:
        for name in names:
            data = state_file(checkpoints) if name == "checkpoint" else b"x" * 16
            key = f"{prefix}/{name}"
            obj = objects._make_object_resource(
                base_url, bucket, key, "application/octet-stream", str(len(data))
            )
            emulated.create_file(bucket, key, data, objects._checksums(data, obj))
    finally:
        emulated._write_config_to_file = save_index
    save_index()
    return f"gs://{bucket}/{prefix}"


def start_emulator() -> object:
    import socket

    from gcp_storage_emulator.server import create_server

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    os.environ["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{port}"
    return server


def report(where: str, checkpoints: int, naive: tuple, ours: tuple) -> None:
    (naive_s, _, naive_requests), (ours_s, _, our_requests) = naive, ours
    requests = f"   requests {naive_requests} vs {our_requests}" if naive_requests is not None else ""
    print(
        f"  {where:<5} naive list+stat each {naive_s:8.3f} s ({naive_s / checkpoints * 1e6:7.1f} us/ckpt)   "
        f"ours one listing {ours_s:7.3f} s ({ours_s / checkpoints * 1e6:6.1f} us/ckpt)   "
        f"ratio {naive_s / ours_s:6.1f}x{requests}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=int, default=10_000)
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-gcs", action="store_true", help="skip the emulator")
    args = parser.parse_args(argv)

    server = None if args.no_gcs else start_emulator()
    bucket = "exportflow-bench"
    if server is not None:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage as gcs

        gcs.Client(project="bench", credentials=AnonymousCredentials()).create_bucket(bucket)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-discovery-") as tmp:
            for shards in args.shards:
                files = args.checkpoints * (1 + shards) + 1
                print(
                    f"\n{args.checkpoints} checkpoints x (index + {shards} shard(s)) = {files} files",
                    flush=True,
                )
                targets = [("local", make_local(Path(tmp), args.checkpoints, shards))]
                if server is not None:
                    start = time.perf_counter()
                    targets.append(("gcs", make_gcs(server, bucket, args.checkpoints, shards)))
                    print(
                        f"  (seeded {files} objects into the emulator in {time.perf_counter() - start:.1f} s)"
                    )
                for where, model_dir in targets:
                    storage = storage_for(model_dir)
                    repeats = args.repeats if where == "local" else 1  # the naive GCS run is long
                    baseline = timed(lambda d=model_dir, s=storage: naive(d, s), repeats, storage)
                    measured = timed(lambda d=model_dir, s=storage: ours(d, s), repeats, storage)
                    assert baseline[1] == measured[1] == list(range(10)), (baseline[1], measured[1])
                    report(where, args.checkpoints, baseline, measured)
    finally:
        if server is not None:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
