"""A deferrable sensor that waits for a new complete checkpoint of one model.

``NewCheckpointSensor(task_id=..., config_path=..., timeout=...)``:

* pokes once in the worker first — a checkpoint already waiting costs no trip through the triggerer;
* then defers to ``NewCheckpointTrigger`` (in the triggerer that ``airflow standalone`` starts), which
  polls every ``poll_interval`` seconds without holding a worker slot;
* ``timeout`` is required — a sensor that may wait forever is a bug — and is enforced twice: the
  trigger fires a timeout event at the deadline, and the deferral itself carries the timeout;
* returns the ``CheckpointEvent`` payload (``status``, ``model``, ``steps``, ``model_dir``,
  ``message``) as its XCom; a timeout raises ``AirflowSensorTimeout``, an error a retry cannot fix
  ``AirflowFailException``.

"New" is what the export DAG's discover task would take: complete, not handled for this model and
configuration per the ledger, chosen by the config's policy. With ``deferrable=False`` it is a classic
poking sensor on the same check.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import AirflowFailException, AirflowSensorTimeout

from plugins.triggers import CheckpointEvent, NewCheckpointTrigger, check_for_new_checkpoints


class NewCheckpointSensor(BaseSensorOperator):
    """Wait for a new complete checkpoint of the model configured at ``config_path``."""

    template_fields = ("config_path",)
    ui_color = "#fff4e5"

    def __init__(
        self,
        *,
        config_path: str,
        timeout: timedelta | float,
        poll_interval: timedelta | float = 60.0,
        deferrable: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poll_interval, timeout=timeout, **kwargs)
        self.config_path = config_path
        self.deferrable = deferrable

    def execute(self, context: Any) -> Any:
        event = check_for_new_checkpoints(self.config_path)  # poke once before deferring
        if event.status != "waiting":
            return self._finish(event)
        if not self.deferrable:
            return super().execute(context)
        self.log.info("%s; deferring for at most %.0f s", event.message, self.timeout)
        self.defer(
            trigger=NewCheckpointTrigger(self.config_path, self.poke_interval, time.time() + self.timeout),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def poke(self, context: Any) -> bool | PokeReturnValue:
        event = check_for_new_checkpoints(self.config_path)
        if event.status == "waiting":
            self.log.info("%s", event.message)
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._finish(event))

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, Any]:
        if event is None:
            raise AirflowFailException("the trigger fired without an event")
        return self._finish(CheckpointEvent.from_payload(event))

    def _finish(self, event: CheckpointEvent) -> dict[str, Any]:
        if event.status == "found":
            self.log.info("model %s: %s", event.model, event.message)
            return event.to_payload()
        if event.status == "timeout":
            raise AirflowSensorTimeout(f"model {event.model}: {event.message}")
        raise AirflowFailException(f"model {event.model or '?'}: {event.message}")


class WaitForCheckpointSensor(NewCheckpointSensor):
    """The export DAG's optional first task: waits for a new checkpoint unless the run chose one.

    A manual run that names a checkpoint or forces a rerun has work already; only open-ended runs
    (scheduled ones, or a trigger with the form's defaults) wait. Running out of time skips the run —
    no new checkpoint in the window is not an error — while a real error (a broken config, an
    unreadable model dir) still fails it.
    """

    def execute(self, context: Any) -> Any:
        params = context["params"]
        if params.get("checkpoint") is not None or params.get("force"):
            self.log.info("the run chose its checkpoints; not waiting for a new one")
            return None
        with _timeout_skips():
            return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, Any]:
        with _timeout_skips():
            return super().execute_complete(context, event)


@contextlib.contextmanager
def _timeout_skips() -> Iterator[None]:
    from airflow.sdk.exceptions import AirflowSkipException

    try:
        yield
    except AirflowSensorTimeout as exc:
        raise AirflowSkipException(f"no new checkpoint: {exc}") from exc
