"""Publishing a 64-file, 1 GiB export: GCS (emulator) and local disk, baselines and ours in one run.

GCS, against gcp-storage-emulator running as its own process (in memory, on loopback):

* baseline: a sequential loop of ``blob.upload_from_filename`` (SDK defaults) — what a script does;
* reference: the SDK's own ``transfer_manager.upload_many_from_filenames`` (8 threads);
* reference at the same guarantee: ``transfer_manager`` into a hidden prefix, then copies into place
  and deletes on 8 threads (what GCS, lacking a prefix rename, needs to keep the window small);
* ours: ``publish`` — manifest check, lease, 8 parallel verified transfers, graph file last, marker;
  under ``serving.mode: latest`` (built under ``.exportflow/building``, then copied into place);
* ours under ``serving.mode: labels``: the same, written straight into the version folder (direct
  placement, protocol.py "Placement": hosts load only versions listed after their marker);
* ours (labels) again on the same version: bytes moved (goal 0) and time;
* the same through a loopback proxy that delays every request by each of ``--rtt-ms`` (a crude
  model of a far server: the emulator answers on loopback in well under a millisecond, real GCS does not).

For each contender the bench also prints its *round trips in series*: the most requests of one run that
follow each other without overlapping (the longest chain of requests laid end to end — what latency
multiplies), counted at two seams: our ``Storage`` calls (ours only) and the HTTP requests of the SDK's
session (all three); and the CPU the emulator spent serving each contender (the emulator serves one
request at a time, so that CPU is a floor under the contender's time).

Local disk (export and destination on one filesystem; ``sync`` before every run; median of runs):

* ``cp -r`` vs ours copying without flushing (``hard_links: false, fsync: false``: copy in the kernel,
  CRC32C of the copy read back, rename) — the like-for-like pair: neither waits for the disk;
* ``cp -r && sync`` vs ours copying with the default ``fsync: true`` (each file flushed in its worker
  before it appears, overlapping the other copies) — the pair that both survive a machine crash;
* ours by reference (``hard_links: true``, the default): hard links, O(files), no bytes copied.

    uv run python bench/bench_publish.py [--rtt-ms 20,50,100] [--runs 3] [--only local|gcs]

``--rtt-ms 0`` is the emulator without the proxy.

The emulator is one Python process serving one request at a time (``http.server.HTTPServer``, not a
threading server) and computes CRC32C and MD5 of every upload in Python-called C: parallel clients
queue at its socket, so no client can go much faster than the sequential loop there. The ratio that
matters for real GCS is the one with latency, where parallel requests overlap their round trips.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MiB = 1024 * 1024
FILES = 64
TOTAL = 1024 * MiB
BUCKET = "bench"


def make_export(folder: Path) -> Path:
    """A SavedModel-shaped folder: graph, index, 60 variable shards, two assets — 64 files, 1 GiB."""
    shards = FILES - 4
    small = {"saved_model.pb": 2 * MiB, "variables/variables.index": 1 * MiB, "assets/vocab.txt": 1 * MiB,
             "assets.extra/tf_serving_warmup_requests": 1 * MiB}
    shard_size = (TOTAL - sum(small.values())) // shards
    files = {**small, **{f"variables/variables.data-{i:05d}-of-{shards:05d}": shard_size for i in range(shards)}}
    for relative, size in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            handle.writelines(os.urandom(MiB) for _ in range(size // MiB))
            handle.write(os.urandom(size % MiB))
    return folder


def config_for(destination: str, base: Path, serving: dict[str, Any] | None = None, **fields: Any) -> Any:
    from components.config.loader import parse_config

    return parse_config(
        {
            "name": "bench", "model_dir": str(base / "model"), "model_fn": "examples.model:model_fn",
            "receivers": {"predict": "examples.model:serving_input_receiver_fn"},
            "destination": {"uri": destination, **fields},
            "strategies": [{"name": "all_modes", "kind": "all_modes"}],
            **({"serving": serving} if serving else {}),
        },
        base_dir=base,
    )


def export_artifact(folder: Path) -> Any:
    from components.artifacts import ExportArtifact

    return ExportArtifact(uri=str(folder), model_name="bench", strategy="all_modes", version="1", step=1,
                          checkpoint_uri=str(folder.parent / "model" / "model.ckpt-1"))


def publish_to(
    destination: str, export: Any, base: Path, trips: Trips | None = None, serving: dict[str, Any] | None = None, **fields: Any
) -> Any:
    """Ours; with ``trips``, through the Storage seam and HTTP session counted (GCS); ``serving``: the
    config's serving section (``{"mode": "labels"}`` publishes with direct placement)."""
    from components.model_storage import destination_storage
    from components.publish.executor import publish
    from components.publish.spec import PublishParams

    config = config_for(destination, base, serving, **fields)
    storage = None
    if trips is not None:
        storage = destination_storage(config.destination)
        count_http(storage.client, trips.http)  # type: ignore[attr-defined]
        storage = CountingStorage(storage, trips.calls)
    return publish(PublishParams(config, config.strategies[0]), export, storage=storage)  # type: ignore[arg-type]



