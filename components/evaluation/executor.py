"""Evaluate one checkpoint with the config's eval input and decide its blessing."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from components.artifacts import CheckpointArtifact, EvaluationArtifact
from components.estimator import build_estimator, eval_input_fn
from components.evaluation.blessing import bless
from components.evaluation.errors import EvaluationError
from components.evaluation.spec import EvaluationParams

log = logging.getLogger(__name__)


def evaluate(
    params: EvaluationParams, checkpoint: CheckpointArtifact, baseline: Mapping[str, float] | None = None
) -> EvaluationArtifact:
    config = params.config
    if config.evaluation.input_fn is None:
        metrics: dict[str, float] = {}
    else:
        metrics = _run_evaluate(params, checkpoint)
    blessed, reasons = bless(metrics, config.evaluation.thresholds, baseline)
    evaluation = EvaluationArtifact(
        uri=checkpoint.uri, checkpoint=checkpoint, metrics=metrics, blessed=blessed, reasons=reasons
    )
    log.info("step %d: %s (%s)", checkpoint.step, evaluation.summary, metrics)
    return evaluation


def _run_evaluate(params: EvaluationParams, checkpoint: CheckpointArtifact) -> dict[str, float]:
    config = params.config
    estimator = build_estimator(config, params.work_dir)
    try:
        raw = estimator.evaluate(
            eval_input_fn(config),
            steps=config.evaluation.steps,
            checkpoint_path=checkpoint.readable_prefix,
            name=f"step_{checkpoint.step}",
        )
    except Exception as exc:  # the user's model_fn / input_fn can raise anything
        raise EvaluationError(
            f"evaluating checkpoint {checkpoint.uri} (step {checkpoint.step}) failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    return {k: float(v) for k, v in raw.items() if k != "global_step"}
