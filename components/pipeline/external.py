"""Run one stage in another interpreter through the envelope's contract, from a plain (non-Airflow) run.

The same contract as the Airflow operator's external runtime (``plugins/operators.py``): ``<python> -m
components.stage_entry --result FILE``, the request on stdin, the outcome in the result file; the child's
stdout and stderr are passed through as logs. The plain runner uses it for a Keras model, whose stages
need the Keras runtime's interpreter (TF 2.21) while the runner lives in the Estimator runtime.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import tempfile
import threading
from collections.abc import Mapping
from typing import Any

from components.errors import ExportflowError, RetryableError
from components.pipeline.contract import (
    StageFailure,
    StageOutcome,
    StageRequest,
    encode_request,
    read_outcome,
)
from components.tf_logs import log_lines

log = logging.getLogger(__name__)
STOP_GRACE_S = 30.0  # how long a stopped stage may take to release its leases before SIGKILL


class ExternalStageFailed(ExportflowError):
    """A stage in the other interpreter failed; the message is its error (type and text)."""

    def __init__(self, failure: StageFailure) -> None:
        super().__init__(str(failure))
        self.failure = failure
        self.retryable = failure.retryable


class ExternalStageCrashed(RetryableError):
    """The other interpreter ended without writing an outcome (killed, out of memory, not a Python)."""


def call_external(python: str, request: StageRequest) -> Any:
    """The stage's result; raises ``ExternalStageFailed`` with the child's failure."""
    if not os.path.exists(python):
        raise ExternalStageFailed(
            StageFailure(
                "FileNotFoundError",
                f"the interpreter {python} for stage {request.stage} does not exist; build the Keras runtime "
                "(`uv run --locked exportflow keras-env`) or fix airflow.python",
                retryable=False,
            )
        )
    quiet_tf = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}
    returncode, outcome = run_stage_process(python, request, env=quiet_tf)
    if outcome is None:
        raise ExternalStageCrashed(f"stage {request.stage} exited with {returncode} in {python} without an outcome")
    if outcome.failure is not None:
        raise ExternalStageFailed(outcome.failure)
    return outcome.result


def run_stage_process(
    python: str,
    request: StageRequest,
    *,
    log: logging.Logger | None = None,
    prefix: str = "",
    env: Mapping[str, str] | None = None,
) -> tuple[int, StageOutcome | None]:
    """Run ``request`` in ``python`` by the envelope's contract; its exit code and outcome (None: it wrote
    none). The one place that starts a stage's child, for the plain runner and the Airflow operator alike.

    The request goes on stdin only (it may carry an access token: never argv). With ``log``, the child's
    stdout and stderr become log lines under ``prefix`` (TF's chatter at its own level); without, they pass
    through. Any exception while the child runs (SIGTERM turned into one, Ctrl-C) stops it with
    ``stop_child`` first, so the stage releases its leases.
    """
    piped = subprocess.PIPE if log is not None else None
    with tempfile.TemporaryDirectory(prefix="exportflow-stage-") as folder:
        result_path = os.path.join(folder, "outcome.json")
        process = subprocess.Popen(
            [python, "-m", "components.stage_entry", "--result", result_path],
            stdin=subprocess.PIPE,
            stdout=piped,
            stderr=piped,
            text=True,
            env=None if env is None else dict(env),
        )
        printed = None
        try:  # from the moment the child exists: a stop arriving before it is fed must reach it too
            if log is not None:
                printed = threading.Thread(target=log_lines, args=(process.stdout, log, prefix), daemon=True)
                printed.start()
            with contextlib.suppress(BrokenPipeError):  # it died first: told by its missing outcome
                process.stdin.write(encode_request(request))
                process.stdin.close()
            if log is not None:
                log_lines(process.stderr, log, prefix)
            returncode = process.wait()
        except BaseException:
            stop_child(process)
            raise
        if printed is not None:
            printed.join()
        return returncode, read_outcome(result_path)


def stop_child(process: subprocess.Popen[str], grace: float = STOP_GRACE_S) -> None:
    """SIGTERM first, so the stage in the child releases its leases (it turns SIGTERM into an exception);
    SIGKILL only when it has not ended within ``grace`` seconds (the next discovery reaps what is left)."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
