"""The stage operator (one class for every stage) and the report operator.

A ``StageOperator`` names its stage and its inputs; the pipeline's envelope
(``components.pipeline.envelope``) does the work, in this task process or, with ``airflow.runtime:
external_python``, in a separate interpreter (``python -m components.stage_entry``) that receives only
its request and answers through a result file. Either way a failure maps one way
(``StageFailure.of``): an error a retry cannot fix (bad config, corrupt checkpoint, invalid run option)
fails the task at once; anything else is retried with backoff.

Config (trusted) comes from the file the DAG factory named; run options come from the run's params
(validated against the form's schema) and, for asset-triggered runs, from every triggering event.
Artifacts travel as small JSON dicts through XCom. Storage and the ledger come from the storage factory
with the model's Airflow connection (``plugins/credentials.py``).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

from airflow.sdk import BaseOperator

# Each stage's inputs (the operator's keyword arguments, mapped over by the DAG); the order is the label's.
STAGE_INPUTS: dict[str, tuple[str, ...]] = {
    "discover": (),
    "evaluate": ("checkpoint",),
    "export": ("strategy", "evaluation"),
    "warmup": ("export",),
    "publish": ("export",),
}
TF_STAGES = frozenset({"evaluate", "export", "warmup"})  # import TensorFlow (its start-up lines logged)
RECENT_EVENTS = 500  # asset events read back by an asset-triggered discover


class StageFailed(Exception):
    """A stage failed with an error a retry may fix; the message names the original error."""


def failure_exception(failure: Any) -> Exception:
    """The exception a task raises for a ``StageFailure``: permanent fails at once, else Airflow retries."""
    from airflow.sdk.exceptions import AirflowFailException

    return StageFailed(str(failure)) if failure.retryable else AirflowFailException(str(failure))


@contextlib.contextmanager
def failures_mapped() -> Iterator[None]:
    """Map any exception but Airflow's own by ``StageFailure.of``, as the external runtime does."""
    from airflow.sdk.exceptions import AirflowException

    from components.pipeline.envelope import StageFailure

    try:
        yield
    except (AirflowException, StageFailed):
        raise
    except Exception as exc:
        raise failure_exception(StageFailure.of(exc)) from exc


