"""Warmup lint against a real export of the example model: every failure TF Serving would hit, all at once.

Each bad file is one users really write (tensorflow/serving#1562: tf.Examples instead of PredictionLogs;
#1414: records that warm nothing); each problem must name its record, field, expected and found.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from components.warmup import tfrecord
from components.warmup.lint import LintReport, lint_records, lint_scan
from components.warmup.signatures import ServingGraph, read_serving_graph
from components.warmup.sources import read_warmup_file
from examples import data, model

MODEL = "example"


@pytest.fixture(scope="module")
def graph(trained_model, tmp_path_factory) -> ServingGraph:
    """The serve graph of an all-modes export of the example model (signatures serving_default, classification)."""
    root = tmp_path_factory.mktemp("lint_export")
    estimator = model.make_estimator(root / "scratch")
    export_dir = estimator.experimental_export_all_saved_models(
        str(root / "export"),
        model.all_modes_receiver_fn_map(),
        checkpoint_path=str(trained_model.model_dir / "model.ckpt-300"),
    )
    return read_serving_graph(os.fsdecode(export_dir))


def examples(n: int, seed: int = 1) -> list[bytes]:
    arrays = data.generate_arrays(n, seed=seed)
    return [data.make_example(d, int(i)) for d, i in zip(arrays["dense"], arrays["item_id"])]


def predict(inputs: dict | None = None, signature: str = "serving_default", name: str = MODEL) -> bytes:
    import tensorflow as tf
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    if inputs is None:
        inputs = {"examples": tf.make_tensor_proto(examples(1), dtype=tf.string)}
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=name, signature_name=signature))
    for key, proto in inputs.items():
        request.inputs[key].CopyFrom(proto)
    log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
    return log.SerializeToString()


def classify(serialized: list[bytes], signature: str = "classification", name: str = MODEL) -> bytes:
    from tensorflow.core.example import example_pb2
    from tensorflow_serving.apis import input_pb2, model_pb2, prediction_log_pb2

    log = prediction_log_pb2.PredictionLog()
    request = log.classify_log.request
    request.model_spec.CopyFrom(model_pb2.ModelSpec(name=name, signature_name=signature))
    request.input.CopyFrom(
        input_pb2.Input(
            example_list=input_pb2.ExampleList(
                examples=[example_pb2.Example.FromString(s) for s in serialized]
            )
        )
    )
    return log.SerializeToString()


def write_with_tf(path: Path, records: list[bytes]) -> Path:
    """Written by TensorFlow's own writer, so lint reads exactly what TF Serving would."""
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)
    return path


def lint_file(path: Path, graph: ServingGraph, truncate: bool = False) -> LintReport:
    return lint_scan(read_warmup_file(str(path)), graph, model_name=MODEL, truncate=truncate)


def only_error(report: LintReport):
    assert len(report.errors) == 1, [str(p) for p in report.problems]
    return report.errors[0]


def test_a_good_file_has_no_problems_and_our_framing_matches_tensorflows(graph, tmp_path):
    import tensorflow as tf

    records = [predict() for _ in range(3)] + [classify(examples(2))]
    report = lint_file(write_with_tf(tmp_path / "good", records), graph)
    assert report.problems == ()
    assert report.records == tuple(records)
    assert report.kinds == {"predict": 3, "classify": 1}
    assert report.signatures == ("classification", "serving_default")
    # And TensorFlow reads what we frame.
    ours = tmp_path / "ours"
    ours.write_bytes(tfrecord.encode(records))
    assert [r.numpy() for r in tf.data.TFRecordDataset(str(ours))] == records


def test_not_a_tfrecord(graph, tmp_path):
    path = tmp_path / "warmup.json"
    path.write_text('{"instances": [{"dense": [0.1, 0.2], "item_id": 3}]}')
    problem = only_error(lint_file(path, graph))
    assert problem.record is None and problem.field == "file"
    assert "TFRecord" in problem.expected
    assert "not a TFRecord" in problem.found and "'{\"instances" in problem.found


def test_tf_examples_instead_of_prediction_logs_are_named_as_such(graph, trained_model, tmp_path):
    """tensorflow/serving#1562: the eval data itself shipped as the warmup file."""
    report = lint_file(trained_model.eval_data, graph)
    assert len(report.errors) == 500  # every record, not just the first
    first = report.errors[0]
    assert (first.record, first.field) == (0, "log_type")
    assert "predict_log" in first.expected
    assert "skips the record" in first.found and "parses as a tf.Example" in first.found
    assert "'dense'" in first.found


def test_corrupted_record_and_problems_before_it(graph, tmp_path):
    records = [predict(), predict(signature="nope"), predict(), predict()]
    framed = bytearray(tfrecord.encode(records))
    offset_of_2 = sum(12 + len(r) + 4 for r in records[:2])
    framed[offset_of_2 + 12 + 5] ^= 0xFF  # one flipped bit pattern inside record 2's data
    path = tmp_path / "corrupt"
    path.write_bytes(bytes(framed))
    report = lint_file(path, graph)
    assert [(p.record, p.field) for p in report.errors] == [
        (2, "record"),
        (1, "predict_log.request.model_spec.signature_name"),
    ]
    assert "corrupted" in report.errors[0].found and f"byte {offset_of_2}" in report.errors[0].found
    assert "records after it cannot be read" in report.errors[0].found


