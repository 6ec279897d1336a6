"""Run one stage in another interpreter through the envelope's contract, from a plain (non-Airflow) run.

The same contract as the Airflow operator's external runtime (``plugins/operators.py``): ``<python> -m
components.stage_entry --result FILE``, the request on stdin, the outcome in the result file; the child's
stdout and stderr are passed through as logs. The plain runner uses it for a Keras model, whose stages
need the Keras runtime's interpreter (TF 2.21) while the runner lives in the Estimator runtime.
"""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
from typing import Any

from components.errors import ExportflowError, RetryableError
from components.pipeline.contract import StageFailure, StageRequest, encode_request, read_outcome

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
    with tempfile.TemporaryDirectory(prefix="exportflow-stage-") as folder:
        result_path = os.path.join(folder, "outcome.json")
        process = subprocess.Popen(
            [python, "-m", "components.stage_entry", "--result", result_path],
            stdin=subprocess.PIPE,
            text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")},
        )
        try:
            process.communicate(encode_request(request))
        except BaseException:  # SIGTERM in the runner, Ctrl-C: let the stage release its leases
            _stop(process)
            raise
        outcome = read_outcome(result_path)
    if outcome is None:
        raise ExternalStageCrashed(
            f"stage {request.stage} exited with {process.returncode} in {python} without an outcome"
        )
    if outcome.failure is not None:
        raise ExternalStageFailed(outcome.failure)
    return outcome.result


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
