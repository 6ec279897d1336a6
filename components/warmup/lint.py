"""Check warmup records against the export before anything runs: every problem, each with its record.

TF Serving reads the warmup file while loading the model and fails the load on the first bad record, or —
worse — skips records it does not know and loads an unwarmed model (tensorflow/serving#1414). Lint reads
like TF Serving does and reports everything at once, each problem as record index, field, expected and
found, so a user can fix a file in one pass.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from typing import Literal

from components.warmup import tfrecord
from components.warmup.build import serialized_examples
from components.warmup.errors import LintProblem
from components.warmup.signatures import (
    CLASSIFY_METHOD,
    DEFAULT_SIGNATURE,
    METHOD_KINDS,
    REGRESS_METHOD,
    FeatureSpec,
    ServingGraph,
    SignatureSpec,
    dtype_name,
    shape_text,
)
from components.warmup.spec import MAX_WARMUP_RECORDS

ACCEPTED_KINDS = ("predict_log", "classify_log", "regress_log", "multi_inference_log")
_REJECTED_KINDS = {
    "session_run_log": "TF Serving's warmup fails the model load on it (Unimplemented)",
    "predict_streamed_log": "TF Serving's warmup does not replay streamed logs (the record warms nothing)",
}


@dataclasses.dataclass(frozen=True)
class LintReport:
    records: tuple[bytes, ...]  # what would be injected (the first 1000 when truncating)
    problems: tuple[LintProblem, ...]
    found: int  # records in the source before truncation
    kinds: dict[str, int]  # request kind -> records, over ``records``
    signatures: tuple[str, ...]

    @property
    def errors(self) -> tuple[LintProblem, ...]:
        return tuple(p for p in self.problems if p.severity == "error")

    @property
    def warnings(self) -> tuple[LintProblem, ...]:
        return tuple(p for p in self.problems if p.severity == "warning")


def lint_scan(scan: tfrecord.Scan, graph: ServingGraph, *, model_name: str, truncate: bool) -> LintReport:
    """Lint a warmup file as read from disk (its records, and the damage that stopped reading, if any)."""
    problems = [] if scan.error is None else [_frame_problem(scan.error)]
    if not scan.records and scan.error is None:
        problems.append(
            LintProblem(
                None,
                "file",
                "at least one PredictionLog record",
                "an empty file (TF Serving loads the model unwarmed)",
            )
        )
    report = lint_records(scan.records, graph, model_name=model_name, truncate=truncate)
    return dataclasses.replace(report, problems=(*problems, *report.problems))


def lint_records(
    records: Sequence[bytes], graph: ServingGraph, *, model_name: str, truncate: bool
) -> LintReport:
    """Lint serialized PredictionLog records; more than 1000 is an error unless ``truncate``."""
    problems: list[LintProblem] = []
    found = len(records)
    if found > MAX_WARMUP_RECORDS:
        if truncate:
            records = records[:MAX_WARMUP_RECORDS]
            problems.append(
                LintProblem(
                    None,
                    "records",
                    f"at most {MAX_WARMUP_RECORDS}",
                    f"{found}; truncated to the first {MAX_WARMUP_RECORDS}",
                    "warning",
                )
            )
        else:
            problems.append(
                LintProblem(
                    None,
                    "records",
                    f"at most {MAX_WARMUP_RECORDS} (TF Serving fails the model load past that)",
                    f"{found}; set warmup.truncate to keep the first {MAX_WARMUP_RECORDS}",
                )
            )
    checker = _RecordChecker(graph, model_name)
    for index, record in enumerate(records):
        problems += checker.check(index, record)
    return LintReport(
        records=tuple(records),
        problems=tuple(problems),
        found=found,
        kinds=dict(checker.kinds),
        signatures=tuple(sorted(checker.signatures)),
    )


def _frame_problem(error: tfrecord.FrameError) -> LintProblem:
    if error.kind == "not_tfrecord":
        return LintProblem(
            None,
            "file",
            "a TFRecord file of PredictionLog records (8-byte length, CRC32C, data, CRC32C per record)",
            f"bytes that are not a TFRecord: {error.detail}",
        )
    return LintProblem(
        error.record,
        "record",
        "a complete TFRecord frame with matching checksums",
        f"a {error.kind} record at byte {error.offset} ({error.detail}); records after it cannot be read",
    )


class _RecordChecker:
    """Checks one PredictionLog at a time against the serve graph; tallies kinds and signatures."""

    def __init__(self, graph: ServingGraph, model_name: str) -> None:
        self.graph = graph
        self.model_name = model_name
        self.kinds: Counter[str] = Counter()
        self.signatures: set[str] = set()
        self.index = 0  # the record being checked, and its problems
        self.problems: list[LintProblem] = []

    def check(self, index: int, record: bytes) -> list[LintProblem]:
        from google.protobuf.message import DecodeError
        from tensorflow_serving.apis import prediction_log_pb2

        self.index, self.problems = index, []
        try:
            log = prediction_log_pb2.PredictionLog.FromString(record)
        except DecodeError:
            self._add(
                "record",
                "a serialized tensorflow.serving.PredictionLog",
                f"{len(record)} bytes that do not parse as one",
            )
            return self.problems
        kind = log.WhichOneof("log_type")
        if kind is None:
            self._add(
                "log_type",
                f"one of {', '.join(ACCEPTED_KINDS)}",
                "none set, so TF Serving skips the record and warms nothing" + _looks_like_example(record),
            )
        elif kind in _REJECTED_KINDS:
            self._add("log_type", f"one of {', '.join(ACCEPTED_KINDS)}", f"{kind}: {_REJECTED_KINDS[kind]}")
        else:
            self.kinds[kind.removesuffix("_log")] += 1
            getattr(self, f"_{kind}")(getattr(log, kind).request, f"{kind}.request")
        return self.problems

    def _add(
        self, field: str, expected: str, found: str, severity: Literal["error", "warning"] = "error"
    ) -> None:
        self.problems.append(LintProblem(self.index, field, expected, found, severity))

    def _signature(self, model_spec, field: str, *, name_required: bool = False) -> SignatureSpec | None:
        if not model_spec.name:
            self._add(
                f"{field}.name",
                f"the model name {self.model_name!r}"
                + (" (MultiInference requires one)" if name_required else ""),
                "an empty name",
                "error" if name_required else "warning",
            )
        elif model_spec.name != self.model_name:
            self._add(f"{field}.name", repr(self.model_name), repr(model_spec.name), "warning")
        name = model_spec.signature_name or DEFAULT_SIGNATURE
        signature = self.graph.signatures.get(name)
        if signature is None:
            self._add(
                f"{field}.signature_name",
                f"a signature of the export: {sorted(self.graph.signatures)}",
                repr(name),
            )
            return None
        self.signatures.add(name)
        return signature

    # -- Predict -----------------------------------------------------------------------------------

    def _predict_log(self, request, field: str) -> None:
        import tensorflow as tf

        signature = self._signature(request.model_spec, f"{field}.model_spec")
        if signature is None:
            return
        expected, sent = set(signature.inputs), set(request.inputs)
        for key in sorted(expected - sent):
            spec = signature.inputs[key]
            self._add(
                f"{field}.inputs", f"input {key!r} ({spec.dtype_name} {spec.shape_text})", "no such input"
            )
        for key in sorted(sent - expected):
            self._add(
                f"{field}.inputs['{key}']",
                f"only the inputs {sorted(expected)} of signature {signature.name!r}",
                "an input the signature does not take",
            )
        batch = {}
        for key in sorted(expected & sent):
            spec, proto, where = signature.inputs[key], request.inputs[key], f"{field}.inputs['{key}']"
            dims = None if proto.tensor_shape.unknown_rank else tuple(d.size for d in proto.tensor_shape.dim)
            if proto.dtype != spec.dtype:
                self._add(f"{where}.dtype", spec.dtype_name, dtype_name(proto.dtype))
            if dims is None or not _shape_fits(dims, spec.shape):
                self._add(
                    f"{where}.tensor_shape",
                    spec.shape_text,
                    "unknown rank" if dims is None else shape_text(dims),
                )
            if dims:
                batch[key] = dims[0]
            if proto.dtype == spec.dtype and dims is not None:
                try:
                    values = tf.make_ndarray(proto)
                except (TypeError, ValueError) as exc:
                    self._add(
                        where, f"values that fill {shape_text(dims)}", f"content that does not decode ({exc})"
                    )
                    continue
                if key in signature.parsed:
                    for position, serialized in enumerate(values.reshape(-1)):
                        self._example(serialized, f"{where}[{position}]", signature.parsed[key])
        if batch and not any(batch.values()):  # (inputs routed per shard may differ in their first dimension)
            self._add(
                f"{field}.inputs", "a batch of at least one example", "a batch of 0 (nothing is warmed)"
            )
        for name in request.output_filter:
            if name not in signature.outputs:
                self._add(
                    f"{field}.output_filter",
                    f"outputs of {signature.name!r}: {sorted(signature.outputs)}",
                    repr(name),
                )

    # -- Classify / Regress / MultiInference ---------------------------------------------------------

    def _classify_log(self, request, field: str) -> None:
        self._single_input_request(request, field, "classify")

    def _regress_log(self, request, field: str) -> None:
        self._single_input_request(request, field, "regress")

    def _single_input_request(self, request, field: str, kind: str) -> None:
        signature = self._signature(request.model_spec, f"{field}.model_spec")
        if signature is None:
            return
        method = CLASSIFY_METHOD if kind == "classify" else REGRESS_METHOD
        if signature.method != method:
            self._add(
                f"{field}.model_spec.signature_name",
                f"a {kind} signature (method {method})",
                f"{signature.name!r} with method {signature.method!r}",
            )
            return
        if self._examples_signature(signature, f"{field}.model_spec.signature_name"):
            self._input(request.input, f"{field}.input", signature.parsed.get("inputs", ()))

    def _multi_inference_log(self, request, field: str) -> None:
        if not request.tasks:
            self._add(f"{field}.tasks", "at least one task", "none")
        names, seen, input_tensors = set(), set(), {}
        features: tuple[FeatureSpec, ...] = ()
        for position, task in enumerate(request.tasks):
            where = f"{field}.tasks[{position}]"
            names.add(task.model_spec.name)
            signature = self._signature(task.model_spec, f"{where}.model_spec", name_required=True)
            if signature is None:
                continue
            if signature.name in seen:
                self._add(
                    f"{where}.model_spec.signature_name", "each signature once", f"{signature.name!r} again"
                )
            seen.add(signature.name)
            if task.method_name not in (CLASSIFY_METHOD, REGRESS_METHOD):
                self._add(
                    f"{where}.method_name", f"{CLASSIFY_METHOD} or {REGRESS_METHOD}", repr(task.method_name)
                )
                continue
            if task.method_name != signature.method:
                self._add(
                    f"{where}.method_name",
                    f"{signature.method!r} (the method of {signature.name!r})",
                    repr(task.method_name),
                )
            if self._examples_signature(signature, f"{where}.model_spec.signature_name"):
                input_tensors[signature.name] = signature.inputs["inputs"].name
                features = features or signature.parsed.get("inputs", ())
        if len(names) > 1:
            self._add(f"{field}.tasks", "one model name across tasks", str(sorted(names)))
        if len(set(input_tensors.values())) > 1:
            self._add(f"{field}.tasks", "signatures that read the same input tensor", str(input_tensors))
        self._input(request.input, f"{field}.input", features)

    def _examples_signature(self, signature: SignatureSpec, field: str) -> bool:
        """Classify and regress signatures take exactly one input, named "inputs" (TF Serving's rule)."""
        if set(signature.inputs) == {"inputs"}:
            return True
        kind = METHOD_KINDS.get(signature.method, signature.method)
        self._add(
            field,
            f"a {kind} signature with the single input 'inputs'",
            f"{signature.name!r} with inputs {sorted(signature.inputs)}",
        )
        return False

    def _input(self, model_input, field: str, features: tuple[FeatureSpec, ...]) -> None:
        examples = serialized_examples(model_input)
        if not examples:
            self._add(
                field,
                "an example_list or example_list_with_context with at least one example",
                "an empty input",
            )
            return
        kind = model_input.WhichOneof("kind")
        for position, serialized in enumerate(examples):
            self._example(serialized, f"{field}.{kind}.examples[{position}]", features)

    def _example(self, serialized: bytes, field: str, features: tuple[FeatureSpec, ...]) -> None:
        """A serialized tf.Example against the features the model's ParseExample op reads."""
        from google.protobuf.message import DecodeError
        from tensorflow.core.example import example_pb2

        try:
            example = example_pb2.Example.FromString(serialized)
        except DecodeError:
            self._add(field, "a serialized tf.Example", f"{len(serialized)} bytes that do not parse as one")
            return
        present = example.features.feature
        # ParseExample ignores features it does not know; beside a missing one, such a name is its likely typo.
        unknown = sorted(set(present) - {spec.key for spec in features}) if features else []
        unparsed = f"; the example's features {unknown} are not parsed by the model (misspelled?)" if unknown else ""
        for spec in features:
            where = f"{field}.features['{spec.key}']"
            feature = present.get(spec.key)
            kind = feature.WhichOneof("kind") if feature is not None else None
            count = len(getattr(feature, kind).value) if kind else 0
            if kind is None or (count == 0 and kind == spec.list_kind):
                if spec.required:
                    self._add(
                        where,
                        f"{spec.list_kind} with {spec.values or 'some'} value(s)",
                        f"no such feature{unparsed}",
                    )
            elif kind != spec.list_kind:
                self._add(where, spec.list_kind, kind)
            elif spec.values is not None and count != spec.values:
                self._add(where, f"{spec.values} value(s) (shape {shape_text(spec.shape)})", f"{count}")


def _shape_fits(dims: tuple[int, ...], expected: tuple[int, ...] | None) -> bool:
    if expected is None:
        return True
    return len(dims) == len(expected) and all(e < 0 or e == d for d, e in zip(dims, expected))


def _looks_like_example(record: bytes) -> str:
    from google.protobuf.message import DecodeError
    from tensorflow.core.example import example_pb2

    try:
        example = example_pb2.Example.FromString(record)
    except DecodeError:
        return ""
    if not example.features.feature:
        return ""
    return (
        f" (the record parses as a tf.Example with features {sorted(example.features.feature)}: a warmup file "
        "holds PredictionLogs that wrap requests; use warmup source 'examples' to build them from tf.Examples)"
    )
