"""Warmup end to end on real SavedModels: every source, every request kind, replay, injection, publication.

Exports are made once per module from the session's trained example model (predict + classify signatures,
a parsing receiver and a raw-tensor receiver) and from canned estimators nobody here wrote
(LinearClassifier / LinearRegressor: classify, regress, and both heads for MultiInference).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from components.artifacts import ExportArtifact
from components.config import ConfigError
from components.layout import WARMUP_PATH
from components.manifest import MANIFEST_PATH, read_manifest
from components.pipeline.options import RunOptions
from components.pipeline.runner import run_pipeline
from components.pipeline.stages import ledger_of, warmup_stage
from components.warmup import build, sources, tfrecord
from components.warmup.errors import WarmupError, WarmupLintError, WarmupReplayError, WarmupSourceError
from components.warmup.executor import inject_warmup
from components.warmup.inject import warmup_targets, write_warmup
from components.warmup.replay import replay
from components.warmup.signatures import read_serving_graph
from components.warmup.spec import WarmupParams
from examples import data, model

STEP = 300


# ------------------------------------------------------------------------------------------------
# Fixtures: real exports, made once.


@pytest.fixture(scope="module")
def exports(trained_model, tmp_path_factory) -> dict[str, str]:
    import tensorflow as tf

    root = tmp_path_factory.mktemp("warmup_exports")
    checkpoint = str(trained_model.model_dir / f"model.ckpt-{STEP}")
    estimator = model.make_estimator(root / "scratch")
    out = {
        "example": estimator.experimental_export_all_saved_models(
            str(root / "example"), model.all_modes_receiver_fn_map(), checkpoint_path=checkpoint
        ),
        "raw": estimator.export_saved_model(
            str(root / "raw"), model.raw_serving_input_receiver_fn, checkpoint_path=checkpoint
        ),
    }
    columns = [
        tf.feature_column.numeric_column(data.DENSE_KEY, shape=[data.DENSE_DIM]),
        tf.feature_column.numeric_column(data.ITEM_ID_KEY, dtype=tf.int64),
    ]
    receiver = tf.estimator.export.build_parsing_serving_input_receiver_fn(
        tf.feature_column.make_parse_example_spec(columns)
    )

    def input_fn():
        dataset = tf.data.TFRecordDataset(str(trained_model.data_dir / "train.tfrecord")).batch(32)
        return dataset.map(lambda s: model._parse_batch(s, with_label=True))

    for name, canned in (
        ("classifier", tf.estimator.LinearClassifier),
        ("regressor", tf.estimator.LinearRegressor),
    ):
        estimator = canned(columns, model_dir=str(root / f"{name}_model"))
        estimator.train(input_fn, steps=5)
        out[name] = estimator.export_saved_model(str(root / name), receiver)
    return {k: os.fsdecode(v) for k, v in out.items()}


@pytest.fixture
def export_copy(exports, tmp_path):
    """A private copy of one export, as an ExportArtifact in 'staging'."""

    def make(name: str = "example") -> ExportArtifact:
        target = tmp_path / "staging" / name / str(STEP)
        shutil.copytree(exports[name], target)
        return ExportArtifact(
            uri=str(target),
            model_name="example",
            strategy="all_modes",
            version=str(STEP),
            step=STEP,
            checkpoint_uri=f"/ckpt/model.ckpt-{STEP}",
        )

    return make


def warmup_config(make_config, trained_model, **warmup):
    settings = {"source": "examples", "path": str(trained_model.eval_data), "num_records": 10, **warmup}
    return make_config(trained_model, warmup=settings)


def eval_examples(trained_model, n: int) -> list[bytes]:
    return sources.read_examples(str(trained_model.eval_data), n)


def logs(records):
    from tensorflow_serving.apis import prediction_log_pb2

    return [prediction_log_pb2.PredictionLog.FromString(r) for r in records]


def read_file(export_dir: str) -> tuple[bytes, ...]:
    with open(os.path.join(export_dir, WARMUP_PATH), "rb") as handle:
        found = tfrecord.scan(handle)
    assert found.error is None
    return found.records


def snapshot(folder: str) -> dict[str, bytes]:
    return {
        os.path.relpath(os.path.join(d, f), folder): Path(d, f).read_bytes()
        for d, _, fs in os.walk(folder)
        for f in fs
    }


# ------------------------------------------------------------------------------------------------
# Sources and request kinds.


def test_examples_source_predict_requests_carry_model_signature_and_the_examples(exports, trained_model):
    import tensorflow as tf

    graph = read_serving_graph(exports["example"])
    examples = eval_examples(trained_model, 10)
    records = build.from_examples(graph, build.Target("example", "serving_default"), examples)
    parsed = logs(records)
    assert [p.WhichOneof("log_type") for p in parsed] == ["predict_log"] * 10
    for log, example in zip(parsed, examples):
        request = log.predict_log.request
        assert (request.model_spec.name, request.model_spec.signature_name) == ("example", "serving_default")
        assert list(request.inputs) == ["examples"]
        assert tf.make_ndarray(request.inputs["examples"]).tolist() == [example]
    stats = replay(graph, records)
    assert (stats.records, stats.kinds, stats.signatures) == (10, {"predict": 10}, ("serving_default",))


def test_examples_source_for_a_raw_receiver_sends_tensors(exports, trained_model):
    import tensorflow as tf

    graph = read_serving_graph(exports["raw"])
    examples = eval_examples(trained_model, 5)
    records = build.from_examples(graph, build.Target("example", "serving_default"), examples)
    request = logs(records)[2].predict_log.request
    expected = tf.io.parse_example(tf.constant(examples), data.feature_spec())
    dense = tf.make_ndarray(request.inputs["dense"])
    assert dense.dtype == np.float32 and dense.shape == (1, data.DENSE_DIM)
    np.testing.assert_array_equal(dense[0], expected["dense"].numpy()[2])
    item_id = tf.make_ndarray(request.inputs["item_id"])
    assert item_id.dtype == np.int64 and item_id.tolist() == [expected["item_id"].numpy()[2]]
    assert replay(graph, records).kinds == {"predict": 5}


def test_raw_receiver_needs_features_named_like_its_inputs(exports):
    from tensorflow.core.example import example_pb2

    graph = read_serving_graph(exports["raw"])
    example = example_pb2.Example()
    example.features.feature["other"].float_list.value.append(1.0)
    with pytest.raises(WarmupSourceError, match=r"example 0 has no feature 'dense'.*\['other'\]"):
        build.from_examples(graph, build.Target("example", "serving_default"), [example.SerializeToString()])


def test_json_instances_for_a_parsing_receiver_are_typed_by_the_models_feature_spec(exports, tmp_path):
    import base64

    import tensorflow as tf

    graph = read_serving_graph(exports["example"])
    serialized = data.make_example(np.full(8, 0.5), 7)
    path = tmp_path / "instances.json"
    path.write_text(
        json.dumps(
            {
                "instances": [
                    {"dense": [1, 2, 3, 4, 5, 6, 7, 8], "item_id": 3},  # ints, but the model parses floats
                    {"b64": base64.b64encode(serialized).decode()},
                ]
            }
        )
    )
    records = build.from_instances(
        graph, build.Target("example", "serving_default"), sources.read_instances(str(path))
    )
    first, second = (
        tf.make_ndarray(p.predict_log.request.inputs["examples"]).tolist() for p in logs(records)
    )
    parsed = tf.io.parse_example(tf.constant(first), data.feature_spec())
    assert parsed["dense"].numpy().tolist() == [[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]]
    assert second == [serialized]
    assert replay(graph, records).records == 2


def test_json_instances_for_a_raw_receiver(exports, tmp_path):
    import tensorflow as tf

    graph = read_serving_graph(exports["raw"])
    path = tmp_path / "instances.json"
    path.write_text(json.dumps({"instances": [{"dense": [0.25] * 8, "item_id": 11}] * 3}))
    records = build.from_instances(
        graph, build.Target("example", "serving_default"), sources.read_instances(str(path))
    )
    request = logs(records)[0].predict_log.request
    assert tf.make_ndarray(request.inputs["dense"]).shape == (1, 8)
    assert tf.make_ndarray(request.inputs["item_id"]).tolist() == [11]
    assert replay(graph, records).kinds == {"predict": 3}


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            '{"instances": [{"dense": [0.1], "item_id": 1}, {"dense": "abc", "item_id": 1}]}',
            r"instance 1: input 'dense'",
        ),
        ('{"instances": [0.5]}', r"instance 0: expected an object with the inputs \['dense', 'item_id'\]"),
        ("[1, 2", r"is not JSON"),
        ('{"rows": []}', r'expected an object with "instances"'),
        ('{"instances": []}', r"expected a non-empty list of instances"),
    ],
)
def test_bad_json_instances_are_named(exports, tmp_path, text, error):
    graph = read_serving_graph(exports["raw"])
    path = tmp_path / "instances.json"
    path.write_text(text)
    with pytest.raises(WarmupSourceError, match=error):
        build.from_instances(
            graph, build.Target("example", "serving_default"), sources.read_instances(str(path))
        )


def test_sources_on_gcs_are_read_through_storage(gcs_bucket, trained_model, tmp_path):
    from components.storage import storage_for

    examples_uri = f"gs://{gcs_bucket}/warmup/eval.tfrecord"
    instances_uri = f"gs://{gcs_bucket}/warmup/instances.json"
    storage_for(examples_uri).upload_file(str(trained_model.eval_data), examples_uri)
    storage_for(instances_uri).write_bytes(instances_uri, b'{"instances": [{"item_id": 1}]}')
    assert sources.read_examples(examples_uri, 3) == eval_examples(trained_model, 3)
    assert sources.read_instances(instances_uri) == [{"item_id": 1}]
    assert sources.read_warmup_file(examples_uri).records[:3] == tuple(eval_examples(trained_model, 3))
    with pytest.raises(WarmupSourceError, match="cannot read warmup source"):
        sources.read_examples(f"gs://{gcs_bucket}/missing.tfrecord", 3)


@pytest.mark.parametrize(
    ("instance", "error"),
    [
        (
            {"b64": "not base64!"},
            r"item 0 of the warmup source does not convert for signature 'classification'",
        ),
        ({"b64": "aGVsbG8="}, r"item 0 of the warmup source does not convert"),  # "hello": not a tf.Example
        ({"item_id": 2.5}, r"instance 0: feature 'item_id' is a int64_list"),
    ],
)
def test_bad_instances_for_a_parsing_receiver(exports, tmp_path, instance, error):
    graph = read_serving_graph(exports["example"])
    with pytest.raises(WarmupSourceError, match=error):
        build.from_instances(graph, build.Target("example", "classification"), [instance])


def test_eval_examples_file_problems_are_source_errors(tmp_path):
    missing = tmp_path / "missing.tfrecord"
    with pytest.raises(WarmupSourceError, match="does not exist"):
        sources.read_examples(str(missing), 10)
    empty = tmp_path / "empty.tfrecord"
    empty.write_bytes(b"")
    with pytest.raises(WarmupSourceError, match="holds no records"):
        sources.read_examples(str(empty), 10)
    text = tmp_path / "text.tfrecord"
    text.write_text("dense,item_id\n0.1,3\n")
    with pytest.raises(WarmupSourceError, match="not a TFRecord file"):
        sources.read_examples(str(text), 10)


def test_example_models_classification_signature_gets_classify_requests(exports, trained_model):
    graph = read_serving_graph(exports["example"])
    records = build.from_examples(
        graph, build.Target("example", "classification"), eval_examples(trained_model, 4)
    )
    request = logs(records)[0].classify_log.request
    assert (request.model_spec.name, request.model_spec.signature_name) == ("example", "classification")
    assert len(request.input.example_list.examples) == 1
    assert replay(graph, records).kinds == {"classify": 4}


def test_canned_classifier_classify_and_regressor_regress(exports, trained_model):
    examples = eval_examples(trained_model, 6)
    classifier = read_serving_graph(exports["classifier"])
    records = build.from_examples(classifier, build.Target("linear", "serving_default"), examples)
    assert {p.WhichOneof("log_type") for p in logs(records)} == {"classify_log"}
    assert replay(classifier, records).kinds == {"classify": 6}

    regressor = read_serving_graph(exports["regressor"])
    records = build.from_examples(regressor, build.Target("linear", "regression"), examples)
    assert {p.WhichOneof("log_type") for p in logs(records)} == {"regress_log"}
    stats = replay(regressor, records)
    assert (stats.kinds, stats.signatures) == ({"regress": 6}, ("regression",))


def test_several_heads_make_multi_inference_requests(exports, trained_model):
    graph = read_serving_graph(exports["classifier"])
    target = build.Target("linear", "serving_default", heads=("classification", "regression"))
    records = build.from_examples(graph, target, eval_examples(trained_model, 3))
    request = logs(records)[0].multi_inference_log.request
    assert [(t.model_spec.name, t.model_spec.signature_name, t.method_name) for t in request.tasks] == [
        ("linear", "classification", "tensorflow/serving/classify"),
        ("linear", "regression", "tensorflow/serving/regress"),
    ]
    stats = replay(graph, records)
    assert (stats.kinds, stats.signatures) == ({"multi_inference": 3}, ("classification", "regression"))


def test_multi_inference_heads_must_be_classify_or_regress(exports, trained_model):
    graph = read_serving_graph(exports["classifier"])
    target = build.Target("linear", "serving_default", heads=("classification", "predict"))
    with pytest.raises(
        WarmupError,
        match=r"classify or regress signatures only; \['predict \(tensorflow/serving/predict\)'\]",
    ):
        build.from_examples(graph, target, eval_examples(trained_model, 1))


def test_unknown_signature_lists_the_exports_signatures(exports, trained_model):
    graph = read_serving_graph(exports["example"])
    with pytest.raises(
        WarmupError, match=r"no serving signature 'predict'; it has \['classification', 'serving_default'\]"
    ):
        build.from_examples(graph, build.Target("example", "predict"), eval_examples(trained_model, 1))


# ------------------------------------------------------------------------------------------------
# Replay.


def test_replay_times_the_cold_first_call_apart_from_the_rest(exports, trained_model):
    graph = read_serving_graph(exports["example"])
    records = build.from_examples(
        graph, build.Target("example", "serving_default"), eval_examples(trained_model, 50)
    )
    stats = replay(graph, records, label="entry")
    assert stats.graph == "entry" and stats.records == 50
    assert stats.load_seconds > 0 and stats.first_call_ms > 0
    assert 0 < stats.p50_ms <= stats.p99_ms
    single = replay(graph, records[:1])
    assert single.records == 1 and single.p50_ms is None and single.p99_ms is None


def nan_checking_model(path: Path) -> str:
    """A serving graph that fails at run time on a non-finite input, as real models do on bad data."""
    import tensorflow as tf

    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        x = tf.compat.v1.placeholder(tf.float32, [None], name="x")
        y = tf.debugging.check_numerics(x * 2.0, "x must be finite")
        builder = tf.compat.v1.saved_model.Builder(str(path))
        signature = tf.compat.v1.saved_model.predict_signature_def({"x": x}, {"y": y})
        builder.add_meta_graph_and_variables(
            session, ["serve"], signature_def_map={"serving_default": signature}
        )
        builder.save()
    return str(path)


def test_a_failing_record_is_named(tmp_path):
    graph = read_serving_graph(nan_checking_model(tmp_path / "nan_model"))
    instances = [1.0, 2.0, 3.0, float("nan"), 4.0]
    records = build.from_instances(graph, build.Target("nan", "serving_default"), instances)
    with pytest.raises(
        WarmupReplayError, match=r"warmup record 3 \(predict on signature\(s\) \['serving_default'\]\)"
    ) as caught:
        replay(graph, records)
    assert caught.value.record == 3
    assert "x must be finite" in str(caught.value)


# ------------------------------------------------------------------------------------------------
# Inject, through the stage's executor.


def test_inject_writes_the_file_atomically_and_records_stats(export_copy, make_config, trained_model):
    export = export_copy()
    config = warmup_config(make_config, trained_model)
    before = snapshot(export.uri)
    warmed = inject_warmup(WarmupParams(config), export)
    records = read_file(export.uri)
    assert len(records) == 10 and warmed.warmup_records == 10
    assert set(snapshot(export.uri)) - set(before) == {WARMUP_PATH}  # no temp file left behind
    summary = warmed.warmup
    assert (summary.source, summary.records, summary.truncated_from, summary.warnings) == (
        "examples",
        10,
        None,
        (),
    )
    (stats,) = summary.replays
    assert (stats.graph, stats.records, stats.kinds) == ("", 10, {"predict": 10})
    assert ExportArtifact.from_json(warmed.to_json()) == warmed  # XCom carries it


def test_servable_name_is_the_model_name_on_requests(export_copy, make_config, trained_model):
    config = warmup_config(make_config, trained_model)
    config = dataclasses.replace(
        config, strategies=(dataclasses.replace(config.strategies[0], servable="example-serving"),)
    )
    export = export_copy()
    inject_warmup(WarmupParams(config), export)
    assert {p.predict_log.request.model_spec.name for p in logs(read_file(export.uri))} == {"example-serving"}


def test_user_file_is_linted_replayed_and_copied_as_is(
    export_copy, make_config, trained_model, exports, tmp_path
):
    graph = read_serving_graph(exports["example"])
    records = build.from_examples(
        graph, build.Target("example", "classification"), eval_examples(trained_model, 7)
    )
    user_file = tmp_path / "warmup_requests"
    user_file.write_bytes(tfrecord.encode(records))
    export = export_copy()
    warmed = inject_warmup(
        WarmupParams(warmup_config(make_config, trained_model, source="file", path=str(user_file))), export
    )
    assert Path(export.uri, WARMUP_PATH).read_bytes() == user_file.read_bytes()
    assert warmed.warmup.replays[0].kinds == {"classify": 7}


def test_bad_user_file_lists_every_problem_and_leaves_the_export_untouched(
    export_copy, make_config, trained_model, tmp_path
):
    user_file = tmp_path / "warmup_requests"
    shutil.copy(trained_model.eval_data, user_file)  # tf.Examples, not PredictionLogs (serving#1562)
    export = export_copy()
    before = snapshot(export.uri)
    config = warmup_config(make_config, trained_model, source="file", path=str(user_file))
    with pytest.raises(WarmupLintError) as caught:
        inject_warmup(WarmupParams(config), export)
    assert len(caught.value.problems) == 500
    assert "record 499: log_type: expected one of predict_log" in str(caught.value)
    assert snapshot(export.uri) == before


def test_an_exports_own_warmup_file_is_checked_even_with_source_none(
    export_copy, make_config, trained_model, exports
):
    """An exporter's warmup_file / assets_extra may already have put one there: nothing ships unchecked."""
    graph = read_serving_graph(exports["example"])
    records = build.from_examples(
        graph, build.Target("example", "serving_default"), eval_examples(trained_model, 4)
    )
    config = warmup_config(make_config, trained_model, source="none")
    export = export_copy()
    own = Path(export.uri, WARMUP_PATH)
    own.parent.mkdir(exist_ok=True)
    own.write_bytes(tfrecord.encode(records))
    before = snapshot(export.uri)
    warmed = warmup_stage(config, export)
    assert (warmed.warmup.source, warmed.warmup_records, warmed.warmup.replays[0].records) == ("export", 4, 4)
    assert snapshot(export.uri) == before  # checked, not rewritten

    shutil.copy(trained_model.eval_data, own)  # tf.Examples where PredictionLogs belong
    with pytest.raises(WarmupLintError, match="record 0: log_type"):
        warmup_stage(config, export)


