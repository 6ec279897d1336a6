"""Canned estimators, named by a config's ``estimator:`` factory.

A canned estimator nobody here wrote — tf.estimator.DNNLinearCombinedClassifier with feature columns — is
exported through every registered strategy kind, each export loaded under each tag, and every serving
graph answers a fixed batch exactly as tf.estimator's own ``export_saved_model`` does. Then
``LinearRegressor`` and ``LinearClassifier`` (``examples/canned.py``) go through the whole pipeline:
evaluated, exported, warmed up with Regress / Classify requests, published, and the published versions
load, replay their warmup and answer like the estimator itself."""

from __future__ import annotations

import os

import numpy as np
import pytest

from components.artifacts import CheckpointArtifact, EvaluationArtifact, ExportArtifact
from components.config import load_config
from components.export.compat.export_strategy import ExportStrategy
from components.export.compat.exporters import BestExporter
from components.export.savedmodel.verify import graph_dirs, signatures_by_tag, verify_export
from components.pipeline.options import RunOptions
from components.pipeline.stages import export_stage
from tests.support.example_pipeline import TrainedModel, example_config_dict, write_config

STEPS = 20
LABEL = "y"


def _columns():
    import tensorflow as tf

    fc = tf.feature_column
    x = fc.numeric_column("x", shape=[4])
    cat = fc.categorical_column_with_identity("cat", num_buckets=10)
    return [x, cat], [x, fc.embedding_column(cat, dimension=3)]


def canned_estimator(model_dir, config=None):
    import tensorflow as tf

    linear, dnn = _columns()
    return tf.estimator.DNNLinearCombinedClassifier(
        linear_feature_columns=linear,
        dnn_feature_columns=dnn,
        dnn_hidden_units=[8, 4],
        model_dir=str(model_dir),
        config=config,
    )


def _feature_spec():
    import tensorflow as tf

    linear, dnn = _columns()
    return tf.feature_column.make_parse_example_spec(linear + dnn)


def serving_receiver():
    import tensorflow as tf

    return tf.estimator.export.build_parsing_serving_input_receiver_fn(_feature_spec())()


def supervised_receiver():
    import tensorflow as tf
    from tensorflow_estimator.python.estimator.export.export_lib import SupervisedInputReceiver

    serialized = tf.compat.v1.placeholder(tf.string, [None], name="examples")
    parsed = tf.io.parse_example(serialized, {**_feature_spec(), LABEL: tf.io.FixedLenFeature([1], tf.int64)})
    labels = parsed.pop(LABEL)
    return SupervisedInputReceiver(parsed, labels, {"examples": serialized})


def _tf_export(estimator, export_path, checkpoint_path, eval_result):
    assert eval_result and "loss" in eval_result
    return estimator.export_saved_model(export_path, serving_receiver, checkpoint_path=checkpoint_path)


tf_export_strategy = ExportStrategy("tf_export", _tf_export)


def best_exporter():
    return BestExporter("canned_best", serving_receiver)


def _arrays(n: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    cat = rng.integers(0, 10, size=(n, 1)).astype(np.int64)
    y = ((x[:, 0] + 0.3 * cat[:, 0]) > 1.5).astype(np.int64)
    return x, cat, y


def examples(n: int = 12, seed: int = 5, labelled: bool = False) -> list[bytes]:
    import tensorflow as tf

    x, cat, y = _arrays(n, seed)
    out = []
    for row, c, label in zip(x, cat, y):
        feature = {
            "x": tf.train.Feature(float_list=tf.train.FloatList(value=row.tolist())),
            "cat": tf.train.Feature(int64_list=tf.train.Int64List(value=c.tolist())),
        }
        if labelled:
            feature[LABEL] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)]))
        out.append(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return out


@pytest.fixture(scope="module")
def canned(tmp_path_factory):
    """The canned estimator trained for a few steps (checkpoints at 0, 10, 20), and its evaluation metrics."""
    import tensorflow as tf

    root = tmp_path_factory.mktemp("canned")
    config = tf.estimator.RunConfig(
        model_dir=str(root / "model"), save_checkpoints_steps=10, tf_random_seed=1
    )
    estimator = canned_estimator(root / "model", config)

    def input_fn():
        x, cat, y = _arrays(256, seed=0)
        return tf.data.Dataset.from_tensor_slices(({"x": x, "cat": cat}, y)).repeat().batch(32)

    estimator.train(input_fn, steps=STEPS)
    return estimator, root, {"loss": 0.42, "accuracy": 0.9}  # what the evaluation stage would record


def run_signature(export_dir, tags, signature, feed):
    import tensorflow as tf

    with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, list(tags), str(export_dir))
        sig = meta_graph.signature_def[signature]
        fetches = {k: v.name for k, v in sig.outputs.items() if "update_op" not in k}
        return session.run(fetches, {sig.inputs[k].name: v for k, v in feed.items()})


