"""Replay warmup records on the exported SavedModel, as TF Serving will while loading it.

The model is loaded under the serve tag into a fresh graph and session, and every record runs through its
signature the way TF Serving's warmup runs it (Predict feeds the request's tensors; Classify, Regress and
MultiInference feed serialized examples, context first, and their outputs are checked for the shapes TF
Serving's post-processing needs). The first record pays for graph pruning and kernel setup: that is the
cold start warmup exists to absorb, so it is timed apart from the rest.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

from components.artifacts import WarmupReplay
from components.warmup.build import serialized_examples
from components.warmup.errors import WarmupReplayError
from components.warmup.signatures import DEFAULT_SIGNATURE, SERVE_TAG, ServingGraph, SignatureSpec


def replay(graph: ServingGraph, records: Sequence[bytes], *, label: str = "") -> WarmupReplay:
    """Load ``graph``'s SavedModel and run every record; raise ``WarmupReplayError`` naming a failing one."""
    import numpy as np

    kinds: Counter[str] = Counter()
    signatures: set[str] = set()
    latencies: list[float] = []
    with serving_session(graph) as (session, load_seconds):
        for index, record in enumerate(records):
            started = time.perf_counter()
            kind, names = run_record(session, graph, record, index)
            latencies.append((time.perf_counter() - started) * 1000.0)
            kinds[kind] += 1
            signatures.update(names)
    rest = np.array(latencies[1:])
    return WarmupReplay(
        graph=label,
        records=len(latencies),
        kinds=dict(kinds),
        signatures=tuple(sorted(signatures)),
        load_seconds=round(load_seconds, 6),
        first_call_ms=round(latencies[0], 3) if latencies else 0.0,
        p50_ms=round(float(np.percentile(rest, 50)), 3) if rest.size else None,
        p99_ms=round(float(np.percentile(rest, 99)), 3) if rest.size else None,
    )


@contextlib.contextmanager
def serving_session(graph: ServingGraph) -> Iterator[tuple[Any, float]]:
    """A fresh session with the SavedModel loaded under the serve tag, and the seconds loading took."""
    import tensorflow as tf

    with tf.Graph().as_default() as tf_graph, tf.compat.v1.Session(graph=tf_graph) as session:
        started = time.perf_counter()
        try:
            tf.compat.v1.saved_model.loader.load(session, [SERVE_TAG], graph.export_dir)
        except Exception as exc:  # TF raises a zoo of types for SavedModels that do not load
            raise WarmupReplayError(
                f"{graph.export_dir} does not load under tag {SERVE_TAG!r}: {type(exc).__name__}: {exc}", None
            ) from exc
        yield session, time.perf_counter() - started


def run_record(session, graph: ServingGraph, record: bytes, index: int) -> tuple[str, list[str]]:
    """Run one record on a ``serving_session``; returns its kind and the signatures it asked."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    log = prediction_log_pb2.PredictionLog.FromString(record)
    kind = (log.WhichOneof("log_type") or "none").removesuffix("_log")
    request = getattr(log, f"{kind}_log").request if kind != "none" else None
    names: list[str] = []
    try:
        if kind == "predict":
            names = [request.model_spec.signature_name or DEFAULT_SIGNATURE]
            _predict(session, graph.signatures[names[0]], request)
        elif kind in ("classify", "regress", "multi_inference"):
            if kind == "multi_inference":
                names = [t.model_spec.signature_name or DEFAULT_SIGNATURE for t in request.tasks]
            else:
                names = [request.model_spec.signature_name or DEFAULT_SIGNATURE]
            heads = [graph.signatures[n] for n in names]
            examples = serialized_examples(request.input)
            outputs = _run_examples(session, heads, examples)
            for head in heads:
                _check_outputs(head, head.kind, outputs, len(examples))
        else:
            raise ValueError(f"{kind} records are not replayed by TF Serving's warmup")
    except (tf.errors.OpError, ValueError, TypeError, KeyError) as exc:
        message = _op_error_text(exc.message) if isinstance(exc, tf.errors.OpError) else str(exc)
        raise WarmupReplayError(
            f"warmup record {index} ({kind} on signature(s) {names or '?'}) fails on {graph.export_dir}: "
            f"{type(exc).__name__}: {message}; TF Serving would fail to load this version",
            index,
        ) from exc
    return kind, names


def _op_error_text(message: str) -> str:
    """The op's own words and its node, without graph-mode boilerplate and Python stack lines."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    nodes = [i for i, line in enumerate(lines) if line.startswith("Node: ")]
    if not nodes:
        return next((line for line in lines if line != "Graph execution error:"), message)
    said = [line for line in lines[nodes[-1] + 1 :] if not line.startswith("[[")]
    return f"{' '.join(said)} ({lines[nodes[-1]]})"


def _predict(session, signature: SignatureSpec, request) -> dict:
    import tensorflow as tf

    feeds = {signature.inputs[key].name: tf.make_ndarray(proto) for key, proto in request.inputs.items()}
    wanted = list(request.output_filter) or list(signature.outputs)
    return session.run({key: signature.outputs[key].name for key in wanted}, feed_dict=feeds)


def _run_examples(session, signatures: Sequence[SignatureSpec], examples: list[bytes]) -> dict:
    """Feed serialized examples to the heads' shared input; fetch every head's outputs."""
    import numpy as np

    fetches = {f"{s.name}/{key}": spec.name for s in signatures for key, spec in s.outputs.items()}
    return session.run(
        fetches, feed_dict={signatures[0].inputs["inputs"].name: np.array(examples, dtype=object)}
    )


def _check_outputs(signature: SignatureSpec, kind: str, outputs: dict, examples: int) -> None:
    """The shape checks of TF Serving's classify/regress post-processing."""
    values = {key: outputs[f"{signature.name}/{key}"] for key in signature.outputs}
    if kind == "regress":
        result = values.get("outputs")
        if (
            result is None
            or result.shape[:1] != (examples,)
            or result.ndim > 2
            or result.shape[1:] not in ((), (1,))
        ):
            shape = None if result is None else result.shape
            raise ValueError(
                f"regress output 'outputs' must be [batch] or [batch, 1] for {examples} example(s), got {shape}"
            )
        return
    classes, scores = values.get("classes"), values.get("scores")
    if classes is None and scores is None:
        raise ValueError("classify signature has neither 'classes' nor 'scores' outputs")
    for name, value in (("classes", classes), ("scores", scores)):
        if value is not None and (value.ndim != 2 or value.shape[0] != examples):
            raise ValueError(
                f"classify output {name!r} must be [batch, classes] for {examples} example(s), got {value.shape}"
            )
    if classes is not None and scores is not None and classes.shape != scores.shape:
        raise ValueError(
            f"classify outputs 'classes' {classes.shape} and 'scores' {scores.shape} differ in shape"
        )