def test_json_source_beyond_1000_truncates_with_a_warning_when_asked(
    export_copy, make_config, trained_model, tmp_path
):
    path = tmp_path / "instances.json"
    path.write_text(json.dumps({"instances": [{"dense": [0.1] * 8, "item_id": i} for i in range(1001)]}))
    config = warmup_config(
        make_config, trained_model, source="json", path=str(path), num_records=1001, truncate=True
    )
    export = export_copy()
    warmed = inject_warmup(WarmupParams(config), export)
    assert len(read_file(export.uri)) == 1000
    assert (warmed.warmup_records, warmed.warmup.truncated_from) == (1000, 1001)
    assert warmed.warmup.warnings == (
        "file: records: expected at most 1000, found 1001; truncated to the first 1000 (warning)",
    )


def test_variables_by_reference_are_never_written(export_copy, make_config, trained_model, tmp_path):
    """An export whose variables/ are hard links to checkpoint files (variables by reference)."""
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    for source in trained_model.model_dir.glob(f"model.ckpt-{STEP}.*"):
        shutil.copy(source, checkpoint / source.name)
    export = export_copy()
    variables = Path(export.uri, "variables")
    shutil.rmtree(variables)
    variables.mkdir()
    for source in checkpoint.iterdir():
        os.link(source, variables / source.name.replace(f"model.ckpt-{STEP}", "variables"))
    # A warmup file already hard-linked from elsewhere is replaced, not written through.
    elsewhere = tmp_path / "old_warmup"
    elsewhere.write_bytes(b"old")
    Path(export.uri, "assets.extra").mkdir(exist_ok=True)
    os.link(elsewhere, Path(export.uri, WARMUP_PATH))
    checkpoint_before = {p.name: (p.stat().st_ino, p.read_bytes()) for p in checkpoint.iterdir()}

    warmed = inject_warmup(WarmupParams(warmup_config(make_config, trained_model)), export)
    assert warmed.warmup.replays[0].records == 10  # the model loaded through the linked variables
    assert {p.name: (p.stat().st_ino, p.read_bytes()) for p in checkpoint.iterdir()} == checkpoint_before
    assert all(p.stat().st_nlink == 2 for p in variables.iterdir())
    assert elsewhere.read_bytes() == b"old"
    assert len(read_file(export.uri)) == 10


