"""A Keras checkpoint's metrics: ``model.evaluate`` on the config's eval dataset function.

Blessing, metric reuse and the ledger stay with ``components.evaluation``; this only measures."""

from __future__ import annotations

import os
import shutil
from typing import Any

from components.artifacts import CheckpointArtifact
from components.evaluation.errors import EvalInputError, EvaluationError
from components.evaluation.spec import EvaluationParams
from components.keras.checkpoint import local_checkpoint_file
from components.keras.errors import KerasError
from components.keras.model import load_checkpoint_model
from components.staging.area import staging_area


def keras_metrics(params: EvaluationParams, checkpoint: CheckpointArtifact) -> dict[str, float]:
    """``model.evaluate(dataset, steps=evaluation.steps, return_dict=True)`` as floats; {} without input_fn."""
    config = params.config
    evaluation = config.evaluation
    if evaluation.input_fn is None:
        return {}
    scratch = os.path.join(params.work_dir, "checkpoints", str(checkpoint.step))
    try:
        path = local_checkpoint_file(checkpoint, scratch, staging_area(config).cache)
        model = load_checkpoint_model(config, path, checkpoint.label)
        dataset = eval_data(config)
        try:
            raw = model.evaluate(dataset, steps=evaluation.steps, return_dict=True, verbose=0)
        except Exception as exc:  # the user's model and data can raise anything
            raise EvaluationError(
                f"evaluating {checkpoint.label} failed: {type(exc).__name__}: {str(exc).strip()[:500]}"
            ) from exc
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {name: float(value) for name, value in raw.items()}


def eval_data(config: Any) -> Any:
    """What ``evaluation.input_fn(**input_fn_kwargs)`` returns; its exceptions become ``EvalInputError``."""
    evaluation = config.evaluation
    try:
        return evaluation.input_fn.resolve()(**evaluation.input_fn_kwargs)
    except KerasError:
        raise
    except Exception as exc:
        raise EvalInputError(
            f"the eval dataset function {evaluation.input_fn} raised {type(exc).__name__}: {str(exc).strip()[:500]}"
        ) from exc
