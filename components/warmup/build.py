"""Build warmup requests as serialized ``PredictionLog`` records, shaped by the signature they target.

The request kind follows the signature's method, as TF Serving dispatches it:

* predict  → ``PredictRequest``: serialized tf.Examples for a parsing receiver (a string input feeding a
  ParseExample op), else one tensor per input, cut from the example's feature of the same name;
* classify / regress → ``ClassificationRequest`` / ``RegressionRequest`` over an ``Input`` of examples;
* several classify/regress heads → one ``MultiInferenceRequest`` asking all of them at once.

Every request carries the model name and the signature name, and holds one example (batch size 1).
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Sequence
from typing import Any

from components.warmup.errors import WarmupError, WarmupSourceError
from components.warmup.signatures import FeatureSpec, ServingGraph, SignatureSpec, TensorSpec

MULTI_KINDS = ("classify", "regress")


@dataclasses.dataclass(frozen=True)
class Target:
    """What the requests ask for: the servable's name and one signature, or several heads."""

    model_name: str
    signature: str
    heads: tuple[str, ...] = ()


def from_examples(graph: ServingGraph, target: Target, examples: Sequence[bytes]) -> list[bytes]:
    """One request per serialized tf.Example."""
    from tensorflow.core.example import example_pb2

    return _requests(
        graph,
        target,
        examples,
        example=lambda item, features, index: example_pb2.Example.FromString(item),
        serialized=lambda item, key, features, index: item,
        tensors=lambda signature, item, index: {
            key: _tensor_from_feature(spec, example_pb2.Example.FromString(item), index)
            for key, spec in signature.inputs.items()
        },
    )


def from_instances(graph: ServingGraph, target: Target, instances: Sequence[Any]) -> list[bytes]:
    """One request per JSON instance (TF Serving REST "instances" row), converted by the signature's inputs."""
    return _requests(
        graph,
        target,
        instances,
        example=_example_from_instance,
        serialized=_serialized_example,
        tensors=_tensors_from_instance,
    )


def _requests(
    graph: ServingGraph, target: Target, items: Sequence[Any], *, example, serialized, tensors
) -> list[bytes]:
    """One request per item, of the kind the target signature (or heads) takes; converters per source."""
    from google.protobuf.message import DecodeError

    signatures = _signatures(graph, target)
    head = signatures[0]
    records = []
    for index, item in enumerate(items):
        try:
            if target.heads or head.kind in MULTI_KINDS:
                features = head.parsed.get(next(iter(head.inputs)), ())
                records.append(_input_request(target, signatures, example(item, features, index)))
            elif head.example_input is not None:
                key = head.example_input
                proto = _tensor(head.inputs[key], [serialized(item, key, head.parsed[key], index)])
                records.append(_predict(target, head, {key: proto}))
            else:
                records.append(_predict(target, head, tensors(head, item, index)))
        except (DecodeError, TypeError, ValueError) as exc:
            raise WarmupSourceError(
                f"item {index} of the warmup source does not convert for signature {head.name!r}: {exc}"
            ) from exc
    return records


def _signatures(graph: ServingGraph, target: Target) -> list[SignatureSpec]:
    if not target.heads:
        return [graph.signature(target.signature)]
    heads = [graph.signature(name) for name in target.heads]
    wrong = [f"{h.name} ({h.method})" for h in heads if h.kind not in MULTI_KINDS]
    if wrong:
        raise WarmupError(
            f"MultiInference asks classify or regress signatures only; {wrong} are not. "
            "Drop them from warmup.heads, or warm a predict signature through warmup.signature"
        )
    inputs = {h.name: sorted(t.name for t in h.inputs.values()) for h in heads}
    if len({tuple(v) for v in inputs.values()}) != 1:
        raise WarmupError(f"MultiInference heads must read the same input tensor; they read {inputs}")
    return heads


def _predict(target: Target, signature: SignatureSpec, tensors: dict) -> bytes:
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    request = predict_pb2.PredictRequest(
        model_spec=model_pb2.ModelSpec(name=target.model_name, signature_name=signature.name)
    )
    for key, proto in tensors.items():
        request.inputs[key].CopyFrom(proto)
    log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
    return log.SerializeToString()


def _input_request(target: Target, signatures: list[SignatureSpec], example) -> bytes:
    from tensorflow_serving.apis import (
        classification_pb2,
        inference_pb2,
        input_pb2,
        model_pb2,
        prediction_log_pb2,
        regression_pb2,
    )

    model_input = input_pb2.Input(example_list=input_pb2.ExampleList(examples=[example]))
    log = prediction_log_pb2.PredictionLog()
    if target.heads:
        request = inference_pb2.MultiInferenceRequest(input=model_input)
        for head in signatures:
            request.tasks.add(
                model_spec=model_pb2.ModelSpec(name=target.model_name, signature_name=head.name),
                method_name=head.method,
            )
        log.multi_inference_log.request.CopyFrom(request)
        return log.SerializeToString()
    (signature,) = signatures
    spec = model_pb2.ModelSpec(name=target.model_name, signature_name=signature.name)
    if signature.kind == "classify":
        log.classify_log.request.CopyFrom(
            classification_pb2.ClassificationRequest(model_spec=spec, input=model_input)
        )
    else:
        log.regress_log.request.CopyFrom(regression_pb2.RegressionRequest(model_spec=spec, input=model_input))
    return log.SerializeToString()


def serialized_examples(model_input) -> list[bytes]:
    """The examples of a request's ``Input`` as TF Serving feeds them: context bytes, then each example's.

    (Appending an example's bytes to its context's merges the two feature maps; on a shared key the
    example's feature wins, as protobuf map merging goes.)
    """
    kind = model_input.WhichOneof("kind")
    if kind is None:
        return []
    context = (
        model_input.example_list_with_context.context.SerializeToString()
        if kind == "example_list_with_context"
        else b""
    )
    return [context + example.SerializeToString() for example in getattr(model_input, kind).examples]


