"""Publishing processes for the fault tests.

``python -m tests.support.publish_child '<json spec>'`` publishes once (used where the process needs its
own limits, e.g. ``fsize_limit``). ``python -m tests.support.publish_child --serve`` is a fork server:
it imports everything once (the GCS SDK alone costs seconds per process), then for each JSON spec line
on its stdin forks a worker that publishes it. ``ChildServer`` is the test side.

A spec names the destination, the export (an ExportArtifact as JSON) and at most one fault:

* ``pause_at: k`` — right after the k-th object is written (the lease counts as the first; see the
  protocol's ``PublishEvent`` kinds), the worker reports it and stops until it is killed: the parent
  chooses the kill point by protocol step, never by time;
* ``kill_after_bytes: n`` — SIGKILL itself once n bytes have been handed to the store (mid-file), through
  a Storage wrapper around the real back-end;
* ``fsize_limit: n`` — a file-size limit on the process (``RLIMIT_FSIZE``) with SIGXFSZ ignored, so a
  write beyond it fails with EFBIG as on a full disk.

On a publish error it prints ``{"error": <class name>, "message": ...}`` and exits 3; on success it
prints ``{"outcome": <the PushedModel>}`` and exits 0. The server reports JSON lines on its stdout:
``{"event": k, "pid", "kind", "uri"}`` per object, the worker's outcome, and ``{"exit": code}``
(``-9`` when killed).
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import select
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from components.artifacts import ExportArtifact
from components.errors import ExportflowError
from components.model_storage import destination_storage
from components.publish.executor import publish
from components.transfer.pool import Observer, PublishEvent
from tests.support.publishing import make_config, params_for


class KillingStorage:
    """Delegates to a real back-end; SIGKILLs the process once ``limit`` upload bytes went through it."""

    def __init__(self, inner: Any, limit: int) -> None:
        self._inner, self._limit, self._sent = inner, limit, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def upload_file(self, local_path: str, uri: str, **kwargs: Any) -> Any:
        outer = kwargs.get("progress")

        def progress(count: int) -> None:
            self._sent += count
            if self._sent >= self._limit:
                os.kill(os.getpid(), signal.SIGKILL)
            if outer is not None:
                outer(count)

        kwargs["progress"] = progress
        return self._inner.upload_file(local_path, uri, **kwargs)


def _emit(message: dict[str, Any]) -> None:
    """One JSON line straight to fd 1 (no Python buffer a fork could duplicate; atomic below 4 KiB)."""
    os.write(1, (json.dumps(message) + "\n").encode())


def main(spec: dict[str, Any], observer: Observer | None = None) -> int:
    config = make_config(spec["destination"], Path(spec["base_dir"]), **spec.get("destination_fields", {}))
    if "serving_fields" in spec:  # e.g. {"mode": "labels"}: the publish placement follows it
        config = dataclasses.replace(config, serving=dataclasses.replace(config.serving, **spec["serving_fields"]))
    export = ExportArtifact.from_json(spec["export"])
    storage = destination_storage(config.destination)
    if "kill_after_bytes" in spec:
        storage = KillingStorage(storage, spec["kill_after_bytes"])
    if "fsize_limit" in spec:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (spec["fsize_limit"], spec["fsize_limit"]))
    try:
        pushed = publish(params_for(config), export, storage=storage, observer=observer)
    except ExportflowError as exc:
        _emit({"error": type(exc).__name__, "message": str(exc)})
        return 3
    _emit({"outcome": json.loads(pushed.to_json())})
    return 0


def _worker(spec: dict[str, Any], hold: int) -> int:
    """Publish ``spec``, reporting every object; after the ``pause_at``-th, block on ``hold`` (a pipe the
    server never writes) until killed — or until the server is gone and the pipe closes."""
    os.environ.update(spec.get("env", {}))
    seen = 0

    def observer(event: PublishEvent) -> None:
        nonlocal seen
        seen += 1
        _emit({"event": seen, "pid": os.getpid(), "kind": event.kind, "uri": event.uri})
        if seen == spec.get("pause_at"):
            os.read(hold, 1)
            os._exit(4)  # the server died without killing us

    return main(spec, observer)


def serve() -> int:
    for line in iter(sys.stdin.readline, ""):
        spec = json.loads(line)
        hold, keep = os.pipe()
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            os.close(keep)
            code = 1
            try:
                code = _worker(spec, hold)
            finally:
                os._exit(code)
        os.close(hold)
        _, status = os.waitpid(pid, 0)
        os.close(keep)
        _emit({"exit": os.waitstatus_to_exitcode(status)})
    return 0


# ------------------------------------------------------------------------------------------ test side
@dataclasses.dataclass(frozen=True)
class ChildRun:
    events: list[dict[str, Any]]  # every object the worker reported, in order
    exit: int  # -9: killed
    result: dict[str, Any] | None  # {"outcome": ...} or {"error": ..., "message": ...}; None when killed


class ChildServer:
    """Starts ``--serve`` once; ``run`` publishes one spec in a fresh fork and SIGKILLs it at an event."""

    def __init__(self, env: dict[str, str], cwd: Path, timeout: float = 120.0) -> None:
        self.timeout = timeout
        self.process = subprocess.Popen(
            [sys.executable, "-W", "ignore", "-m", "tests.support.publish_child", "--serve"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=cwd, env=env, bufsize=0,
        )
        self._pending = b""

    def run(self, spec: dict[str, Any], kill_at: int | None = None) -> ChildRun:
        if kill_at is not None:
            spec = {**spec, "pause_at": kill_at}
        self.process.stdin.write((json.dumps(spec) + "\n").encode())  # type: ignore[union-attr]
        events: list[dict[str, Any]] = []
        result = None
        while True:
            message = self._next()
            if "event" in message:
                events.append(message)
                if message["event"] == kill_at:
                    os.kill(message["pid"], signal.SIGKILL)
            elif "exit" in message:
                return ChildRun(events, message["exit"], result)
            else:
                result = message

    def _next(self) -> dict[str, Any]:
        stream = self.process.stdout
        while b"\n" not in self._pending:
            ready, _, _ = select.select([stream], [], [], self.timeout)
            chunk = os.read(stream.fileno(), 65536) if ready else b""  # type: ignore[union-attr]
            if not chunk:
                raise RuntimeError(f"publish child server silent or gone (exit {self.process.poll()})")
            self._pending += chunk
        line, self._pending = self._pending.split(b"\n", 1)
        return json.loads(line)

    def close(self) -> None:
        """Stop the server; a worker still paused (a failed test) exits when the server's pipe closes."""
        self.process.stdin.close()  # type: ignore[union-attr]
        try:
            self.process.wait(timeout=10)  # at once, unless a worker is paused
        except subprocess.TimeoutExpired:
            self.process.kill()  # waiting on a paused worker: killing the server releases it
            self.process.wait(timeout=self.timeout)


if __name__ == "__main__":
    sys.exit(serve() if sys.argv[1:] == ["--serve"] else main(json.loads(sys.argv[1])))
