"""Evaluation's component spec: a checkpoint in, a ModelEvaluation (with its blessing) out."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from components.config.schema import PipelineConfig


@dataclasses.dataclass(frozen=True)
class EvaluationParams:
    config: PipelineConfig
    work_dir: str  # scratch folder for the Estimator's own files
    # Measures a checkpoint for another framework, (params, checkpoint) -> metrics (Keras:
    # components.keras.evaluate.keras_metrics, given by the pipeline); None: the Estimator's evaluate.
    metrics_fn: Callable[[Any, Any], dict[str, float]] | None = dataclasses.field(default=None, compare=False)

