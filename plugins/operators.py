"""One operator per stage; each names its stage and inputs, and ``components.stage_entry`` does the work.

Config (trusted) comes from the file the DAG factory named; run options come from the run's params
(validated against the form's schema) and, for asset-triggered runs, from every triggering event.
Artifacts travel as small JSON dicts through XCom. An error a retry cannot fix (bad config, corrupt
checkpoint) fails the task at once; transient ones are retried with backoff. With
``airflow.runtime: external_python`` the stage runs in a separate interpreter that receives only its
request.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from typing import Any, ClassVar

from airflow.sdk import BaseOperator


class StageFailed(Exception):
    """A stage failed in an external interpreter with an error a retry may fix."""


@contextlib.contextmanager
def gcp_credentials(conn_id: str | None) -> Iterator[None]:
    """Make an Airflow connection's Google credentials the Application Default Credentials for a stage.

    Without ``gcp_conn_id`` the stage uses ADC as the worker has them. With it, the google provider
    (the ``google`` extra) exposes the connection's key as ``GOOGLE_APPLICATION_CREDENTIALS`` for the
    stage's duration only — a temporary file for inline keys — so in-process and external-python
    stages alike authenticate through ADC. The key never appears in logs or XCom.
    """
    if conn_id is None:
        yield
        return
    try:
        from airflow.providers.google.common.hooks.base_google import GoogleBaseHook
    except ImportError as exc:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(
            f"airflow.gcp_conn_id is {conn_id!r} but the Google provider is not installed; "
            "install exportflow with the `google` extra, or remove gcp_conn_id to use ADC"
        ) from exc
    with GoogleBaseHook(gcp_conn_id=conn_id).provide_gcp_credential_file_as_context():
        yield


class _StageOperator(BaseOperator):
    """Shared plumbing: config path, run options, the stage call, permanent-error handling."""

    stage: ClassVar[str]
    ui_color = "#e8f0fe"

    def __init__(self, *, config_path: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config_path = config_path

    def stage_inputs(self) -> dict[str, Any]:
        return {}

    def label(self) -> str:
        """Shown as the mapped task instance's name (``map_index_template``)."""
        return ""

    def run_options(self, context: Any, config: Any) -> Any:
        import dataclasses

        from plugins.params import run_options_from_params

        options = run_options_from_params(context["params"], [s.name for s in config.strategies])
        return dataclasses.replace(options, run_id=context.get("run_id"))  # recorded with publications

    def execute(self, context: Any) -> Any:
        from airflow.sdk.exceptions import AirflowFailException

        from components.config import load_config
        from components.errors import ExportflowError
        from components.stage_entry import StageRequest

        context["exportflow_label"] = self.label()
        try:
            config = load_config(self.config_path)
            request = StageRequest(self.stage, self.config_path, self.run_options(context, config), self.stage_inputs())
            with gcp_credentials(config.airflow.gcp_conn_id):
                if config.airflow.runtime == "external_python":
                    return self._call_external(config.airflow.python, request)
                from components.stage_entry import call_stage

                return call_stage(request)
        except ExportflowError as exc:
            if exc.retryable:
                raise
            raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
        except ValueError as exc:  # invalid run options: retrying cannot help
            raise AirflowFailException(str(exc)) from exc

    def _call_external(self, python: str, request: Any) -> Any:
        from airflow.sdk.exceptions import AirflowFailException

        from components.stage_entry import encode_request

        self.log.info("running stage %s in %s", request.stage, python)
        process = subprocess.run(
            [python, "-m", "components.stage_entry"],
            input=encode_request(request),
            capture_output=True,
            text=True,
            check=False,
        )
        for line in process.stderr.splitlines():
            self.log.info("[%s] %s", request.stage, line)
        lines = process.stdout.strip().splitlines()
        answer = json.loads(lines[-1]) if lines else {}
        if process.returncode == 0 and "result" in answer:
            return answer["result"]
        if "error" in answer:
            message = f"{answer['error']}: {answer['message']}"
            if answer.get("retryable"):
                raise StageFailed(message)
            raise AirflowFailException(message)
        raise StageFailed(f"stage {request.stage} exited with {process.returncode} in {python}")


RECENT_EVENTS = 500  # asset events read back by an asset-triggered discover