def test_write_warmup_is_readable_by_tensorflow(tmp_path):
    import tensorflow as tf

    records = [b"a", b"bb", b""]
    path = write_warmup(str(tmp_path), records)
    assert [r.numpy() for r in tf.data.TFRecordDataset(path)] == records
    assert sorted(os.listdir(tmp_path / "assets.extra")) == ["tf_serving_warmup_requests"]


# ------------------------------------------------------------------------------------------------
# Multi-graph exports.


def serve_removed(source: str, target: Path) -> str:
    """A copy of an all-modes export without its serve MetaGraph (a train/eval-only graph)."""
    from tensorflow.core.protobuf import saved_model_pb2

    shutil.copytree(source, target)
    proto = saved_model_pb2.SavedModel.FromString(Path(target, "saved_model.pb").read_bytes())
    keep = [m for m in proto.meta_graphs if "serve" not in m.meta_info_def.tags]
    del proto.meta_graphs[:]
    proto.meta_graphs.extend(keep)
    Path(target, "saved_model.pb").write_bytes(proto.SerializeToString())
    return str(target)


def graph_set(tmp_path: Path, **sources: str) -> ExportArtifact:
    """A multi-graph export whose graphs are copies of the given exports."""
    graphs = {name: str(shutil.copytree(source, tmp_path / "set" / name)) for name, source in sources.items()}
    return ExportArtifact(
        uri=str(tmp_path / "set"),
        model_name="example",
        strategy="all_modes",
        version=str(STEP),
        step=STEP,
        checkpoint_uri="/ckpt",
        graphs=graphs,
    )


