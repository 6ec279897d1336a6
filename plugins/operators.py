"""One operator per stage; each loads the model's config and calls the matching stage function.

Config (trusted) comes from the file the DAG factory named; run options come from the run's params
(validated against the form's schema). Artifacts travel as small JSON dicts through XCom. An error that
a retry cannot fix (bad config, corrupt checkpoint) fails the task without retrying.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from airflow.sdk import BaseOperator


@contextlib.contextmanager
def _fail_fast_on_permanent_errors() -> Iterator[None]:
    from airflow.sdk.exceptions import AirflowFailException

    from components.errors import ExportflowError

    try:
        yield
    except ExportflowError as exc:
        if exc.retryable:
            raise
        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc


class _StageOperator(BaseOperator):
    """Shared plumbing: the config path, the run options, permanent-error handling."""

    ui_color = "#e8f0fe"

    def __init__(self, *, config_path: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config_path = config_path

    def load_config(self):
        from components.config import load_config

        return load_config(self.config_path)

    def run_options(self, context: Any, config):
        import dataclasses

        from plugins.params import run_options_from_params

        options = run_options_from_params(context["params"], [s.name for s in config.strategies])
        return dataclasses.replace(options, run_id=context.get("run_id"))  # recorded with publications

    def execute(self, context: Any) -> Any:
        with _fail_fast_on_permanent_errors():
            config = self.load_config()
            return self.run_stage(config, self.run_options(context, config), context)

    def run_stage(self, config, options, context: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError


class DiscoverCheckpointsOperator(_StageOperator):
    """Complete, new checkpoints → a list of Checkpoint artifacts (the evaluate task maps over it)."""

    def run_stage(self, config, options, context):
        from components.stages import discover_stage

        checkpoints = discover_stage(config, options)
        self.log.info("discovered steps %s", [c.step for c in checkpoints])
        return [c.to_dict() for c in checkpoints]


class EvaluateCheckpointOperator(_StageOperator):
    """One checkpoint → its ModelEvaluation with blessing and reasons (recorded in the ledger)."""

    def __init__(self, *, checkpoint: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.checkpoint = checkpoint

    def run_stage(self, config, options, context):
        from components.artifacts import CheckpointArtifact
        from components.stages import evaluate_stage

        evaluation = evaluate_stage(config, CheckpointArtifact.from_dict(self.checkpoint))
        self.log.info("step %d: %s", evaluation.checkpoint.step, evaluation.summary)
        return evaluation.to_dict()


class ExportStrategyOperator(_StageOperator):
    """Run one registered export strategy for one evaluation; mapped per checkpoint × strategy."""

    ui_color = "#fce8e6"

    def __init__(self, *, strategy: str, evaluation: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.strategy = strategy
        self.evaluation = evaluation

    def run_stage(self, config, options, context):
        from components.artifacts import EvaluationArtifact
        from components.stages import export_stage

        evaluation = EvaluationArtifact.from_dict(self.evaluation)
        exported = export_stage(config, self.strategy, evaluation, options)
        return exported.to_dict() if exported is not None else None


class InjectWarmupOperator(_StageOperator):
    """Write TF Serving warmup requests into one export (passes through when nothing was exported)."""

    def __init__(self, *, export: dict[str, Any] | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.export = export

    def run_stage(self, config, options, context):
        from components.artifacts import ExportArtifact
        from components.stages import warmup_stage

        if self.export is None:
            self.log.info("nothing was exported upstream; nothing to warm up")
            return None
        return warmup_stage(config, ExportArtifact.from_dict(self.export)).to_dict()


class PublishExportOperator(_StageOperator):
    """Publish one export to the destination (passes through when nothing was exported)."""

    ui_color = "#e6f4ea"

    def __init__(self, *, export: dict[str, Any] | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.export = export

    def run_stage(self, config, options, context):
        from components.artifacts import ExportArtifact
        from components.stages import publish_stage

        if self.export is None:
            self.log.info("nothing was exported upstream; nothing to publish")
            return None
        return publish_stage(config, ExportArtifact.from_dict(self.export), options).to_dict()


class ReportRunOperator(_StageOperator):
    """Log what this run published; its return value is the run's summary."""

    template_fields = ("pushed",)  # resolves the upstream XComArg

    def __init__(self, *, pushed: list[dict[str, Any] | None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pushed = pushed

    def run_stage(self, config, options, context):
        from components.artifacts import PushedModelArtifact

        pushed = [PushedModelArtifact.from_dict(p) for p in (self.pushed or []) if p]
        for p in pushed:
            state = "already published" if p.already_published else "published"
            self.log.info("%s %s step %d → %s (%s)", p.strategy, p.version, p.step, p.uri, state)
        if not pushed:
            self.log.info("this run published nothing")
        return [p.to_dict() for p in pushed]
