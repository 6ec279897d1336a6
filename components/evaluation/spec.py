"""Evaluation's component spec: a checkpoint in, a ModelEvaluation (with its blessing) out."""

from __future__ import annotations

import dataclasses

from components.artifacts import CheckpointArtifact, EvaluationArtifact
from components.component import ComponentSpec
from components.config.schema import PipelineConfig


@dataclasses.dataclass(frozen=True)
class EvaluationParams:
    config: PipelineConfig
    work_dir: str  # scratch folder for the Estimator's own files


SPEC = ComponentSpec(
    name="evaluate",
    inputs={"checkpoint": CheckpointArtifact},
    outputs={"evaluation": EvaluationArtifact},
    parameters=EvaluationParams,
)