def test_distributed_export_warms_the_entry_graph_and_the_ones_asked(
    exports, make_config, trained_model, tmp_path
):
    export = graph_set(tmp_path, entry=exports["example"], ps_0=exports["raw"], ps_1=exports["raw"])
    entry, ps_0, ps_1 = (export.graphs[name] for name in ("entry", "ps_0", "ps_1"))
    warmed = inject_warmup(
        WarmupParams(warmup_config(make_config, trained_model, graphs={"ps_0": "serving_default"})), export
    )
    assert [(r.graph, r.records) for r in warmed.warmup.replays] == [("entry", 10), ("ps_0", 10)]
    assert list(logs(read_file(str(entry)))[0].predict_log.request.inputs) == ["examples"]
    assert sorted(logs(read_file(str(ps_0)))[0].predict_log.request.inputs) == ["dense", "item_id"]
    assert not Path(ps_1, WARMUP_PATH).exists()


def test_distributed_exporter_set_is_warmed_through_its_route_and_shard_lookups(
    make_config, trained_model, tmp_path
):
    """The real DistributedExporter: the entry graph also takes rows looked up on ps_<i> graphs."""
    config = make_config(
        trained_model,
        tmp_path / "published",
        strategies=[{"name": "distributed", "kind": "distributed", "params": {}}],
        warmup={
            "source": "examples",
            "path": str(trained_model.eval_data),
            "num_records": 12,
            "graphs": {"ps_0": "lookup_item_bias", "ps_1": "lookup_item_bias"},
        },
    )
    (exported,) = run_pipeline(config, RunOptions(checkpoint=STEP)).exports
    assert exported.layout == "distributed" and {"entry", "ps_0", "ps_1", "ps_2"} <= set(exported.graphs)
    replays = {r.graph: r for r in exported.warmup.replays}
    assert list(replays) == ["entry", "ps_0", "ps_1"]
    assert replays["entry"].records == 12 and replays["entry"].signatures == ("serving_default",)
    published = tmp_path / "published" / "example"  # the staged copy is released once published
    entry_records = read_file(str(published / "entry" / str(STEP)))
    assert len(entry_records) == 12
    entry_request = logs(entry_records)[0].predict_log.request
    assert {"examples", "item_bias/ps_0", "item_bias/ps_1"} <= set(entry_request.inputs)
    assert replays["ps_0"].signatures == ("lookup_item_bias",) and replays["ps_0"].records >= 1
    assert Path(published, "ps_1", str(STEP), WARMUP_PATH).exists()
    assert not Path(published, "ps_2", str(STEP), WARMUP_PATH).exists()


