"""How long a GCS publish leaves numbered objects without ``saved_model.pb`` (the protocol's window).

GCS has no rename, so TF Serving's file-system source can see ``<base>/<version>/`` objects before the
graph file arrives. Uploads go to ``.exportflow/building/`` first; the window is only the server-side
copies into place, the verify listing and the graph file. Measured per publish from the publisher's
own events, against the emulator in its own process behind our delaying proxy:

* before (uploads straight into the version prefix, as the protocol did): the upload phase plus the
  graph file — estimated from the same run as (end of uploads - lease) + (graph file - end of copies);
* ours: from the end of the uploads to the graph file (copies into place, graph file).

    uv run python bench/bench_publish_window.py [--rtt-ms 0,20,50,100] [--mib 256] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_publish import (
    BUCKET,
    FILES,
    MiB,
    config_for,
    delaying_proxy,
    emulator,
    export_artifact,
    fresh_clients,
    wipe,
)


def make_export(folder: Path, total: int) -> Path:
    """``FILES`` files: a 1 MiB graph, an index, and equal variable shards making up ``total`` bytes."""
    import os

    shards = FILES - 2
    files = {"saved_model.pb": MiB, "variables/variables.index": MiB}
    files.update({f"variables/variables.data-{i:05d}-of-{shards:05d}": (total - 2 * MiB) // shards for i in range(shards)})
    for relative, size in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))
    return folder


def one_publish(destination: str, export: object, base: Path) -> tuple[float, float, float]:
    """(total, window before, window ours) in seconds, from the observer's timestamps."""
    from components.publish.executor import publish
    from components.publish.spec import PublishParams

    config = config_for(destination, base)
    stamps: list[tuple[float, str, str]] = []
    start = time.perf_counter()
    publish(PublishParams(config, config.strategies[0]), export,
            observer=lambda e: stamps.append((time.perf_counter(), e.kind, e.uri)))  # type: ignore[arg-type]
    total = time.perf_counter() - start
    lease = next(t for t, kind, _ in stamps if kind == "lease")
    uploads_done = max(t for t, kind, uri in stamps if kind == "uploaded" and "/.exportflow/building/" in uri)
    placed = max(t for t, kind, uri in stamps if kind == "copied" and "/.exportflow/" not in uri)
    graph = next(t for t, _, uri in stamps if uri.endswith("/saved_model.pb") and "/.exportflow/" not in uri)
    return total, (uploads_done - lease) + (graph - placed), graph - uploads_done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rtt-ms", default="0,20,50,100", help="delays per request, comma-separated")
    parser.add_argument("--mib", type=int, default=256, help="export size")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-window-") as tmp:
        base = Path(tmp)
        export = export_artifact(make_export(base / "export", args.mib * MiB))
        print(f"{FILES} files, {args.mib} MiB, median of {args.runs} publishes of a new version")
        print(f"{'rtt':>6} {'publish':>9} {'window before':>14} {'window ours':>12} {'ratio':>7}")
        with emulator() as (address, _pid):
            import os

            for rtt in [float(r) for r in args.rtt_ms.split(",") if r]:
                with delaying_proxy(address, rtt) as proxied:
                    os.environ["STORAGE_EMULATOR_HOST"] = f"http://{proxied}"
                    rows = []
                    for run in range(args.runs):
                        wipe(address)
                        fresh_clients()
                        rows.append(one_publish(f"gs://{BUCKET}/w{run}", export, base))
                total, before, ours = (statistics.median(column) for column in zip(*rows, strict=True))
                print(f"{rtt:>4.0f}ms {total:>8.2f}s {before:>13.2f}s {ours:>11.2f}s {before / ours:>6.1f}x")


if __name__ == "__main__":
    main()
