"""Metrics that training already logged: the eval summaries ``train_and_evaluate`` writes.

As tf.estimator's BestExporter does, read the event files matching ``event_file_pattern`` (relative to
model_dir, default ``eval/*.tfevents.*``) and take the scalar summaries written at the checkpoint's
global step. Files on GCS are downloaded to a scratch folder first (they are small), so TensorFlow's
``summary_iterator`` reads local files only.
"""

from __future__ import annotations

import fnmatch
import os

from components.discovery.checkpoints import basename
from components.evaluation.errors import EvaluationError, LoggedMetricsMissing
from components.storage import Storage, StorageError, scheme_of, storage_for


def event_files(model_dir: str, pattern: str, storage: Storage | None = None) -> list[str]:
    """URIs of the event files matching ``pattern`` (``[folder-glob/]file-glob``), sorted."""
    storage = storage or storage_for(model_dir)
    folder_glob, _, file_glob = pattern.rpartition("/")
    if "/" in folder_glob:
        raise EvaluationError(
            f"evaluation.event_file_pattern {pattern!r}: at most one folder level is supported"
        )
    folders = [model_dir]
    if folder_glob:
        folders = [
            storage.join(model_dir, n)
            for n in storage.list_names(model_dir)
            if fnmatch.fnmatch(n, folder_glob)
        ]
    found = []
    for folder in folders:
        found += [i.uri for i in storage.list_files(folder) if fnmatch.fnmatch(basename(i.uri), file_glob)]
    return sorted(found)


def logged_metrics(
    model_dir: str, pattern: str, step: int, scratch_dir: str, *, checkpoint: str
) -> dict[str, float]:
    """Scalar summaries logged at ``step``; ``LoggedMetricsMissing`` (retryable) when there are none yet."""
    import tensorflow as tf

    storage = storage_for(model_dir)
    try:
        files = event_files(model_dir, pattern, storage)
    except StorageError as exc:
        raise EvaluationError(
            f"{checkpoint}: cannot list the eval event files {model_dir}/{pattern}: {exc}"
        ) from exc
    metrics: dict[str, float] = {}
    steps_seen: set[int] = set()
    for uri in files:
        path = _local(uri, storage, scratch_dir)
        try:
            for event in tf.compat.v1.train.summary_iterator(path):
                if not event.HasField("summary"):
                    continue
                steps_seen.add(event.step)
                if event.step != step:
                    continue
                for value in event.summary.value:
                    scalar = _scalar(tf, value)
                    if scalar is not None and value.tag != "global_step":
                        metrics[value.tag] = scalar
        except tf.errors.OpError as exc:  # a file the trainer is still appending to ends mid-record
            if not metrics:
                raise EvaluationError(
                    f"{checkpoint}: cannot read the event file {uri}: {exc.message}"
                ) from exc
    if not metrics:
        seen = sorted(steps_seen)
        raise LoggedMetricsMissing(
            f"{checkpoint}: no eval summaries logged for step {step} in {model_dir}/{pattern} "
            f"({len(files)} event file(s); logged steps: {seen[-10:] or 'none'}); training may not have "
            "evaluated this checkpoint yet"
        )
    return metrics


def _local(uri: str, storage: Storage, scratch_dir: str) -> str:
    if scheme_of(uri) == "file":
        return uri
    target = os.path.join(scratch_dir, "events", basename(os.path.dirname(uri)), basename(uri))
    storage.download_file(uri, target)
    return target


def _scalar(tf, value) -> float | None:
    if value.HasField("simple_value"):
        return float(value.simple_value)
    if value.HasField("tensor"):
        array = tf.make_ndarray(value.tensor)
        if array.shape == () and array.dtype.kind in "fiu":
            return float(array)
    return None
