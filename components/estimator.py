"""Build the user's tf.estimator.Estimator from trusted config (TensorFlow imported lazily)."""

from __future__ import annotations

import functools
from typing import Any

from components.config.schema import PipelineConfig


def build_estimator(config: PipelineConfig, work_dir: str) -> Any:
    """An Estimator over the config's model_fn whose own model_dir is a scratch folder.

    The trainer's model_dir is never written to: evaluation and export always pass an explicit
    ``checkpoint_path``, so the scratch dir only receives eval summaries.
    """
    import tensorflow as tf

    return tf.estimator.Estimator(
        model_fn=config.model_fn.resolve(),
        model_dir=work_dir,
        # None when the config has none: TF refuses any params, even {}, for a model_fn without them.
        params=dict(config.params) or None,
        config=tf.estimator.RunConfig(model_dir=work_dir, log_step_count_steps=None),
    )


def eval_input_fn(config: PipelineConfig) -> Any:
    """The config's eval input_fn with its keyword arguments bound."""
    evaluation = config.evaluation
    if evaluation.input_fn is None:
        raise ValueError(f"{config.source}: evaluation.input_fn is not set")
    return functools.partial(evaluation.input_fn.resolve(), **evaluation.input_fn_kwargs)
