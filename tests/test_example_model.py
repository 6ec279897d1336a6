"""The example model package: data, training, evaluation and an all-modes SavedModel export (real TF)."""

from __future__ import annotations

import functools
import os
import subprocess
import sys

import numpy as np
import pytest

from examples import data, model
from examples.train import EVAL_FILE, NUM_EVAL_EXAMPLES, TRAIN_FILE, checkpoint_steps, train

STEPS = 30
EVERY = 10


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("example_model")
    model_dir = root / "model"
    data_dir = root / "data"
    steps = train(model_dir, data_dir, steps=STEPS, checkpoint_every=EVERY, keep_checkpoint_max=5, seed=0)
    return {"model_dir": model_dir, "data_dir": data_dir, "steps": steps}


@pytest.fixture(scope="module")
def all_modes_export(trained, tmp_path_factory):
    estimator = model.make_estimator(trained["model_dir"])
    export_base = tmp_path_factory.mktemp("exports")
    export_dir = estimator.experimental_export_all_saved_models(
        str(export_base), model.all_modes_receiver_fn_map()
    )
    if isinstance(export_dir, bytes):
        export_dir = export_dir.decode()
    return export_dir


def test_importing_model_does_not_import_tensorflow():
    code = (
        "import sys, examples.model, examples.data, examples.train; "
        "sys.exit(1 if any(m == 'tensorflow' or m.startswith('tensorflow.') for m in sys.modules) else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_data_is_deterministic_and_learnable():
    a = data.generate_arrays(200, seed=3)
    b = data.generate_arrays(200, seed=3)
    c = data.generate_arrays(200, seed=4)
    for key in (data.DENSE_KEY, data.ITEM_ID_KEY, data.LABEL_KEY):
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a[data.DENSE_KEY], c[data.DENSE_KEY])
    assert a[data.DENSE_KEY].shape == (200, data.DENSE_DIM) and a[data.DENSE_KEY].dtype == np.float32
    assert a[data.ITEM_ID_KEY].dtype == np.int64
    assert a[data.ITEM_ID_KEY].min() >= 0 and a[data.ITEM_ID_KEY].max() < data.VOCAB_SIZE
    assert set(np.unique(a[data.LABEL_KEY])) <= {0, 1}
    # The hidden rule predicts labels far better than chance.
    big = data.generate_arrays(2000, seed=5)
    predicted = data.hidden_logit(big[data.DENSE_KEY], big[data.ITEM_ID_KEY]) > 0
    assert (predicted == big[data.LABEL_KEY].astype(bool)).mean() > 0.7


def test_tfrecords_round_trip(tmp_path):
    import tensorflow as tf

    path = tmp_path / "nested" / "dir" / "few.tfrecord"
    assert data.write_tfrecords(path, 5, seed=7) == 5
    assert sorted(os.listdir(path.parent)) == ["few.tfrecord"]  # no temp file left behind
    records = [r.numpy() for r in tf.data.TFRecordDataset(str(path))]
    assert len(records) == 5
    parsed = tf.io.parse_example(tf.constant(records), data.feature_spec(with_label=True))
    expected = data.generate_arrays(5, seed=7)
    np.testing.assert_allclose(parsed["dense"].numpy(), expected["dense"])
    np.testing.assert_array_equal(parsed["item_id"].numpy(), expected["item_id"])
    np.testing.assert_array_equal(parsed["label"].numpy(), expected["label"])
    assert set(data.feature_spec(with_label=False)) == {"dense", "item_id"}

    unlabelled = tf.train.Example.FromString(data.make_example(np.zeros(8), 3))
    assert set(unlabelled.features.feature) == {"dense", "item_id"}
    with pytest.raises(ValueError, match="8 values"):
        data.make_example(np.zeros(7), 3)