KINDS = [
    {"name": "combined", "kind": "all_modes"},
    {"name": "combined-ref", "kind": "all_modes", "params": {"by_reference": True}},
    {"name": "per-mode", "kind": "all_modes", "params": {"layout": "per_mode", "by_reference": True}},
    {"name": "final", "kind": "final", "params": {"max_steps": STEPS}},
    {"name": "latest", "kind": "latest", "params": {"by_reference": True}},
    {"name": "best", "kind": "best"},
    {"name": "standalone", "kind": "standalone", "params": {"shared_embedding": True}},
    {"name": "distributed", "kind": "distributed"},
    {"name": "contrib", "kind": "custom", "params": {"target": "test_export_canned:tf_export_strategy"}},
    {"name": "exporter", "kind": "custom", "params": {"target": "test_export_canned:best_exporter"}},
]


@pytest.fixture(scope="module")
def exported(canned, tmp_path_factory):
    estimator, root, metrics = canned
    workspace = tmp_path_factory.mktemp("canned-pipeline")
    data = example_config_dict(
        TrainedModel(root / "model", root, (STEPS,)),
        workspace / "published",
        model_fn=None,  # the canned estimator comes in through its factory, the config's `estimator:`
        estimator="test_export_canned:canned_estimator",
        params={},
        receivers={
            "predict": "test_export_canned:serving_receiver",
            "train": "test_export_canned:supervised_receiver",
            "eval": "test_export_canned:supervised_receiver",
        },
        evaluation={"thresholds": []},
        warmup={"source": "none"},
        strategies=[{**k, "servable": k["name"]} for k in KINDS],
    )
    config = load_config(write_config(data, workspace / "canned.yaml"))
    prefix = estimator.latest_checkpoint()
    checkpoint = CheckpointArtifact(uri=prefix, model_name=config.name, step=STEPS)
    evaluation = EvaluationArtifact(uri=prefix, checkpoint=checkpoint, metrics=metrics, blessed=True)
    return {k["name"]: export_stage(config, k["name"], evaluation, RunOptions()) for k in KINDS}


@pytest.fixture(scope="module")
def tf_reference(canned, tmp_path_factory):
    """tf.estimator's own serving export and its answers on the fixed batch."""
    estimator, _, _ = canned
    path = estimator.export_saved_model(str(tmp_path_factory.mktemp("tf-export")), serving_receiver)
    path = path.decode() if isinstance(path, bytes) else path
    return {
        "predict": run_signature(path, ["serve"], "predict", {"examples": examples()}),
        "signatures": signatures_by_tag(path)["serve"],
    }


def test_every_kind_exports_the_canned_estimator_and_each_tag_loads(exported, tf_reference):
    serving = tf_reference["signatures"]
    assert set(serving) >= {"serving_default", "classification", "regression", "predict"}
    for name, artifact in exported.items():
        assert isinstance(artifact, ExportArtifact) and artifact.version == str(STEPS), name
        assert verify_export(artifact.uri, "full") == artifact.signatures, name  # each tag of each graph
        assert all(
            os.path.isfile(os.path.join(p, "saved_model.pb")) for p in graph_dirs(artifact.uri).values()
        )
    assert exported["combined"].signatures == {"eval": ("eval",), "serve": serving, "train": ("train",)}
    assert exported["combined-ref"].signatures == exported["combined"].signatures
    assert exported["combined-ref"].variables == "hardlink"
    assert exported["per-mode"].signatures == {
        "eval:eval": ("eval",),
        "predict:serve": serving,
        "train:train": ("train",),
    }
    for name in ("final", "latest", "best", "standalone", "contrib", "exporter"):
        assert exported[name].signatures == {"serve": serving}, name
    assert exported["distributed"].signatures == {"entry:serve": serving}  # no sharded tables: one graph


def _serving_dir(artifact) -> str:
    if artifact.layout == "per_mode":
        return artifact.graphs["predict"]
    if artifact.layout == "distributed":
        return artifact.graphs["entry"]
    return artifact.uri


def test_every_serving_graph_answers_like_tf_estimators_own_export(exported, tf_reference):
    expected = tf_reference["predict"]
    for name, artifact in exported.items():
        got = run_signature(_serving_dir(artifact), ["serve"], "predict", {"examples": examples()})
        assert set(got) == set(expected), name
        for key in ("logistic", "probabilities", "logits"):
            np.testing.assert_allclose(got[key], expected[key], rtol=1e-6, err_msg=f"{name}: {key}")


