"""Build PredictRequests from eval examples and write them into ``assets.extra`` of an export."""

from __future__ import annotations

import dataclasses
import logging
import os

from components.artifacts import ExportArtifact
from components.export.savedmodel import read_saved_model_proto
from components.warmup.errors import WarmupError
from components.warmup.spec import MAX_WARMUP_RECORDS, WARMUP_FILE, WarmupParams

log = logging.getLogger(__name__)


def inject_warmup(params: WarmupParams, export: ExportArtifact) -> ExportArtifact:
    warmup = params.config.warmup
    if warmup.source == "none":
        return export
    if warmup.source != "examples":
        raise WarmupError(f"warmup source {warmup.source!r} is not supported yet")
    count = min(warmup.num_records, MAX_WARMUP_RECORDS)
    examples = _read_examples(warmup.path, count)
    input_key = _string_input_key(export.uri, warmup.signature)
    records = [
        _predict_log(params.config.name, warmup.signature, input_key, example) for example in examples
    ]
    path = os.path.join(export.uri, "assets.extra", WARMUP_FILE)
    _write_tfrecord(path, records)
    log.info("wrote %d warmup requests into %s", len(records), path)
    return dataclasses.replace(export, warmup_records=len(records))


def _read_examples(path: str | None, count: int) -> list[bytes]:
    import tensorflow as tf

    try:
        examples = [r.numpy() for r in tf.data.TFRecordDataset(path).take(count)]
    except (tf.errors.OpError, TypeError) as exc:
        raise WarmupError(f"cannot read warmup examples from {path}: {exc}") from exc
    if not examples:
        raise WarmupError(f"warmup examples file {path} holds no records")
    return examples


def _string_input_key(export_dir: str, signature: str) -> str:
    for meta_graph in read_saved_model_proto(export_dir).meta_graphs:
        if "serve" in meta_graph.meta_info_def.tags and signature in meta_graph.signature_def:
            inputs = meta_graph.signature_def[signature].inputs
            if len(inputs) != 1:
                raise WarmupError(
                    f"signature {signature!r} takes inputs {sorted(inputs)}; warmup from examples needs a "
                    "signature with one serialized tf.Example input"
                )
            return next(iter(inputs))
    raise WarmupError(f"export {export_dir} has no serving signature {signature!r}")


def _predict_log(model: str, signature: str, input_key: str, example: bytes) -> bytes:
    import tensorflow as tf
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    request = predict_pb2.PredictRequest(
        model_spec=model_pb2.ModelSpec(name=model, signature_name=signature)
    )
    request.inputs[input_key].CopyFrom(tf.make_tensor_proto([example], dtype=tf.string))
    log_record = prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request)
    )
    return log_record.SerializeToString()


def _write_tfrecord(path: str, records: list[bytes]) -> None:
    import tensorflow as tf

    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp"
    with tf.io.TFRecordWriter(tmp) as writer:
        for record in records:
            writer.write(record)
    os.replace(tmp, path)
