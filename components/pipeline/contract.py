"""The stage contract's data: a request in, an outcome (result or failure) out, both as JSON.

Shared by the envelope (which runs a request) and whoever starts a stage in another interpreter (the
Airflow operator, the plain runner for a Keras model), so neither needs the other. See
``components.pipeline.envelope`` for the contract itself.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from typing import Any

from components.artifacts import from_jsonable, to_jsonable
from components.errors import ExportflowError
from components.model_storage import AccessToken
from components.pipeline.options import RunOptions


@dataclasses.dataclass(frozen=True)
class StageRequest:
    stage: str
    config_path: str
    options: RunOptions = dataclasses.field(default_factory=RunOptions)
    inputs: dict[str, Any] = dataclasses.field(default_factory=dict)
    credentials: AccessToken | None = None  # for another interpreter: the orchestrator's, as a token


@dataclasses.dataclass(frozen=True)
class StageFailure:
    """A failed stage as every runtime reports it: the error's type name, its message, and whether a
    retry may succeed."""

    error: str
    message: str
    retryable: bool

    @classmethod
    def of(cls, exc: BaseException) -> StageFailure:
        if isinstance(exc, ExportflowError):
            retryable = exc.retryable
        elif isinstance(exc, ValueError):  # an invalid request or run option: a retry fails the same way
            retryable = False
        else:  # unexpected: it may not happen again (memory, a flaky dependency); Airflow's retries decide
            retryable = True
        return cls(type(exc).__name__, str(exc), retryable)

    def __str__(self) -> str:
        return f"{self.error}: {self.message}"


@dataclasses.dataclass(frozen=True)
class StageOutcome:
    """What a stage in another interpreter writes to its result file: a result or a failure."""

    result: Any = None
    failure: StageFailure | None = None


def encode_request(request: StageRequest) -> str:
    return json.dumps(to_jsonable(request))


def decode_request(text: str) -> StageRequest:
    try:
        return from_jsonable(StageRequest, json.loads(text))
    except (TypeError, KeyError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a stage request ({exc}); expected the JSON of a StageRequest") from exc


def write_outcome(path: str, outcome: StageOutcome) -> None:
    """Atomically: a reader finds the whole outcome or no file."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".outcome-")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(to_jsonable(outcome), handle)
    os.replace(tmp, path)


def read_outcome(path: str) -> StageOutcome | None:
    """The outcome a child wrote, or None when it wrote none (it crashed first)."""
    try:
        with open(path, encoding="utf-8") as handle:
            return from_jsonable(StageOutcome, json.load(handle))
    except FileNotFoundError:
        return None
