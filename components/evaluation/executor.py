"""Evaluate one checkpoint and decide its blessing.

Order, cheapest first, each failure an error naming the checkpoint and the cause:

1. metrics already in the ledger for this checkpoint under the same ``metrics_digest`` (a restarted or
   retried run) are reused — an evaluation is never run twice;
2. the checkpoint is read from its lease (falling back to the original when a stale-lease cleanup
   removed the lease) and checked against its own index (``verify_checkpoint``: damaged index,
   missing or truncated shard, unreadable file);
3. metrics come from ``Estimator.evaluate`` with the config's eval input and steps — with a hook that
   compares the model_fn's variables with the checkpoint's before anything is restored
   (``CheckpointMismatch``) and the input_fn's own exceptions reported as ``EvalInputError`` — or, with
   ``source: logged``, from training's eval event files;
4. the blessing is decided from the thresholds and the current baseline, every time (cheap), so a
   reused evaluation is still judged against the best version published now.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import shutil
from collections.abc import Callable, Mapping
from typing import Any

from components.artifacts import CheckpointArtifact, EvaluationArtifact
from components.discovery import lease
from components.discovery.bundle import BundleIndex
from components.discovery.errors import (
    CheckpointError,
    CheckpointVanished,
    CorruptCheckpoint,
    IncompleteCheckpoint,
)
from components.discovery.integrity import verify_checkpoint
from components.estimator import build_estimator, eval_input_fn, model_label
from components.evaluation.blessing import bless
from components.evaluation.digest import config_digest, metrics_digest
from components.evaluation.errors import CheckpointMismatch, EvalInputError, EvaluationError
from components.evaluation.logged import logged_metrics
from components.evaluation.spec import EvaluationParams
from components.ledger.ledger import utc_now
from components.ledger.records import Baseline
from components.storage import StorageError, storage_for

log = logging.getLogger(__name__)
# A damaged checkpoint fails alone: each checkpoint is its own task in Airflow, and the plain runner goes on.
ONLY_THIS_CHECKPOINT = (
    "this checkpoint is not exported; the run's other checkpoints are still evaluated and published"
)


def evaluate(
    params: EvaluationParams,
    checkpoint: CheckpointArtifact,
    baseline: Baseline | Mapping[str, float] | None = None,
    previous: EvaluationArtifact | None = None,
) -> EvaluationArtifact:
    """The checkpoint's metrics and blessing; ``previous`` is the ledger's evaluation of the same step."""
    config = params.config
    name = checkpoint.label
    digest = metrics_digest(config)
    if _reusable(previous, checkpoint, digest):
        log.info("%s: reusing the metrics evaluated at %s", name, previous.evaluated_at)
        metrics, evaluated_at = dict(previous.metrics), previous.evaluated_at
    else:
        measure = params.metrics_fn or _metrics
        metrics, evaluated_at = measure(params, checkpoint), utc_now()
    blessed, reasons = bless(metrics, config.evaluation.thresholds, baseline, checkpoint=name)
    evaluation = EvaluationArtifact(
        uri=checkpoint.uri,
        checkpoint=checkpoint,
        metrics=metrics,
        blessed=blessed,
        reasons=reasons,
        source=config.evaluation.source,
        evaluated_at=evaluated_at,
        config_digest=config_digest(config),
        metrics_digest=digest,
        baseline_step=baseline.step if isinstance(baseline, Baseline) else None,
    )
    log.info("step %d: %s (%s)", checkpoint.step, evaluation.summary, metrics)
    return evaluation


def _reusable(previous: EvaluationArtifact | None, checkpoint: CheckpointArtifact, digest: str) -> bool:
    """Same configuration, same checkpoint files (a retrained model_dir reuses step numbers)."""
    if previous is None or previous.metrics_digest != digest:
        return False
    before = previous.checkpoint
    return before.uri == checkpoint.uri and {(f.path, f.size) for f in before.files} == {
        (f.path, f.size) for f in checkpoint.files
    }


def _metrics(params: EvaluationParams, checkpoint: CheckpointArtifact) -> dict[str, float]:
    config = params.config
    prefix = _readable_prefix(checkpoint)
    try:
        index = verify_checkpoint(checkpoint, prefix)
    except (CorruptCheckpoint, IncompleteCheckpoint) as exc:  # the user's file is damaged: say what else ran
        raise type(exc)(f"{exc}; {ONLY_THIS_CHECKPOINT}") from exc
    evaluation = config.evaluation
    if evaluation.source == "logged":
        scratch = os.path.join(params.work_dir, "logged")
        return logged_metrics(
            config.model_dir,
            evaluation.event_file_pattern,
            checkpoint.step,
            scratch,
            checkpoint=checkpoint.label,
        )
    if evaluation.input_fn is None:
        return {}
    scratch = os.path.join(params.work_dir, "checkpoints", str(checkpoint.step))
    try:
        local = lease.local_prefix(dataclasses.replace(checkpoint, pinned_uri=prefix), scratch)
    except StorageError as exc:
        raise CheckpointError(f"{checkpoint.label}: cannot download it for evaluation: {exc}") from exc
    try:
        return _run_evaluate(params, checkpoint, local, index)
    finally:
        if local.startswith(scratch):
            shutil.rmtree(scratch, ignore_errors=True)


def _readable_prefix(checkpoint: CheckpointArtifact) -> str:
    """The lease's copy; the original when the lease is gone (stale cleanup) but the original is not."""
    if checkpoint.pinned_uri is None or lease.pinned_files_present(checkpoint):
        return checkpoint.readable_prefix
    if storage_for(checkpoint.uri).stat(f"{checkpoint.uri}.index") is not None:
        log.warning(
            "%s: its lease %s is gone; reading the original", checkpoint.label, checkpoint.pinned_uri
        )
        return checkpoint.uri
    raise CheckpointVanished(
        f"{checkpoint.label}: both its lease {checkpoint.pinned_uri} and the original are gone "
        "(lease expired: raise discovery.lease_ttl_hours?)"
    )


