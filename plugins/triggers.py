"""The trigger behind ``NewCheckpointSensor``: waits in the triggerer for a new complete checkpoint.

Triggers live here (``plugins/``, an installed package), never in ``dags/``: the triggerer imports
them by the class path ``serialize()`` returns. The trigger holds only the config file's path, its poll
interval and an absolute deadline, so a triggerer restart resumes it without extending the wait. Each
poll runs exportflow's discovery (listing + ledger, no pinning, no TensorFlow) in a worker thread, so
the triggerer's event loop never blocks on storage I/O; storage is built by the storage factory with
the model's Airflow connection, passed explicitly (the triggerer serves many models at once).

What it reports is a ``CheckpointEvent`` (a frozen dataclass), carried as the TriggerEvent's JSON
payload and rebuilt by the sensor: never a loose ``{"status": ..., "message": ...}`` dict.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

from airflow.triggers.base import BaseTrigger, TriggerEvent

Status = Literal["found", "waiting", "timeout", "error"]


@dataclasses.dataclass(frozen=True)
class CheckpointEvent:
    """What a look at the model dir found.

    ``found``: ``steps`` are new complete checkpoints a run would take; ``waiting``: nothing new yet
    (never sent, the trigger keeps polling); ``timeout``: the deadline passed; ``error``: a problem a
    retry cannot fix (a broken config, storage refusing access), in ``message``.
    """

    status: Status
    model: str
    steps: tuple[int, ...] = ()
    model_dir: str = ""
    message: str = ""

    def to_payload(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "steps": list(self.steps)}

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> CheckpointEvent:
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(payload) - fields
        if unknown or "status" not in payload:
            raise ValueError(f"not a CheckpointEvent payload: {payload!r}")
        return cls(**{**payload, "steps": tuple(payload.get("steps", ()))})


def check_for_new_checkpoints(config_path: str) -> CheckpointEvent:
    """One look at the model dir of the config at ``config_path`` (blocking I/O; no TensorFlow)."""
    from components.config import load_config
    from components.discovery.errors import ModelDirError
    from components.errors import ExportflowError
    from components.pipeline.stages import pending_steps
    from plugins.credentials import credentials_for

    try:
        config = load_config(config_path)
    except ExportflowError as exc:
        return CheckpointEvent("error", model="", message=str(exc))
    try:
        steps = pending_steps(config, credentials_for(config))
    except ModelDirError as exc:  # training has not written anything yet
        return CheckpointEvent("waiting", config.name, model_dir=config.model_dir, message=str(exc))
    except ExportflowError as exc:
        status: Status = "waiting" if exc.retryable else "error"
        return CheckpointEvent(
            status, config.name, model_dir=config.model_dir, message=f"{type(exc).__name__}: {exc}"
        )
    if not steps:
        message = f"no new complete checkpoint in {config.model_dir}"
        return CheckpointEvent("waiting", config.name, model_dir=config.model_dir, message=message)
    return CheckpointEvent(
        "found", config.name, tuple(steps), config.model_dir, f"new checkpoint steps {steps}"
    )


class NewCheckpointTrigger(BaseTrigger):
    """Poll every ``poll_interval`` seconds until a new complete checkpoint appears or ``deadline``
    (Unix time) passes; fires exactly one ``CheckpointEvent``: found, timeout or error."""

    def __init__(self, config_path: str, poll_interval: float, deadline: float) -> None:
        super().__init__()
        if poll_interval <= 0:
            raise ValueError(f"poll_interval must be positive, got {poll_interval}")
        self.config_path = config_path
        self.poll_interval = float(poll_interval)
        self.deadline = float(deadline)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"config_path": self.config_path, "poll_interval": self.poll_interval, "deadline": self.deadline},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        polls = 0
        while True:
            event = await asyncio.to_thread(check_for_new_checkpoints, self.config_path)
            polls += 1
            if event.status in ("found", "error"):
                self.log.info("%s after %d poll(s): %s", event.status, polls, event.message)
                yield TriggerEvent(event.to_payload())
                return
            remaining = self.deadline - time.time()
            if remaining <= 0:
                message = (
                    f"no new complete checkpoint before the deadline ({polls} polls); last: {event.message}"
                )
                yield TriggerEvent(
                    CheckpointEvent(
                        "timeout", event.model, model_dir=event.model_dir, message=message
                    ).to_payload()
                )
                return
            self.log.debug("poll %d: %s", polls, event.message)
            await asyncio.sleep(min(self.poll_interval, remaining))
