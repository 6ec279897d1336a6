"""A publishing process for the fault tests: ``python -m tests.support.publish_child '<json spec>'``.

The spec names the destination, the export (an ExportArtifact as JSON) and at most one fault:

* ``kill_after_events: k`` — SIGKILL itself right after the k-th object is written (the lease counts as
  the first), through the publisher's observer seam;
* ``kill_after_bytes: n`` — SIGKILL itself once n bytes have been handed to the store (mid-file), through
  a Storage wrapper around the real back-end;
* ``fsize_limit: n`` — a file-size limit on the process (``RLIMIT_FSIZE``) with SIGXFSZ ignored, so a
  write beyond it fails with EFBIG as on a full disk.

On a publish error it prints ``{"error": <class name>, "message": ...}`` and exits 3; on success it
prints the PushedModel's JSON and exits 0.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
from pathlib import Path
from typing import Any

from components.artifacts import ExportArtifact
from components.errors import ExportflowError
from components.publish.executor import destination_storage, publish
from components.publish.transfer import PublishEvent
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


def main(spec: dict[str, Any]) -> int:
    config = make_config(spec["destination"], Path(spec["base_dir"]), **spec.get("destination_fields", {}))
    export = ExportArtifact.from_json(spec["export"])
    storage = destination_storage(config.destination)
    observer = None
    if "kill_after_events" in spec:
        seen = 0

        def observer(event: PublishEvent) -> None:
            nonlocal seen
            seen += 1
            if seen >= spec["kill_after_events"]:
                os.kill(os.getpid(), signal.SIGKILL)

    if "kill_after_bytes" in spec:
        storage = KillingStorage(storage, spec["kill_after_bytes"])
    if "fsize_limit" in spec:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (spec["fsize_limit"], spec["fsize_limit"]))
    try:
        pushed = publish(params_for(config), export, storage=storage, observer=observer)
    except ExportflowError as exc:
        print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
        return 3
    print(pushed.to_json())
    return 0


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[1])))