def test_truncated_file(graph, tmp_path):
    framed = tfrecord.encode([predict(), predict()])
    path = tmp_path / "truncated"
    path.write_bytes(framed[:-7])
    problem = only_error(lint_file(path, graph))
    assert problem.record == 1 and "truncated" in problem.found
    assert lint_file(path, graph).records == (predict(),)


def test_wrong_signature_name(graph):
    problem = only_error(
        lint_records([predict(signature="predict")], graph, model_name=MODEL, truncate=False)
    )
    assert problem.record == 0
    assert problem.field == "predict_log.request.model_spec.signature_name"
    assert problem.expected == "a signature of the export: ['classification', 'serving_default']"
    assert problem.found == "'predict'"


def test_missing_input_and_an_unexpected_one(graph):
    import tensorflow as tf

    record = predict({"example": tf.make_tensor_proto(examples(1), dtype=tf.string)})
    report = lint_records([predict(), record], graph, model_name=MODEL, truncate=False)
    assert [(p.record, p.field, p.found) for p in report.errors] == [
        (1, "predict_log.request.inputs", "no such input"),
        (1, "predict_log.request.inputs['example']", "an input the signature does not take"),
    ]
    assert report.errors[0].expected == "input 'examples' (DT_STRING [None])"


def test_wrong_dtype(graph):
    import tensorflow as tf

    record = predict({"examples": tf.make_tensor_proto(np.zeros([1], np.float32))})
    problem = only_error(lint_records([record], graph, model_name=MODEL, truncate=False))
    assert (problem.record, problem.field) == (0, "predict_log.request.inputs['examples'].dtype")
    assert (problem.expected, problem.found) == ("DT_STRING", "DT_FLOAT")


def test_wrong_shape(graph):
    import tensorflow as tf

    record = predict(
        {"examples": tf.make_tensor_proto([examples(1)], dtype=tf.string)}
    )  # [1, 1], not [batch]
    problem = only_error(lint_records([record], graph, model_name=MODEL, truncate=False))
    assert (problem.field, problem.expected, problem.found) == (
        "predict_log.request.inputs['examples'].tensor_shape",
        "[None]",
        "[1, 1]",
    )


def test_empty_batch_warms_nothing(graph):
    import tensorflow as tf

    record = predict(
        {"examples": tf.make_tensor_proto(np.array([], dtype=object), dtype=tf.string, shape=[0])}
    )
    problem = only_error(lint_records([record], graph, model_name=MODEL, truncate=False))
    assert problem.expected == "a batch of at least one example"


def test_1001_records_fail_unless_truncating(graph, tmp_path):
    path = write_with_tf(tmp_path / "big", [predict()] * 1001)
    problem = only_error(lint_file(path, graph))
    assert (problem.record, problem.field) == (None, "records")
    assert "at most 1000" in problem.expected and problem.found.startswith("1001;")

    report = lint_file(path, graph, truncate=True)
    assert report.errors == ()
    (warning,) = report.warnings
    assert warning.found == "1001; truncated to the first 1000"
    assert len(report.records) == 1000 and report.found == 1001


def test_exactly_1000_records_pass(graph):
    assert lint_records([predict()] * 1000, graph, model_name=MODEL, truncate=False).problems == ()


def test_empty_file(graph, tmp_path):
    path = tmp_path / "empty"
    path.write_bytes(b"")
    problem = only_error(lint_file(path, graph))
    assert (problem.record, problem.field) == (None, "file")
    assert "an empty file" in problem.found


def test_session_run_and_streamed_logs_are_rejected(graph):
    from tensorflow_serving.apis import prediction_log_pb2

    session_run = prediction_log_pb2.PredictionLog()
    session_run.session_run_log.request.feed.add(name="examples:0")
    streamed = prediction_log_pb2.PredictionLog()
    streamed.predict_streamed_log.request.add()
    report = lint_records(
        [session_run.SerializeToString(), streamed.SerializeToString()],
        graph,
        model_name=MODEL,
        truncate=False,
    )
    assert [(p.record, p.field) for p in report.errors] == [(0, "log_type"), (1, "log_type")]
    assert report.errors[0].found.startswith("session_run_log: TF Serving's warmup fails the model load")
    assert report.errors[1].found.startswith("predict_streamed_log")


def test_every_problem_of_every_record_is_reported(graph):
    import tensorflow as tf

    bad_dtype = predict({"examples": tf.make_tensor_proto(np.zeros([2], np.int64))})
    records = [predict(), b"\xff\xff\xff not a proto", bad_dtype, predict(signature="x"), predict()]
    report = lint_records(records, graph, model_name=MODEL, truncate=False)
    assert [p.record for p in report.errors] == [1, 2, 3]
    for problem in report.errors:
        text = str(problem)
        assert text.startswith(f"record {problem.record}: ") and "expected" in text and "found" in text