def test_training_writes_checkpoints_listed_in_state_file(trained):
    import tensorflow as tf

    model_dir = trained["model_dir"]
    steps = trained["steps"]
    assert len(steps) >= 3
    assert steps[-1] == STEPS
    assert {10, 20, 30} <= set(steps)
    state = tf.train.get_checkpoint_state(str(model_dir))
    assert state.model_checkpoint_path.endswith(f"model.ckpt-{STEPS}")
    listed = [os.path.basename(p) for p in state.all_model_checkpoint_paths]
    assert listed == [f"model.ckpt-{s}" for s in steps]
    for s in steps:
        assert (model_dir / f"model.ckpt-{s}.index").exists()
        assert list(model_dir.glob(f"model.ckpt-{s}.data-*"))
    assert checkpoint_steps(model_dir) == steps
    assert (trained["data_dir"] / TRAIN_FILE).exists() and (trained["data_dir"] / EVAL_FILE).exists()


def test_checkpoint_variables(trained):
    import tensorflow as tf

    shapes = dict(tf.train.list_variables(str(trained["model_dir"])))
    assert shapes[model.EMBEDDING_VARIABLE] == [data.VOCAB_SIZE, 16]
    assert shapes["hidden/kernel"] == [data.DENSE_DIM, 32]
    assert shapes["hidden/bias"] == [32]
    assert shapes["logit/kernel"] == [32 + 16, 1]
    assert shapes["logit/bias"] == [1]
    assert "global_step" in shapes
    assert f"{model.EMBEDDING_VARIABLE}/Adagrad" in shapes  # optimizer slot


def test_evaluate_returns_metrics(trained):
    estimator = model.make_estimator(trained["model_dir"])
    eval_path = str(trained["data_dir"] / EVAL_FILE)
    metrics = estimator.evaluate(functools.partial(model.eval_input_fn, path=eval_path))
    assert {"accuracy", "auc", "loss", "global_step"} <= set(metrics)
    assert metrics["global_step"] == STEPS
    assert 0.0 <= metrics["accuracy"] <= 1.0
    assert 0.0 <= metrics["auc"] <= 1.0
    assert np.isfinite(metrics["loss"]) and metrics["loss"] > 0

    # An older checkpoint evaluates too, and reports its own step.
    first = trained["steps"][1]
    older = estimator.evaluate(
        functools.partial(model.eval_input_fn, path=eval_path),
        checkpoint_path=str(trained["model_dir"] / f"model.ckpt-{first}"),
        name="older",
    )
    assert older["global_step"] == first


def test_predict_with_estimator(trained):
    estimator = model.make_estimator(trained["model_dir"])
    eval_path = str(trained["data_dir"] / EVAL_FILE)
    preds = list(estimator.predict(functools.partial(model.predict_input_fn, path=eval_path)))
    assert len(preds) == NUM_EVAL_EXAMPLES
    p = preds[0]
    assert set(p) == {"probability", "logit", "class_id"}
    assert abs(p["probability"] - 1.0 / (1.0 + np.exp(-p["logit"]))) < 1e-5


def _serialized_examples(n: int, seed: int = 11) -> list[bytes]:
    arrays = data.generate_arrays(n, seed=seed)
    return [data.make_example(d, int(i)) for d, i in zip(arrays["dense"], arrays["item_id"])]


