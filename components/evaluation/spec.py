"""Evaluation's component spec: a checkpoint in, a ModelEvaluation (with its blessing) out."""

from __future__ import annotations

import dataclasses

from components.config.schema import PipelineConfig


@dataclasses.dataclass(frozen=True)
class EvaluationParams:
    config: PipelineConfig
    work_dir: str  # scratch folder for the Estimator's own files