def test_graph_sets_without_an_entry_use_their_only_serving_graph(exports, tmp_path):
    trained_only = serve_removed(exports["example"], tmp_path / "train")
    predict = str(tmp_path / "predict")
    shutil.copytree(exports["example"], predict)
    export = ExportArtifact(
        uri=str(tmp_path),
        model_name="m",
        strategy="per_mode",
        version="1",
        step=1,
        checkpoint_uri="/c",
        graphs={"train": trained_only, "predict": predict},
    )
    assert warmup_targets(export, {}, "serving_default") == [("predict", predict, "serving_default")]
    two_serving = dataclasses.replace(export, graphs={"a": predict, "b": predict})
    with pytest.raises(WarmupError, match=r"no 'entry' graph and 2 graphs tagged serve"):
        warmup_targets(two_serving, {}, "serving_default")
    with pytest.raises(WarmupError, match=r"warmup.graphs names \['ps_9'\]"):
        warmup_targets(export, {"ps_9": "lookup"}, "serving_default")
    single = dataclasses.replace(export, graphs={})
    with pytest.raises(WarmupError, match="is a single graph"):
        warmup_targets(single, {"ps_0": "lookup"}, "serving_default")


def test_a_failure_on_any_graph_writes_no_file_anywhere(exports, make_config, trained_model, tmp_path):
    export = graph_set(tmp_path, entry=exports["example"], ps_0=exports["raw"])
    entry, ps_0 = export.graphs["entry"], export.graphs["ps_0"]
    config = warmup_config(make_config, trained_model, graphs={"ps_0": "lookup"})
    with pytest.raises(WarmupError, match="no serving signature 'lookup'"):
        inject_warmup(WarmupParams(config), export)
    assert not Path(entry, WARMUP_PATH).exists() and not Path(ps_0, WARMUP_PATH).exists()