def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result



# ------------------------------------------------------------------------------------ round trips
class RoundTrips:
    """The calls of one run as (start, end) times; ``in_series`` is the longest chain of calls laid end to
    end (each starting after the previous one ended): the round trips whose latency adds up. It is the
    classic interval-scheduling maximum, found greedily by earliest end."""

    def __init__(self) -> None:
        self._spans: list[tuple[float, float]] = []
        self._lock = threading.Lock()

    def add(self, start: float, end: float) -> None:
        with self._lock:
            self._spans.append((start, end))

    @property
    def total(self) -> int:
        return len(self._spans)

    @property
    def in_series(self) -> int:
        count, free_at = 0, float("-inf")
        for start, end in sorted(self._spans, key=lambda span: span[1]):
            if start >= free_at:
                count, free_at = count + 1, end
        return count


@dataclasses.dataclass
class Trips:
    """Round trips of one run at both seams."""

    http: RoundTrips = dataclasses.field(default_factory=RoundTrips)
    calls: RoundTrips = dataclasses.field(default_factory=RoundTrips)

def count_http(client: Any, trips: RoundTrips) -> Any:
    """Record every HTTP request the SDK client's session sends (a bench-only instrument)."""
    session = client._http
    send = session.request

    @functools.wraps(send)
    def request(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return send(*args, **kwargs)
        finally:
            trips.add(start, time.perf_counter())

    session.request = request
    return client


class CountingStorage:
    """Our ``Storage`` seam with every call timed into ``trips`` (listings are read whole inside the call)."""

    def __init__(self, inner: Any, trips: RoundTrips) -> None:
        self._inner, self._trips = inner, trips

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if not callable(value) or name in ("join", "sync"):  # no request: a path, and a no-op on GCS
            return value

        @functools.wraps(value)
        def timed_call(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                result = value(*args, **kwargs)
                return iter(list(result)) if name == "list" else result
            finally:
                self._trips.add(start, time.perf_counter())

        return timed_call

# -------------------------------------------------------------------------------------------- GCS
@contextlib.contextmanager
def emulator() -> Iterator[tuple[str, int]]:
    from tests.conftest import free_port

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-W", "ignore", "-m", "gcp_storage_emulator", "start", "--host", "127.0.0.1",
         "--port", str(port), "--in-memory", "--default-bucket", BUCKET, "-q"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"http://{address}/", timeout=1).read()
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("the GCS emulator did not start") from None
            time.sleep(0.1)  # polling a process we started, with a deadline
    try:
        yield address, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


def wipe(address: str) -> None:
    urllib.request.urlopen(f"http://{address}/wipe?keep-buckets=true", timeout=60).read()


def fresh_clients() -> None:
    from components.storage import registry

    registry._instances.clear()


def sdk_bucket(trips: Trips | None) -> Any:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(project="bench", credentials=AnonymousCredentials())
    return (count_http(client, trips.http) if trips is not None else client).bucket(BUCKET)


def sequential_sdk(export: Path, prefix: str, trips: Trips | None = None) -> float:
    bucket = sdk_bucket(trips)
    files = sorted(p for p in export.rglob("*") if p.is_file())
    start = time.perf_counter()
    for path in files:
        bucket.blob(f"{prefix}/{path.relative_to(export)}").upload_from_filename(str(path))
    return time.perf_counter() - start


def transfer_manager_sdk(export: Path, prefix: str, trips: Trips | None = None) -> float:
    from google.cloud.storage import transfer_manager

    bucket = sdk_bucket(trips)
    names = [str(p.relative_to(export)) for p in sorted(export.rglob("*")) if p.is_file()]
    start = time.perf_counter()
    results = transfer_manager.upload_many_from_filenames(
        bucket, names, source_directory=str(export), blob_name_prefix=f"{prefix}/", max_workers=8,
        worker_type=transfer_manager.THREAD,
    )
    elapsed = time.perf_counter() - start
    failures = [r for r in results if isinstance(r, Exception)]
    if failures:
        raise failures[0]
    return elapsed


def transfer_manager_then_place(export: Path, prefix: str, trips: Trips | None = None) -> float:
    """The SDK doing what the window guarantee needs on GCS (no prefix rename): ``transfer_manager`` into a
    hidden prefix, then every object copied into place server-side and its hidden copy deleted, on 8
    threads each, graph file last — no lock, no verification, no marker. It prices that guarantee on
    this store, apart from the rest of our protocol."""
    from concurrent.futures import ThreadPoolExecutor

    from google.cloud.storage import transfer_manager

    bucket = sdk_bucket(trips)
    names = [str(p.relative_to(export)) for p in sorted(export.rglob("*")) if p.is_file()]
    data = [n for n in names if n != "saved_model.pb"]
    start = time.perf_counter()
    results = transfer_manager.upload_many_from_filenames(
        bucket, data, source_directory=str(export), blob_name_prefix=f"{prefix}/.building/", max_workers=8,
        worker_type=transfer_manager.THREAD,
    )
    failures = [r for r in results if isinstance(r, Exception)]
    if failures:
        raise failures[0]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda n: bucket.copy_blob(bucket.blob(f"{prefix}/.building/{n}"), bucket, f"{prefix}/1/{n}"), data))
        bucket.blob(f"{prefix}/1/saved_model.pb").upload_from_filename(str(export / "saved_model.pb"))
        list(pool.map(lambda n: bucket.blob(f"{prefix}/.building/{n}").delete(), data))
    return time.perf_counter() - start


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def gcs_rows(export: Path, base: Path, address: str, label: str, emulator_pid: int, runs: int) -> list[tuple[str, str]]:
    """Each contender ``runs`` times, interleaved (seq, tm, ours, seq, ...) so drift hits all alike; medians."""
    os.environ["STORAGE_EMULATOR_HOST"] = f"http://{address}"
    fresh_clients()
    wipe(address)
    transfer_manager_sdk(export, "warm-up")  # untimed: the emulator's first gigabyte also pays for its memory
    contenders: dict[str, Callable[[Trips], Any]] = {
        "seq": lambda trips: sequential_sdk(export, "seq", trips),
        "tm": lambda trips: transfer_manager_sdk(export, "tm", trips),
        "tm+place": lambda trips: transfer_manager_then_place(export, "tmp", trips),
        "ours": lambda trips: publish_to(f"gs://{BUCKET}/models", export_artifact(export), base, trips),
        "ours-labels": lambda trips: publish_to(
            f"gs://{BUCKET}/labels", export_artifact(export), base, trips, serving={"mode": "labels"}
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in contenders}
    busy: dict[str, list[float]] = {name: [] for name in contenders}
    http: dict[str, list[int]] = {name: [] for name in contenders}
    calls: dict[str, list[int]] = {"ours": [], "ours-labels": []}
    for _ in range(runs):
        for name, action in contenders.items():
            wipe(address)
            fresh_clients()
            trips = Trips()
            before = cpu_seconds(emulator_pid)
            elapsed, result = timed(lambda: action(trips))  # noqa: B023 - called at once
            busy[name].append(cpu_seconds(emulator_pid) - before)
            times[name].append(elapsed)
            http[name].append(trips.http.in_series)
            if name in calls:
                assert result.bytes_moved >= TOTAL
                calls[name].append(trips.calls.in_series)
    again, repeat = timed(lambda: contenders["ours-labels"](Trips()))  # it ran last: its version is still there
    wipe(address)
    sequential, manager, placing, ours, direct = (statistics.median(times[name]) for name in contenders)
    cpu = {name: statistics.median(b) for name, b in busy.items()}
    series = {name: statistics.median(h) for name, h in http.items()}
    spread = "; ".join(f"{name} {min(t):.2f}-{max(t):.2f}" for name, t in times.items())
    return [
        (f"{label}: sequential upload_from_filename", f"{sequential:7.2f} s  {TOTAL / MiB / sequential:7.1f} MiB/s"),
        (f"{label}: SDK transfer_manager, 8 threads", f"{manager:7.2f} s  ratio vs sequential {sequential / manager:5.2f}x"),
        (f"{label}: SDK transfer_manager + copy into place", f"{placing:7.2f} s  ratio vs sequential {sequential / placing:5.2f}x"),
        (f"{label}: ours, mode latest (building + copy into place)",
         (f"{ours:7.2f} s  ratio vs sequential {sequential / ours:5.2f}x (goal >= 3x), vs tm {manager / ours:5.2f}x "
          f"(goal >= 1x), vs tm + placing {placing / ours:5.2f}x")),
        (f"{label}: ours, mode labels (direct into place)",
         (f"{direct:7.2f} s  ratio vs sequential {sequential / direct:5.2f}x (goal >= 3x), vs tm {manager / direct:5.2f}x "
          f"(goal >= 1x), vs ours latest {ours / direct:5.2f}x")),
        (f"{label}: range over {runs} runs", spread),
        (f"{label}: HTTP requests in series (median)", "; ".join(f"{n} {v:.0f}" for n, v in series.items())),
        *(
            (f"{label}: {name}, Storage calls in series (median)", f"{statistics.median(c):.0f} (runs: {', '.join(map(str, c))})")
            for name, c in calls.items()
        ),
        # The emulator serves one request at a time: the CPU it spends on a contender is a floor under its time.
        (f"{label}: emulator CPU per contender (median)", "; ".join(f"{n} {v:.2f} s" for n, v in cpu.items())),
        (f"{label}: ours (labels), same version again", f"{again:7.2f} s  bytes moved {repeat.bytes_moved} (goal 0), already published: {repeat.already_published}"),
    ]


@contextlib.contextmanager
def delaying_proxy(address: str, milliseconds: float) -> Iterator[str]:
    """Our loopback fault proxy in its own process (so it takes no CPU from the client), delaying
    every request by ``milliseconds`` before forwarding it."""
    process = subprocess.Popen(
        [sys.executable, "-W", "ignore", "-m", "tests.support.faultproxy", address, "--delay-ms", str(milliseconds)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )
    try:
        yield process.stdout.readline().strip()  # type: ignore[union-attr]
    finally:
        process.stdin.close()  # type: ignore[union-attr]
        process.wait(timeout=60)


# ------------------------------------------------------------------------------------------ local
def median_of(runs: int, prepare: Callable[[], None], action: Callable[[], Any]) -> float:
    times = []
    for _ in range(runs):
        prepare()
        subprocess.run(["sync"], check=True)
        times.append(timed(action)[0])
    return statistics.median(times)


def local_rows(export: Path, base: Path, runs: int) -> list[tuple[str, str]]:
    target = base / "local"

    def clear() -> None:
        shutil.rmtree(target, ignore_errors=True)

    cp = median_of(runs, clear, lambda: subprocess.run(["cp", "-r", str(export), str(target)], check=True))
    cp_sync = median_of(runs, clear, lambda: subprocess.run(["sh", "-c", f"cp -r '{export}' '{target}' && sync"], check=True))
    unflushed = median_of(runs, clear, lambda: publish_to(str(target), export_artifact(export), base, hard_links=False, fsync=False))
    copying = median_of(runs, clear, lambda: publish_to(str(target), export_artifact(export), base, hard_links=False))
    linking = median_of(runs, clear, lambda: publish_to(str(target), export_artifact(export), base, hard_links=True))
    pushed = publish_to(str(target), export_artifact(export), base, hard_links=True)
    same_inode = os.stat(export / "saved_model.pb").st_ino == os.stat(Path(pushed.uri) / "saved_model.pb").st_ino
    clear()
    return [
        ("local: cp -r", f"{cp:7.2f} s"),
        ("local: cp -r && sync", f"{cp_sync:7.2f} s"),
        ("local: ours copying, fsync: false (kernel copy, crc32c of the copy)", f"{unflushed:7.2f} s  speed vs cp -r {cp / unflushed:5.2f}x (goal >= 0.8x)"),
        ("local: ours copying, fsync: true (+ every file flushed to disk)", f"{copying:7.2f} s  speed vs cp -r && sync {cp_sync / copying:5.2f}x, vs cp -r {cp / copying:5.2f}x"),
        ("local: ours by reference (hard links)", f"{linking:7.3f} s  bytes copied {pushed.bytes_moved}, same inode {same_inode}, speed vs cp -r {cp / linking:5.0f}x"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rtt-ms", default="20,50,100", help="per-request delays, comma-separated (0: no proxy)")
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--only", choices=("local", "gcs"), help="run one half")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-publish-", dir=os.environ.get("BENCH_TMP")) as tmp:
        base = Path(tmp)
        print(f"making a {FILES}-file, {TOTAL // MiB} MiB export in {base} ...", flush=True)
        export = make_export(base / "export")
        from components.publish.executor import prepare_sources
        from components.publish.spec import PublishParams

        config = config_for(str(base / "unused"), base)
        manifest_time, _ = timed(lambda: prepare_sources(PublishParams(config, config.strategies[0]), export_artifact(export)))
        rows = [("manifest (size + crc32c of every file, once per export)", f"{manifest_time:7.2f} s")]
        if args.only in (None, "local"):
            rows += local_rows(export, base, args.runs)
        if args.only in (None, "gcs"):
            with emulator() as (address, pid):
                for rtt in [float(r) for r in args.rtt_ms.split(",") if r.strip()]:
                    if rtt == 0:
                        rows += gcs_rows(export, base, address, "gcs emulator", pid, args.runs)
                        continue
                    with delaying_proxy(address, rtt) as proxied:
                        rows += gcs_rows(export, base, proxied, f"emulator + {rtt:.0f} ms/request", pid, args.runs)
    width = max(len(name) for name, _ in rows)
    print()
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