def _run_evaluate(
    params: EvaluationParams, checkpoint: CheckpointArtifact, local_prefix: str, index: BundleIndex
) -> dict[str, float]:
    config = params.config
    name = checkpoint.label
    estimator = build_estimator(config, params.work_dir)
    input_fn = functools.partial(
        _guarded_input_fn,
        input_fn=eval_input_fn(config),
        where=f"{name}: the eval input_fn {config.evaluation.input_fn}",
    )
    try:
        raw = estimator.evaluate(
            input_fn,
            steps=config.evaluation.steps,
            checkpoint_path=local_prefix,
            name=f"step_{checkpoint.step}",
            hooks=[_variables_check_hook(index, name, model_label(config))],
        )
    except (EvaluationError, CheckpointError):
        raise
    except Exception as exc:  # the user's model_fn and input pipeline can raise anything
        raise EvaluationError(f"evaluating {name} failed: {type(exc).__name__}: {_first_line(exc)}") from exc
    return {k: float(v) for k, v in raw.items() if k != "global_step"}


def _guarded_input_fn(
    *, input_fn: Callable[..., Any], where: str, mode=None, params=None, config=None, input_context=None
) -> Any:
    """Calls the user's input_fn with the arguments it declares; its exceptions become ``EvalInputError``.

    The Estimator passes ``mode``/``params``/``config``/``input_context`` only to input_fns that declare
    them; this wrapper declares all four and forwards those the real input_fn declares.
    """
    from tensorflow.python.util import function_utils

    accepted = set(function_utils.fn_args(input_fn))
    offered = {"mode": mode, "params": params, "config": config, "input_context": input_context}
    try:
        return input_fn(**{k: v for k, v in offered.items() if k in accepted})
    except Exception as exc:
        raise EvalInputError(f"{where} raised {type(exc).__name__}: {_first_line(exc)}") from exc


def _variables_check_hook(index: BundleIndex, name: str, model: str) -> Any:
    """A SessionRunHook whose ``begin`` (graph built, nothing restored yet) compares variables."""
    import tensorflow as tf

    class VariablesMatchCheckpoint(tf.compat.v1.train.SessionRunHook):
        def begin(self) -> None:
            expected = {}
            for variable in tf.compat.v1.global_variables():
                info = getattr(variable, "_save_slice_info", None)
                key = info.full_name if info else variable.op.name
                shape = tuple(info.full_shape) if info else tuple(variable.shape.as_list())
                expected[key] = (shape, variable.dtype.base_dtype)
            problems = variable_mismatches(expected, index)
            if problems:
                raise CheckpointMismatch(
                    f"{name} does not match {model} (with the config's params): {problems}; "
                    "is model_dir the output of this model?"
                )

    return VariablesMatchCheckpoint()


def variable_mismatches(expected: Mapping[str, tuple[tuple[int, ...], Any]], index: BundleIndex) -> str:
    """What differs between the graph's variables (name → (shape, tf dtype)) and the checkpoint's; "" if none."""
    saved = index.variables()
    missing = sorted(n for n in expected if n not in saved)
    wrong = []
    for key, (shape, dtype) in sorted(expected.items()):
        entry = saved.get(key)
        if entry is None:
            continue
        if tuple(entry.shape) != tuple(shape):
            wrong.append(f"{key} has shape {list(entry.shape)} in the checkpoint, {list(shape)} in the model")
        elif entry.dtype != dtype.as_datatype_enum:
            wrong.append(f"{key} has dtype enum {entry.dtype} in the checkpoint, {dtype.name} in the model")
    parts = []
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        parts.append(f"missing from the checkpoint: {shown}")
    if wrong:
        parts.append("; ".join(wrong[:5]) + (f" and {len(wrong) - 5} more" if len(wrong) > 5 else ""))
    return "; ".join(parts)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc).strip()
    return text.splitlines()[0][:500] if text else ""
