"""A pipeline process for the lease tests: ``python -m tests.support.lease_child MODE CONFIG [STEP]``.

* ``run``: the plain runner for one step; on an error prints ``{"error": <class>, "message": ...}``
  (``RunTerminated`` included: SIGTERM) and exits 3, else prints ``{"published": n}``;
* ``stages``: the same, stage by stage as Airflow's tasks call them (no runner around them);
* ``pin-then-die``: discovery pins the step for this process, then the process SIGKILLs itself, as
  an OOM kill would: no exception, no cleanup.

``blocking_input_fn`` is an eval input_fn for the SIGTERM test: it tells the parent evaluation has
started (one byte on ``ready_fd``), then blocks reading ``block_fd``, which the parent never writes.
"""

from __future__ import annotations

import json
import os
import signal
import sys

from components.config import load_config
from components.discovery import lease
from components.errors import ExportflowError
from components.pipeline.options import RunOptions
from components.pipeline.runner import RunTerminated, run_pipeline
from components.pipeline.stages import (
    ExportDeclined,
    discover_stage,
    evaluate_stage,
    export_stage,
    publish_stage,
    warmup_stage,
)


def blocking_input_fn(ready_fd: int, block_fd: int) -> None:
    os.write(ready_fd, b"r")
    os.read(block_fd, 1)  # SIGTERM's handler raises here
    raise AssertionError("the parent closed block_fd before sending SIGTERM")


def main(mode: str, config_path: str, step: int) -> int:
    config = load_config(config_path)
    options = RunOptions(checkpoint=step)
    if mode == "pin-then-die":
        discover_stage(config, options, owner=lease.LeaseOwner.this_process())
        os.kill(os.getpid(), signal.SIGKILL)
    try:
        if mode == "stages":
            published = 0
            for checkpoint in discover_stage(config, options):
                evaluation = evaluate_stage(config, checkpoint)
                for strategy in config.strategies:
                    exported = export_stage(config, strategy.name, evaluation, options)
                    if not isinstance(exported, ExportDeclined):
                        publish_stage(config, warmup_stage(config, exported), options)
                        published += 1
        else:
            published = len(run_pipeline(config, options).published)
    except (ExportflowError, RunTerminated) as exc:  # RunTerminated is a BaseException, like Airflow's
        print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
        return 3
    print(json.dumps({"published": published}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 300))