# ------------------------------------------------------------------------------------------------
# The stage in the pipeline: manifest, ledger, and a failing record stops publication.


def test_pipeline_publishes_the_warmup_file_and_its_stats_in_the_manifest(
    make_config, trained_model, tmp_path
):
    config = make_config(trained_model, tmp_path / "published")
    report = run_pipeline(config, RunOptions(checkpoint=STEP))
    (exported,) = report.exports
    (pushed,) = report.published
    assert not Path(exported.uri).exists()  # published: the staged copy is released
    assert len(read_file(pushed.uri)) == 10
    manifest = read_manifest(Path(pushed.uri, MANIFEST_PATH).read_bytes())
    assert manifest.extra["warmup_records"] == 10
    warmup = manifest.extra["warmup"]
    assert warmup["source"] == "examples" and warmup["records"] == 10
    (stats,) = warmup["replays"]
    assert stats["records"] == 10 and stats["kinds"] == {"predict": 10}
    assert {"first_call_ms", "p50_ms", "p99_ms", "load_seconds"} <= set(stats)
    ledger_export = ledger_of(config).load().record(STEP).exports["all_modes"]
    assert ledger_export.warmup == exported.warmup


def nan_checked_model_fn(features, labels, mode, params=None):
    """The example model, failing on non-finite dense features (as a model with input checks would)."""
    import tensorflow as tf

    features = dict(features)
    features[data.DENSE_KEY] = tf.debugging.check_numerics(features[data.DENSE_KEY], "dense must be finite")
    return model.model_fn(features, labels, mode, params)