def test_all_modes_export_has_three_metagraphs(all_modes_export):
    from tensorflow.core.protobuf import saved_model_pb2

    export_dir = all_modes_export
    assert os.path.basename(export_dir).isdigit()
    assert os.path.exists(os.path.join(export_dir, "variables", "variables.index"))
    sm = saved_model_pb2.SavedModel()
    with open(os.path.join(export_dir, "saved_model.pb"), "rb") as f:
        sm.ParseFromString(f.read())
    tags = sorted(tuple(mg.meta_info_def.tags) for mg in sm.meta_graphs)
    assert tags == [("eval",), ("serve",), ("train",)]
    by_tag = {mg.meta_info_def.tags[0]: mg for mg in sm.meta_graphs}

    serve = by_tag["serve"].signature_def
    assert set(serve) == {"serving_default", "classification"}
    assert set(serve["serving_default"].inputs) == {"examples"}
    assert set(serve["serving_default"].outputs) == {"probability", "logit"}
    assert serve["classification"].method_name == "tensorflow/serving/classify"
    assert set(serve["classification"].inputs) == {"inputs"}
    assert set(serve["classification"].outputs) == {"scores", "classes"}

    train_sig = by_tag["train"].signature_def
    assert set(train_sig) == {"train"}
    assert {"loss", "predictions/probability", "predictions/logit"} <= set(train_sig["train"].outputs)
    eval_sig = by_tag["eval"].signature_def
    assert set(eval_sig) == {"eval"}
    assert {"loss", "metrics/accuracy/value", "metrics/auc/value"} <= set(eval_sig["eval"].outputs)
    assert set(eval_sig["eval"].inputs) == {"examples"}


@pytest.mark.parametrize("tag", ["serve", "train", "eval"])
def test_all_modes_export_loads_under_each_tag(all_modes_export, trained, tag):
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(trained["model_dir"] / f"model.ckpt-{STEPS}"))
    expected_embedding = reader.get_tensor(model.EMBEDDING_VARIABLE)
    with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, [tag], all_modes_export)
        (embedding,) = [v for v in tf.compat.v1.global_variables() if v.op.name == model.EMBEDDING_VARIABLE]
        np.testing.assert_array_equal(session.run(embedding), expected_embedding)
        if tag == "serve":
            sig = meta_graph.signature_def["serving_default"]
            outputs = session.run(
                {k: v.name for k, v in sig.outputs.items()},
                feed_dict={sig.inputs["examples"].name: _serialized_examples(4)},
            )
            assert outputs["probability"].shape == (4,)
            np.testing.assert_allclose(outputs["probability"], 1 / (1 + np.exp(-outputs["logit"])), rtol=1e-5)

            cls = meta_graph.signature_def["classification"]
            out = session.run(
                {k: v.name for k, v in cls.outputs.items()},
                feed_dict={cls.inputs["inputs"].name: _serialized_examples(3)},
            )
            assert out["scores"].shape == (3, 2)
            np.testing.assert_allclose(out["scores"].sum(axis=1), 1.0, rtol=1e-6)
            assert out["classes"].tolist() == [[b"0", b"1"]] * 3


def test_raw_serving_receiver_export(trained, tmp_path):
    import tensorflow as tf

    estimator = model.make_estimator(trained["model_dir"])
    export_dir = estimator.export_saved_model(str(tmp_path), model.raw_serving_input_receiver_fn)
    if isinstance(export_dir, bytes):
        export_dir = export_dir.decode()
    loaded = tf.saved_model.load(export_dir)
    # The classification signature needs one string input, so only serving_default exists here.
    assert set(loaded.signatures) == {"serving_default"}
    fn = loaded.signatures["serving_default"]
    arrays = data.generate_arrays(5, seed=2)
    out = fn(dense=tf.constant(arrays["dense"]), item_id=tf.constant(arrays["item_id"]))
    assert set(out) == {"probability", "logit"}
    assert out["probability"].shape == (5,)


def test_train_cli_resumes_to_target_step(trained, tmp_path):
    # Training again to the same target step is a no-op; a higher target adds checkpoints.
    from examples.train import main

    model_dir = tmp_path / "model"
    assert (
        main(
            [
                "--model-dir",
                str(model_dir),
                "--data-dir",
                str(trained["data_dir"]),
                "--steps",
                "4",
                "--checkpoint-every",
                "2",
            ]
        )
        == 0
    )
    assert checkpoint_steps(model_dir)[-1] == 4
    assert train(model_dir, trained["data_dir"], steps=6, checkpoint_every=2)[-1] == 6
