"""The plain runner: the stages in their reference order, without Airflow.

The CLI, tests and benchmarks use it; Airflow's DAG runs the same stage functions one per task.
"""

from __future__ import annotations

import dataclasses

from components.artifacts import EvaluationArtifact, ExportArtifact, PushedModelArtifact
from components.config.schema import PipelineConfig
from components.stages import (
    RunOptions,
    discover_stage,
    evaluate_stage,
    export_stage,
    publish_stage,
    selected_strategies,
    warmup_stage,
)


@dataclasses.dataclass(frozen=True)
class RunReport:
    evaluations: tuple[EvaluationArtifact, ...] = ()
    exports: tuple[ExportArtifact, ...] = ()
    published: tuple[PushedModelArtifact, ...] = ()


def run_pipeline(config: PipelineConfig, options: RunOptions | None = None) -> RunReport:
    options = options or RunOptions()
    strategies = selected_strategies(config, options)
    evaluations, exports, published = [], [], []
    for checkpoint in discover_stage(config, options):
        evaluation = evaluate_stage(config, checkpoint)
        evaluations.append(evaluation)
        for strategy in strategies:
            exported = export_stage(config, strategy.name, evaluation, options)
            if exported is None:
                continue
            exported = warmup_stage(config, exported)
            exports.append(exported)
            published.append(publish_stage(config, exported, options))
    return RunReport(tuple(evaluations), tuple(exports), tuple(published))