def test_a_failing_warmup_record_stops_publication(make_config, trained_model, tmp_path):
    import tensorflow as tf

    arrays = data.generate_arrays(5, seed=9)
    arrays["dense"][2, 4] = np.nan
    bad_examples = tmp_path / "warmup_examples.tfrecord"
    with tf.io.TFRecordWriter(str(bad_examples)) as writer:
        for dense, item_id in zip(arrays["dense"], arrays["item_id"]):
            writer.write(data.make_example(dense, int(item_id)))
    config = make_config(
        trained_model,
        tmp_path / "published",
        model_fn="test_warmup:nan_checked_model_fn",
        warmup={"source": "examples", "path": str(bad_examples), "num_records": 5},
    )
    with pytest.raises(WarmupReplayError, match="warmup record 2") as caught:
        run_pipeline(config, RunOptions(checkpoint=STEP))
    assert caught.value.record == 2 and "dense must be finite" in str(caught.value)
    record = ledger_of(config).load().record(STEP)
    assert record.publications == {}
    staged = Path(record.exports["all_modes"].uri)
    assert (staged / "saved_model.pb").exists() and not (staged / WARMUP_PATH).exists()
    assert not (tmp_path / "published" / "example" / str(STEP)).exists()


def test_warmup_stage_passes_through_when_warmup_is_off(export_copy, make_config, trained_model):
    config = warmup_config(make_config, trained_model, source="none")
    export = export_copy()
    assert warmup_stage(config, export) == export
    assert not Path(export.uri, WARMUP_PATH).exists()


