"""Build the user's tf.estimator.Estimator from trusted config (TensorFlow imported lazily).

A config names the model one of two ways: ``model_fn`` (we wrap it in a plain ``tf.estimator.Estimator``)
or ``estimator``, a factory ``(model_dir, config) -> tf.estimator.Estimator`` for canned estimators
(``LinearRegressor``, ``DNNClassifier``, ...) whose model_fn is private. Every stage goes through here,
so both ways reach evaluation and every export kind alike.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from components.config.errors import ConfigError
from components.config.schema import PipelineConfig


def build_estimator(config: PipelineConfig, work_dir: str) -> Any:
    """An Estimator for the config's model whose own model_dir is a scratch folder.

    The trainer's model_dir is never written to: evaluation and export always pass an explicit
    ``checkpoint_path``, so the scratch dir only receives eval summaries.
    """
    import tensorflow as tf

    run_config = tf.estimator.RunConfig(model_dir=work_dir, log_step_count_steps=None)
    if config.estimator is not None:
        return call_estimator_factory(config, work_dir, run_config)
    return tf.estimator.Estimator(
        model_fn=config.model_fn.resolve(),
        model_dir=work_dir,
        # None when the config has none: TF refuses any params, even {}, for a model_fn without them.
        params=dict(config.params) or None,
        config=run_config,
    )


class EstimatorFactoryError(ConfigError):
    """The ``estimator`` factory did not give a usable Estimator; ``what`` went wrong and the ``fix``."""

    def __init__(self, source: str, what: str, fix: str) -> None:
        self.what = what
        self.fix = fix
        super().__init__(source, "estimator", f"{what}; {fix}")


def call_estimator_factory(config: PipelineConfig, work_dir: str, run_config: Any) -> Any:
    """The config's ``estimator`` factory called as ``factory(model_dir=..., config=...)``, its result checked."""
    import tensorflow as tf

    path = config.estimator
    factory = path.resolve()
    try:
        made = factory(model_dir=work_dir, config=run_config)
    except Exception as exc:  # the user's factory; its failure is the config's to fix
        raise EstimatorFactoryError(
            config.source,
            f"{path}(model_dir=..., config=...) raised {type(exc).__name__}: {exc}",
            "the factory must accept model_dir and config and pass both to the Estimator it returns",
        ) from exc
    if not isinstance(made, tf.estimator.Estimator):
        raise EstimatorFactoryError(
            config.source,
            f"{path} returned {type(made).__name__}, not a tf.estimator.Estimator",
            "return e.g. tf.estimator.LinearRegressor(feature_columns, model_dir=model_dir, config=config)",
        )
    if made.model_dir != work_dir:
        raise EstimatorFactoryError(
            config.source,
            f"{path} built its Estimator with model_dir {made.model_dir!r} instead of the one it was given",
            "pass model_dir=model_dir, config=config through (exportflow reads the trainer's checkpoints "
            "itself and never writes into their folder)",
        )
    return made


def model_fn_of(config: PipelineConfig, work_dir: str) -> Callable[..., Any]:
    """A model_fn for exporters that build their own Estimator: the configured one, or the canned one's."""
    if config.model_fn is not None:
        return config.model_fn.resolve()
    canned = build_estimator(config, work_dir)
    # ``Estimator.model_fn`` is (features, labels, mode, config) with the canned estimator's own params
    # bound; the exporter's Estimator calls it with its own RunConfig.
    return canned.model_fn


def model_label(config: PipelineConfig) -> str:
    """How messages name the model: ``model_fn <path>`` or ``estimator <path>``."""
    return f"model_fn {config.model_fn}" if config.model_fn is not None else f"estimator {config.estimator}"


def eval_input_fn(config: PipelineConfig) -> Any:
    """The config's eval input_fn with its keyword arguments bound."""
    evaluation = config.evaluation
    if evaluation.input_fn is None:
        raise ValueError(f"{config.source}: evaluation.input_fn is not set")
    return functools.partial(evaluation.input_fn.resolve(), **evaluation.input_fn_kwargs)
