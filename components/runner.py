"""The plain runner: chains the stage executors without Airflow (the CLI, tests and benches use it).

Airflow's tasks call the very same executors one stage per task; this module is the reference order.
"""

from __future__ import annotations

import dataclasses
import logging

from components.artifacts import EvaluationArtifact, ExportArtifact, PushedModelArtifact
from components.config.schema import PipelineConfig
from components.discovery.executor import discover
from components.discovery.spec import DiscoveryParams
from components.evaluation.executor import evaluate
from components.evaluation.spec import EvaluationParams
from components.export.executor import export
from components.export.spec import ExportParams
from components.ledger import Ledger
from components.ledger.records import baseline_metrics, record_evaluation, record_export, record_publication
from components.paths import work_dir
from components.publish.executor import publish
from components.publish.spec import PublishParams
from components.warmup.executor import inject_warmup
from components.warmup.spec import WarmupParams

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """What a run may choose among the configured things (the same fields as the manual trigger)."""

    checkpoint: int | None = None
    strategies: tuple[str, ...] | None = None  # a subset of the configured strategy names
    force: bool = False
    dry_run: bool = False
    max_checkpoints: int | None = None


@dataclasses.dataclass(frozen=True)
class RunReport:
    evaluations: tuple[EvaluationArtifact, ...] = ()
    exports: tuple[ExportArtifact, ...] = ()
    published: tuple[PushedModelArtifact, ...] = ()


def discovery_params(config: PipelineConfig, options: RunOptions) -> DiscoveryParams:
    discovery = config.discovery
    return DiscoveryParams(
        model_name=config.name,
        model_dir=config.model_dir,
        policy=discovery.policy,
        every_n_steps=discovery.every_n_steps,
        max_per_run=options.max_checkpoints or discovery.max_per_run,
        only_step=options.checkpoint,
        include_handled=options.force,
    )


def selected_strategies(config: PipelineConfig, options: RunOptions):
    if options.strategies is None:
        return config.strategies
    unknown = set(options.strategies) - {s.name for s in config.strategies}
    if unknown:
        raise ValueError(
            f"unknown strategies {sorted(unknown)}; configured: {[s.name for s in config.strategies]}"
        )
    return tuple(s for s in config.strategies if s.name in options.strategies)


def run_pipeline(config: PipelineConfig, options: RunOptions = RunOptions()) -> RunReport:
    ledger = Ledger(config.destination.uri, config.name)
    strategies = selected_strategies(config, options)
    checkpoints = discover(discovery_params(config, options), ledger.load())
    if not checkpoints:
        log.info("%s: no new checkpoints in %s", config.name, config.model_dir)
    evaluations, exports, published = [], [], []
    for checkpoint in checkpoints:
        state = ledger.load()
        evaluation = evaluate(
            EvaluationParams(config, work_dir(config, "eval")),
            checkpoint,
            baseline_metrics(state, config.evaluation.thresholds),
        )
        state = record_evaluation(ledger, evaluation)
        evaluations.append(evaluation)
        for strategy in strategies:
            exported = export(ExportParams(config, strategy, state, force=options.force), evaluation)
            if exported is None:
                continue
            exported = inject_warmup(WarmupParams(config), exported)
            state = record_export(ledger, exported)
            exports.append(exported)
            pushed = publish(PublishParams(config, strategy, evaluation, dry_run=options.dry_run), exported)
            if not options.dry_run:
                state = record_publication(ledger, pushed, checkpoint.uri)
            published.append(pushed)
    return RunReport(tuple(evaluations), tuple(exports), tuple(published))