def _tensor(spec: TensorSpec, values: Any):
    import tensorflow as tf

    return tf.make_tensor_proto(values, dtype=tf.dtypes.as_dtype(spec.dtype))


def _tensor_from_feature(spec: TensorSpec, example, index: int):
    """The input ``spec.key`` for one example, from its feature of the same name (raw-tensor receivers)."""
    features = example.features.feature
    if spec.key not in features:
        raise WarmupSourceError(
            f"example {index} has no feature {spec.key!r} for the raw input {spec.key!r} "
            f"(it has {sorted(features)}); raw receivers are warmed from features named like their inputs"
        )
    feature = features[spec.key]
    kind = feature.WhichOneof("kind")
    values = list(getattr(feature, kind).value) if kind else []
    try:
        return _tensor(spec, _batch_of_one(values, spec.shape))
    except (TypeError, ValueError) as exc:
        raise WarmupSourceError(
            f"example {index}: feature {spec.key!r} ({kind}, {len(values)} values) does not fit input "
            f"{spec.key!r} ({spec.dtype_name} {spec.shape_text}): {exc}"
        ) from exc


def _batch_of_one(values: list, shape: tuple[int, ...] | None) -> Any:
    """``values`` shaped as one batch row of an input of ``shape``."""
    import numpy as np

    array = np.array(values, dtype=object if values and isinstance(values[0], bytes) else None)
    if shape is None:
        return array.reshape((1, -1)) if array.size != 1 else array.reshape((1,))
    if not shape:
        return array.reshape(())
    return array.reshape((1, *(d if d >= 0 else -1 for d in shape[1:])))


def _tensors_from_instance(signature: SignatureSpec, instance: Any, index: int) -> dict:
    """Tensors for a raw-input signature; the instance gets a batch dimension of 1."""
    import numpy as np
    import tensorflow as tf

    if not isinstance(instance, dict) or set(instance) == {"b64"}:  # a bare value: the only input
        if len(signature.inputs) != 1:
            raise WarmupSourceError(
                f"instance {index}: expected an object with the inputs {sorted(signature.inputs)} of "
                f"signature {signature.name!r}, found {str(instance)[:80]}"
            )
        instance = {next(iter(signature.inputs)): instance}
    tensors = {}
    for key, value in instance.items():
        spec = signature.inputs.get(key)
        try:
            if spec is None:  # kept so lint reports it as an input the signature does not take
                tensors[key] = tf.make_tensor_proto(np.asarray(_json_value(value))[None])
                continue
            array = np.asarray(_json_value(value), dtype=tf.dtypes.as_dtype(spec.dtype).as_numpy_dtype)
            tensors[key] = _tensor(spec, array if spec.shape == () else array[None])
        except (TypeError, ValueError) as exc:
            expected = f"{spec.dtype_name} {spec.shape_text}" if spec else "a tensor"
            raise WarmupSourceError(
                f"instance {index}: input {key!r} ({expected}) cannot take {str(value)[:80]}: {exc}"
            ) from exc
    return tensors


def _serialized_example(instance: Any, key: str, features: tuple[FeatureSpec, ...], index: int) -> bytes:
    """A serialized tf.Example from a b64 string (as TF Serving's REST API writes bytes) or a feature object."""
    if isinstance(instance, dict) and set(instance) == {key}:
        instance = instance[key]
    if isinstance(instance, dict) and set(instance) == {"b64"}:
        return _json_value(instance)
    return _example_from_instance(instance, features, index).SerializeToString()


def _example_from_instance(instance: Any, features: tuple[FeatureSpec, ...], index: int):
    """A tf.Example from ``{"feature": value or [values]}``, typed by the parsed feature spec where known."""
    from tensorflow.core.example import example_pb2

    if isinstance(instance, dict) and set(instance) == {"b64"}:
        return example_pb2.Example.FromString(_json_value(instance))
    if not isinstance(instance, dict):
        raise WarmupSourceError(
            f"instance {index}: expected an object of tf.Example features, e.g. "
            f'{{"{features[0].key if features else "feature"}": [...]}}, found {str(instance)[:80]}'
        )
    types = {f.key: f.list_kind for f in features}
    example = example_pb2.Example()
    for key, value in instance.items():
        values = _flatten(_json_value(value))
        kind = types.get(key) or _inferred_kind(values)
        feature = example.features.feature[key]
        try:
            if kind == "float_list":
                feature.float_list.value.extend(float(v) for v in values)
            elif kind == "int64_list":
                feature.int64_list.value.extend(_as_int(v) for v in values)
            else:
                feature.bytes_list.value.extend(
                    v if isinstance(v, bytes) else str(v).encode() for v in values
                )
        except (TypeError, ValueError) as exc:
            raise WarmupSourceError(
                f"instance {index}: feature {key!r} is a {kind} in the model; cannot take {str(value)[:80]}: {exc}"
            ) from exc
    return example


def _json_value(value: Any) -> Any:
    """JSON with TF Serving's REST convention for bytes: ``{"b64": "..."}``."""
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    if isinstance(value, str):
        return value.encode("utf-8")
    return value


def _flatten(value: Any) -> list:
    if isinstance(value, list):
        return [item for v in value for item in _flatten(v)]
    return [value]


def _inferred_kind(values: list) -> str:
    if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "int64_list"
    if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return "float_list"
    return "bytes_list"


def _as_int(value: Any) -> int:
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"{value} is not an integer")
    return int(value)