class DiscoverCheckpointsOperator(_StageOperator):
    """Complete, new checkpoints → Checkpoint artifacts (the evaluate task maps over them).

    In an asset-triggered run it takes exactly the checkpoints named by *every* triggering event
    (events coalesce when training writes faster than exports run), marking those flagged final.
    """

    stage = "discover"

    def run_options(self, context: Any, config: Any) -> Any:
        import dataclasses

        from plugins.params import refuse_unknown_params, steps_from_asset_events

        refuse_unknown_params(context["params"])
        options = super().run_options(context, config)
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


class EvaluateCheckpointOperator(_StageOperator):
    """One checkpoint → its ModelEvaluation with blessing and reasons (recorded in the ledger)."""

    stage = "evaluate"

    def __init__(self, *, checkpoint: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.checkpoint = checkpoint

    def stage_inputs(self) -> dict[str, Any]:
        return {"checkpoint": self.checkpoint}

    def label(self) -> str:
        return f"step {self.checkpoint.get('step')}"


class ExportStrategyOperator(_StageOperator):
    """Run one registered export strategy for one evaluation; mapped per checkpoint × strategy."""

    stage = "export"
    ui_color = "#fce8e6"

    def __init__(self, *, strategy: str, evaluation: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.strategy = strategy
        self.evaluation = evaluation

    def stage_inputs(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "evaluation": self.evaluation}

    def label(self) -> str:
        return f"{self.strategy} @ step {self.evaluation['checkpoint']['step']}"


class _ExportConsumer(_StageOperator):
    """Warmup and publish: one export in; nothing to do when the strategy declined upstream."""

    def __init__(self, *, export: dict[str, Any] | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.export = export

    def stage_inputs(self) -> dict[str, Any]:
        return {"export": self.export}

    def label(self) -> str:
        if self.export is None:
            return "nothing exported"
        return f"{self.export['strategy']} @ step {self.export['step']}"

    def execute(self, context: Any) -> Any:
        if self.export is None:
            context["exportflow_label"] = self.label()
            self.log.info("the strategy exported nothing upstream; nothing to %s", self.stage)
            return None
        return super().execute(context)


class InjectWarmupOperator(_ExportConsumer):
    """Write TF Serving warmup requests into one export."""

    stage = "warmup"


class PublishExportOperator(_ExportConsumer):
    """Publish one export to the destination."""

    stage = "publish"
    ui_color = "#e6f4ea"


class ReportRunOperator(_StageOperator):
    """Log what the run published and emit one asset event per newly published version.

    Events go to ``<destination>/<model>`` through the DAG's alias (one task can add several events
    that way), with extra ``{version, step, metrics, strategy, uri}`` for rollout DAGs. A run that
    published nothing new emits nothing.
    """

    template_fields = ("pushed",)  # resolves the upstream XComArg

    def __init__(self, *, pushed: list[dict[str, Any] | None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pushed = pushed

    def execute(self, context: Any) -> Any:
        from components.artifacts import PushedModelArtifact
        from components.config import load_config
        from components.stages import ledger_of
        from plugins.assets import published_alias, published_asset

        config = load_config(self.config_path)
        dry_run = bool(context["params"].get("dry_run"))
        pushed = [PushedModelArtifact.from_dict(p) for p in (self.pushed or []) if p]
        for p in pushed:
            state = "dry run" if dry_run else "already published" if p.already_published else "published"
            self.log.info("%s version %s (step %d) → %s: %s", p.strategy, p.version, p.step, p.uri, state)
        if not pushed:
            self.log.info("this run published nothing")
        new = [p for p in pushed if not p.already_published and not dry_run]
        if new:
            ledger = ledger_of(config).load()
            alias_events = context["outlet_events"][published_alias(config.name)]
            target = published_asset(config.destination.uri, config.name)
            for p in new:
                record = ledger.record(p.step)
                metrics = dict(record.evaluation.metrics) if record and record.evaluation else {}
                extra = {"version": p.version, "step": p.step, "strategy": p.strategy, "uri": p.uri,
                         "manifest_uri": p.manifest_uri, "metrics": metrics}
                alias_events.add(target, extra=extra)
        return [p.to_dict() for p in pushed]
