"""Digests of the configuration that decides a checkpoint's metrics and its blessing.

The ledger keys "handled" and metric reuse on them: a checkpoint evaluated and not blessed is new
again once the thresholds or the eval input change (``config_digest``), and a restarted run reuses
metrics already computed under the same ``metrics_digest`` instead of evaluating twice.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from components.artifacts import to_jsonable
from components.config.schema import PipelineConfig


def metrics_digest(config: PipelineConfig) -> str:
    """What decides the metric values: the model and eval input (evaluate), or where they are logged."""
    evaluation = config.evaluation
    if evaluation.source == "logged":
        return _digest(
            {"source": "logged", "model_dir": config.model_dir, "events": evaluation.event_file_pattern}
        )
    if config.framework == "keras" and config.keras is not None:
        keras = config.keras
        model = {"builder": str(keras.builder), "builder_kwargs": keras.builder_kwargs} if keras.builder else {}
        return _digest(
            {
                "source": "evaluate",
                "framework": "keras",
                **model,
                "checkpoints": keras.checkpoints,
                "input_fn": None if evaluation.input_fn is None else str(evaluation.input_fn),
                "input_fn_kwargs": evaluation.input_fn_kwargs,
                "steps": evaluation.steps,
            }
        )
    return _digest(
        {
            "source": "evaluate",
            # Old configs keep their digest: the key for a model_fn is as it always was.
            **({"model_fn": str(config.model_fn)} if config.estimator is None else {"estimator": str(config.estimator)}),
            "params": config.params,
            "input_fn": None if evaluation.input_fn is None else str(evaluation.input_fn),
            "input_fn_kwargs": evaluation.input_fn_kwargs,
            "steps": evaluation.steps,
        }
    )


def config_digest(config: PipelineConfig) -> str:
    """What decides the blessing: the metrics' digest plus the thresholds."""
    return _digest(
        {"metrics": metrics_digest(config), "thresholds": to_jsonable(config.evaluation.thresholds)}
    )


def _digest(value: Any) -> str:
    text = json.dumps(to_jsonable(value), sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