# ------------------------------------------------------------------------------------------------
# Config: only the config picks warmup; its checks.


@pytest.mark.parametrize(
    ("warmup", "field", "message"),
    [
        ({"num_records": 1001}, "warmup.num_records", "more than TF Serving's 1000"),
        ({"heads": ["classification"]}, "warmup.heads", "two or more distinct"),
        ({"heads": ["a", "a"]}, "warmup.heads", "two or more distinct"),
        ({"graphs": {"entry": "serving_default"}}, "warmup.graphs", "entry is always warm"),
        ({"source": "file", "graphs": {"ps_0": "lookup"}}, "warmup.graphs", "need source examples or json"),
        ({"source": "file", "heads": ["a", "b"]}, "warmup.heads", "need source examples or json"),
    ],
)
def test_warmup_config_errors(make_config, trained_model, warmup, field, message):
    with pytest.raises(ConfigError, match=message) as caught:
        warmup_config(make_config, trained_model, **warmup)
    assert field in str(caught.value)


def test_more_than_1000_is_allowed_with_truncate(make_config, trained_model):
    config = warmup_config(make_config, trained_model, num_records=1500, truncate=True)
    assert config.warmup.num_records == 1500 and config.warmup.truncate


def test_the_manual_trigger_cannot_pick_warmup_files():
    """The form has no warmup field, and a trigger conf that names one is refused, not ignored."""
    from plugins.params import build_params, refuse_unknown_params

    assert not [name for name in build_params(["all_modes"]) if "warmup" in name]
    with pytest.raises(ValueError, match=r"fields \['warmup'\] that this DAG does not accept"):
        refuse_unknown_params({"warmup": {"source": "file", "path": "/etc/passwd"}})