class StageOperator(BaseOperator):
    """Run one exportflow stage of the model configured at ``config_path``.

    ``stage`` is one of ``STAGE_INPUTS``; the stage's inputs are keyword arguments (``checkpoint``,
    ``strategy``, ``evaluation``, ``export``) so the DAG can map over them. Warmup and publish of a
    strategy that declined upstream (``export=None``) have nothing to do.
    """

    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        stage: str,
        config_path: str,
        checkpoint: dict[str, Any] | None = None,
        strategy: str | None = None,
        evaluation: dict[str, Any] | None = None,
        export: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if stage not in STAGE_INPUTS:
            raise ValueError(f"unknown stage {stage!r}; stages: {sorted(STAGE_INPUTS)}")
        self.stage = stage
        self.config_path = config_path
        given = {"checkpoint": checkpoint, "strategy": strategy, "evaluation": evaluation, "export": export}
        self.inputs = {name: given[name] for name in STAGE_INPUTS[stage]}

    def label(self) -> str:
        """Shown as the mapped task instance's name (``map_index_template``)."""
        if self.stage == "evaluate":
            return f"step {self.inputs['checkpoint'].get('step')}"
        if self.stage == "export":
            return f"{self.inputs['strategy']} @ step {self.inputs['evaluation']['checkpoint']['step']}"
        if self.stage in ("warmup", "publish"):
            export = self.inputs["export"]
            return "nothing exported" if export is None else f"{export['strategy']} @ step {export['step']}"
        return ""

    def execute(self, context: Any) -> Any:
        from components.config import load_config
        from components.pipeline.envelope import StageRequest
        from plugins.credentials import credentials_for

        context["exportflow_label"] = self.label()
        if "export" in self.inputs and self.inputs["export"] is None:
            self.log.info("the strategy exported nothing upstream; nothing to %s", self.stage)
            return None
        with failures_mapped():
            config = load_config(self.config_path)
            credentials = credentials_for(config)
            request = StageRequest(self.stage, self.config_path, self.run_options(context, config), self.inputs)
            if config.airflow.runtime == "external_python":
                outcome = self._call_external(config.airflow.python, request, credentials)
                if outcome.failure is not None:
                    raise failure_exception(outcome.failure)
                return outcome.result
            return self._call_in_process(request, credentials)

    def run_options(self, context: Any, config: Any) -> Any:
        from plugins.params import refuse_unknown_params, run_options_from_params

        if self.stage == "discover":
            refuse_unknown_params(context["params"])
        options = run_options_from_params(context["params"], [s.name for s in config.strategies])
        options = dataclasses.replace(options, run_id=context.get("run_id"))  # recorded with publications
        return self._with_asset_events(context, config, options) if self.stage == "discover" else options

    def _with_asset_events(self, context: Any, config: Any, options: Any) -> Any:
        """Pass an asset-triggered discover the steps named by *every* triggering event (events coalesce
        when training writes faster than exports run) and those flagged final. Events are hints, not the
        list: discovery still takes every new checkpoint by policy, plus each step an event names even
        where the policy would skip it (``discover_stage``). A chosen checkpoint ignores the events."""
        from plugins.params import steps_from_asset_events

        events = dict(context.get("triggering_asset_events") or {})
        if config.airflow.schedule == "asset":
            # Airflow links to a run only the events queued before it; read the asset's recent events
            # too, so a step or a `final` flag announced a moment later is not lost (the ledger
            # filters out steps already handled).
            from plugins.assets import model_dir_asset

            asset = model_dir_asset(config.model_dir)
            events[asset] = [*events.get(asset, []), *context["inlet_events"][asset].ascending(False).limit(RECENT_EVENTS)]
        steps, final_steps = steps_from_asset_events(events)
        if steps and options.checkpoint is None:
            self.log.info("asset events name steps %s (final: %s)", steps, final_steps)
            options = dataclasses.replace(options, steps=steps, final_steps=final_steps)
        return options

    def _call_in_process(self, request: Any, credentials: Any) -> Any:
        from components.pipeline.envelope import call_stage
        from components.tf_logs import import_tensorflow

        if request.stage in TF_STAGES:
            import_tensorflow(self.log)
        return call_stage(request, credentials)

    def _call_external(self, python: str, request: Any, credentials: Any) -> Any:
        """Run the stage in ``python``; its outcome comes from a result file, its stdout and stderr are logs."""
        from components.pipeline.external import run_stage_process
        from plugins.credentials import access_token_for

        self.log.info("running stage %s in %s", request.stage, python)
        request = dataclasses.replace(request, credentials=access_token_for(credentials))
        returncode, outcome = run_stage_process(python, request, log=self.log, prefix=f"[{request.stage}] ")
        if outcome is None:
            raise StageFailed(f"stage {request.stage} exited with {returncode} in {python} without an outcome")
        return outcome


class ReportRunOperator(BaseOperator):
    """The report stage (``components.pipeline.report``), then one asset event per announced version.

    Events go to ``<destination>/<model>`` through the DAG's alias (one task can add several events
    that way), with extra ``{version, step, metrics, strategy, uri}`` for rollout DAGs. A run that
    published nothing new emits nothing.
    """

    template_fields = ("pushed",)  # resolves the upstream XComArg
    ui_color = "#e8f0fe"

    def __init__(self, *, config_path: str, pushed: list[dict[str, Any] | None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config_path = config_path
        self.pushed = pushed

    def execute(self, context: Any) -> Any:
        from components.artifacts import PushedModelArtifact
        from components.config import load_config
        from components.model_storage import ModelStorage
        from components.pipeline.options import RunOptions
        from components.pipeline.report import report_stage
        from plugins.assets import published_alias, published_asset
        from plugins.credentials import credentials_for

        pushed = [PushedModelArtifact.from_dict(p) for p in (self.pushed or []) if p]
        options = RunOptions(dry_run=bool(context["params"].get("dry_run")), run_id=context.get("run_id"))
        with failures_mapped():
            config = load_config(self.config_path)
            with ModelStorage(config, credentials_for(config)).installed():
                published = report_stage(config, pushed, options)
        if published.announcements:
            alias_events = context["outlet_events"][published_alias(config.name)]
            target = published_asset(config.destination.uri, config.name)
            for announcement in published.announcements:
                alias_events.add(target, extra=announcement.extra())
        return [p.to_dict() for p in published.pushed]
