"""EstimatorSpec checks before export, with errors naming the mode and the missing piece.

``tf.estimator.EstimatorSpec`` validates some of this at construction, but a spec rebuilt with
``_replace``, a TPU spec or a model_fn returning the wrong thing gets through and fails later inside the
SavedModel builder with a message about tensors. These checks run right after model_fn.
"""

from __future__ import annotations

from typing import Any

from components.export.errors import EstimatorSpecError

MODE_NAMES = {"train": "TRAIN", "eval": "EVAL", "infer": "PREDICT"}


def mode_label(mode: str) -> str:
    """``"PREDICT ('infer')"`` — the ModeKeys constant and its value, as users meet both."""
    return f"{MODE_NAMES.get(mode, mode)} ({mode!r})"


def as_estimator_spec(spec: Any, mode: str) -> Any:
    """The EstimatorSpec model_fn returned (TPUEstimatorSpec converted), or an ``EstimatorSpecError``."""
    import tensorflow as tf

    if hasattr(spec, "as_estimator_spec") and not isinstance(spec, tf.estimator.EstimatorSpec):
        spec = spec.as_estimator_spec()
    if not isinstance(spec, tf.estimator.EstimatorSpec):
        raise EstimatorSpecError(
            f"model_fn returned {type(spec).__name__} in mode {mode_label(mode)}; "
            "it must return a tf.estimator.EstimatorSpec"
        )
    return spec


def check_estimator_spec(spec: Any, mode: str) -> None:
    """Raise ``EstimatorSpecError`` when ``spec`` cannot be exported in ``mode``."""
    import tensorflow as tf

    modes = tf.estimator.ModeKeys
    where = f"EstimatorSpec for mode {mode_label(mode)}"
    if spec.mode != mode:
        raise EstimatorSpecError(
            f"{where} says mode={spec.mode!r}; model_fn must return a spec for the mode it is called in"
        )
    if mode == modes.TRAIN:
        if spec.train_op is None:
            raise EstimatorSpecError(
                f"{where} has no train_op; TRAIN export stores it in the train signature"
            )
        if spec.loss is None:
            raise EstimatorSpecError(f"{where} has no loss; TRAIN export needs it for the train signature")
    elif mode == modes.EVAL:
        if spec.loss is None:
            raise EstimatorSpecError(f"{where} has no loss; EVAL export needs it for the eval signature")
    elif mode == modes.PREDICT:
        if spec.predictions is None and not spec.export_outputs:
            raise EstimatorSpecError(
                f"{where} has neither predictions nor export_outputs; return predictions={{...}} or "
                "export_outputs={'serving_default': tf.estimator.export.PredictOutput({...})}"
            )
    else:
        raise EstimatorSpecError(f"unknown mode {mode!r}; expected one of 'train', 'eval', 'infer'")
    _check_export_outputs(spec.export_outputs, where)


def _check_export_outputs(export_outputs: Any, where: str) -> None:
    import tensorflow as tf

    if export_outputs is None:
        return
    if not isinstance(export_outputs, dict):
        raise EstimatorSpecError(
            f"{where}: export_outputs must be a dict of name -> ExportOutput, got {type(export_outputs).__name__}"
        )
    if not export_outputs:
        raise EstimatorSpecError(f"{where}: export_outputs is an empty dict; give at least 'serving_default'")
    for key, output in export_outputs.items():
        if not isinstance(output, tf.estimator.export.ExportOutput):
            raise EstimatorSpecError(
                f"{where}: export_outputs[{key!r}] is {type(output).__name__}, not a tf.estimator.export.ExportOutput"
            )
    default = tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY
    if len(export_outputs) > 1 and default not in export_outputs:
        raise EstimatorSpecError(
            f"{where}: multi-head export_outputs {sorted(export_outputs)} lack the default serving key "
            f"{default!r}; name the head serving should use {default!r}"
        )