def test_train_and_eval_graphs_of_the_canned_estimator(exported):
    feed = {"examples": examples(labelled=True)}
    normal, by_reference = exported["combined"].uri, exported["combined-ref"].uri
    for tag in ("train", "eval"):
        a = run_signature(normal, [tag], tag, feed)
        b = run_signature(by_reference, [tag], tag, feed)
        c = run_signature(exported["per-mode"].graphs[tag], [tag], tag, feed)
        assert np.isfinite(a["loss"])
        np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-6)
        np.testing.assert_allclose(a["loss"], c["loss"], rtol=1e-6)


# --- LinearRegressor and LinearClassifier through the whole pipeline, by `estimator:` ---------------

LINEAR_STEPS = 40
WARMUP_RECORDS = 5
LINEAR = {
    "linear_regressor": ("regress", "predictions", "average_loss"),
    "linear_classifier": ("classify", "probabilities", "accuracy"),
}


@pytest.fixture(scope="module", params=sorted(LINEAR))
def linear_run(request, tmp_path_factory):
    """A canned linear estimator trained on the example data, then one pipeline run on its last checkpoint."""
    from components.pipeline.runner import run_pipeline
    from examples import canned

    factory_name = request.param
    root = tmp_path_factory.mktemp(factory_name)
    steps = canned.train(getattr(canned, factory_name), root / "model", root / "data", LINEAR_STEPS, every=20)
    assert steps[-1] == LINEAR_STEPS
    eval_data = str(root / "data" / "eval.tfrecord")
    data = example_config_dict(  # the export-and-publish core, with the canned estimator's code and data
        root / "model",
        root / "published",
        name=factory_name.replace("_", "-"),
        model_fn=None,
        estimator=f"examples.canned:{factory_name}",
        receivers={"predict": "examples.canned:serving_input_receiver_fn"},
        evaluation={"input_fn": "examples.canned:eval_input_fn", "input_fn_kwargs": {"path": eval_data}},
        strategies=[
            {"name": "serving", "kind": "all_modes"},
            {"name": "standalone", "kind": "standalone", "servable": "standalone"},
        ],
        warmup={"source": "examples", "path": eval_data, "num_records": WARMUP_RECORDS},
    )
    config = load_config(write_config(data, root / "canned.yaml"))
    report = run_pipeline(config, RunOptions(checkpoint=LINEAR_STEPS))
    return factory_name, config, report, eval_data


def _estimator_predictions(factory_name, config, eval_data, key):
    """What the canned estimator itself predicts from the published checkpoint, on the warmup examples."""
    import tensorflow as tf

    from examples import canned

    estimator = getattr(canned, factory_name)(model_dir=None, config=tf.estimator.RunConfig())
    spec = tf.feature_column.make_parse_example_spec(canned.feature_columns())

    def input_fn():
        records = tf.data.TFRecordDataset(eval_data).take(WARMUP_RECORDS).batch(WARMUP_RECORDS)
        return records.map(lambda s: tf.io.parse_example(s, spec))

    checkpoint = os.path.join(config.model_dir, f"model.ckpt-{LINEAR_STEPS}")
    return np.stack([p[key] for p in estimator.predict(input_fn, checkpoint_path=checkpoint)])


def test_canned_linear_estimators_are_evaluated_exported_warmed_and_published(linear_run):
    from components.layout import WARMUP_PATH
    from components.warmup.replay import replay
    from components.warmup.signatures import read_serving_graph
    from components.warmup.tfrecord import scan

    factory_name, config, report, eval_data = linear_run
    kind, output, metric = LINEAR[factory_name]
    (evaluation,) = report.evaluations
    assert evaluation.blessed and metric in evaluation.metrics  # Estimator.evaluate of the canned estimator
    assert sorted(p.strategy for p in report.published) == ["serving", "standalone"]
    for exported in report.exports:
        (warm,) = exported.warmup.replays  # replayed on the export before it could be published
        assert warm.kinds == {kind: WARMUP_RECORDS}, exported.strategy
    expected = _estimator_predictions(factory_name, config, eval_data, output)
    examples_in_order = _records(eval_data)[:WARMUP_RECORDS]
    for pushed in report.published:
        assert pushed.version == str(LINEAR_STEPS)
        graph = read_serving_graph(pushed.uri)  # the published version, as a serving host loads it
        assert graph.signature("serving_default").kind == kind
        with open(os.path.join(pushed.uri, WARMUP_PATH), "rb") as handle:
            records = scan(handle).records
        assert replay(graph, records).kinds == {kind: WARMUP_RECORDS}, pushed.strategy
        got = run_signature(pushed.uri, ["serve"], "predict", {"examples": examples_in_order})
        np.testing.assert_allclose(got[output], expected, rtol=1e-5, err_msg=pushed.strategy)


def _records(path):
    import tensorflow as tf

    return [r.numpy() for r in tf.data.TFRecordDataset(path)]