def test_examples_missing_features_or_of_the_wrong_kind(graph):
    """tensorflow/serving#1528: tf.Example-input estimators; lint reads the model's ParseExample spec."""
    from tensorflow.core.example import example_pb2

    wrong = example_pb2.Example()
    wrong.features.feature["dense"].int64_list.value.extend([1] * 8)
    wrong.features.feature["item_id"].int64_list.value.append(3)
    short = example_pb2.Example.FromString(examples(1)[0])
    del short.features.feature["dense"].float_list.value[3:]
    missing = example_pb2.Example.FromString(examples(1)[0])
    del missing.features.feature["item_id"]
    serialized = [e.SerializeToString() for e in (wrong, short, missing)]
    report = lint_records([classify(serialized)], graph, model_name=MODEL, truncate=False)
    field = "classify_log.request.input.example_list.examples[{}].features['{}']"
    assert [(p.field, p.expected, p.found) for p in report.errors] == [
        (field.format(0, "dense"), "float_list", "int64_list"),
        (field.format(1, "dense"), "8 value(s) (shape [8])", "3"),
        (field.format(2, "item_id"), "int64_list with 1 value(s)", "no such feature"),
    ]


def test_request_kind_must_fit_the_signature_method(graph):
    from tensorflow_serving.apis import prediction_log_pb2

    on_predict = classify(examples(1), signature="serving_default")
    multi = prediction_log_pb2.PredictionLog()
    request = multi.multi_inference_log.request
    request.tasks.add(method_name="tensorflow/serving/classify").model_spec.signature_name = "classification"
    request.tasks.add(method_name="tensorflow/serving/predict").model_spec.signature_name = "serving_default"
    request.input.example_list.examples.add().ParseFromString(examples(1)[0])
    report = lint_records([on_predict, multi.SerializeToString()], graph, model_name=MODEL, truncate=False)
    assert [(p.record, p.field) for p in report.errors] == [
        (0, "classify_log.request.model_spec.signature_name"),
        (1, "multi_inference_log.request.tasks[0].model_spec.name"),  # MultiInference needs the model name
        (1, "multi_inference_log.request.tasks[1].model_spec.name"),
        (1, "multi_inference_log.request.tasks[1].method_name"),
    ]
    assert "a classify signature" in report.errors[0].expected


def test_a_different_model_name_is_only_a_warning(graph):
    report = lint_records([predict(name="other")], graph, model_name=MODEL, truncate=False)
    assert report.errors == ()
    (warning,) = report.warnings
    assert (warning.field, warning.expected, warning.found) == (
        "predict_log.request.model_spec.name",
        "'example'",
        "'other'",
    )


def test_context_features_merge_into_each_example_as_tf_serving_merges_them(graph):
    from tensorflow_serving.apis import prediction_log_pb2

    from components.warmup.replay import replay

    def with_context(context_features: dict, example_features: dict) -> bytes:
        log = prediction_log_pb2.PredictionLog()
        request = log.classify_log.request
        request.model_spec.name, request.model_spec.signature_name = MODEL, "classification"
        inputs = request.input.example_list_with_context
        for target, features in (
            (inputs.context, context_features),
            (inputs.examples.add(), example_features),
        ):
            for key, values in features.items():
                feature = target.features.feature[key]
                (feature.float_list if key == "dense" else feature.int64_list).value.extend(values)
        return log.SerializeToString()

    split = with_context({"item_id": [3]}, {"dense": [0.5] * 8})  # the context supplies item_id
    overridden = with_context(
        {"dense": [0.5] * 7}, {"dense": [0.5] * 8, "item_id": [3]}
    )  # the example's wins
    missing = with_context({"dense": [0.5] * 8}, {"dense": [0.5] * 8})  # nobody supplies item_id
    report = lint_records([split, overridden, missing], graph, model_name=MODEL, truncate=False)
    problem = only_error(report)
    assert problem.record == 2
    assert (
        problem.field
        == "classify_log.request.input.example_list_with_context.examples[0].features['item_id']"
    )
    assert (problem.expected, problem.found) == ("int64_list with 1 value(s)", "no such feature")
    assert replay(graph, [split, overridden]).kinds == {"classify": 2}


def test_a_misspelled_feature_is_named_beside_the_missing_one(graph):
    """ParseExample ignores a feature it does not know: the missing one's likely typo is named with it."""
    from tensorflow.core.example import example_pb2

    typo = example_pb2.Example.FromString(examples(1)[0])
    typo.features.feature["itemid"].CopyFrom(typo.features.feature["item_id"])
    del typo.features.feature["item_id"]
    extra = example_pb2.Example.FromString(examples(1)[0])
    extra.features.feature["label"].int64_list.value.append(1)  # present beside every parsed one: fine
    report = lint_records(
        [classify([typo.SerializeToString(), extra.SerializeToString()])], graph, model_name=MODEL, truncate=False
    )
    (problem,) = report.problems
    assert str(problem) == (
        "record 0: classify_log.request.input.example_list.examples[0].features['item_id']: "
        "expected int64_list with 1 value(s), found no such feature; "
        "the example's features ['itemid'] are not parsed by the model (misspelled?)"
    )
