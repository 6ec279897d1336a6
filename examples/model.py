"""The example Estimator model: a small dense tower plus an item-id embedding.

Graph (``tf.compat.v1`` APIs, all variables via ``tf.compat.v1.get_variable``):

* ``item_embedding``            [VOCAB_SIZE, embedding_dim]
* ``hidden/kernel``, ``hidden/bias``   dense [8] -> relu [hidden_units]
* ``logit/kernel``, ``logit/bias``     concat(hidden, embedding) -> logit [1]
* ``item_bias/part_0`` .. ``part_3``    a per-item bias, an embedding of width 1 split into ``num_shards``
  (4) shards (id ``i`` in shard ``i % 4``), added to the logit. Its lookups go through
  :func:`components.export.sharded_embedding`, so a ``DistributedExporter`` puts each shard in
  its own ``ps_<i>`` graph while training and ``StandaloneExporter`` keep it local.
* ``global_step`` and, after training, the optimizer slots (``<var>/Adagrad`` or
  ``<var>/Adam``, ``<var>/Adam_1``, ``beta1_power``, ``beta2_power``).

Outputs: ``logit`` -> ``probability = sigmoid(logit)``.

Export outputs (the same in every mode; tf.estimator uses them for PREDICT, and builds
``train`` / ``eval`` signatures from loss, predictions and metrics for TRAIN / EVAL):

* ``serving_default`` -- ``PredictOutput({"probability", "logit"})``
* ``classification``  -- ``ClassificationOutput(scores=[batch, 2], classes=[batch, 2] of "0", "1")``;
  only valid with a single string receiver tensor (``serving_input_receiver_fn``).

TensorFlow is imported inside functions only, so importing this module is cheap.
"""

from __future__ import annotations

import os
from typing import Any

from examples.data import DENSE_DIM, DENSE_KEY, ITEM_ID_KEY, LABEL_KEY, VOCAB_SIZE, feature_spec

DEFAULT_PARAMS: dict[str, Any] = {
    "embedding_dim": 16,
    "hidden_units": 32,
    "learning_rate": 0.05,
    "optimizer": "adagrad",  # or "adam"
    "vocab_size": VOCAB_SIZE,
    "num_shards": 4,  # shards of the item_bias embedding
}

#: Receiver tensor key of the serialized tf.Example placeholder.
EXAMPLES_RECEIVER_KEY = "examples"
#: Signature names of the PREDICT-mode export outputs.
SERVING_SIGNATURE = "serving_default"
CLASSIFICATION_SIGNATURE = "classification"
#: Class names, in score order, of the classification signature.
CLASS_NAMES = ("0", "1")
#: Name of the embedding table variable.
EMBEDDING_VARIABLE = "item_embedding"
#: Name of the sharded per-item bias table (variables ``item_bias/part_<i>``).
SHARDED_BIAS_TABLE = "item_bias"


def _resolve_params(params: dict[str, Any] | None) -> dict[str, Any]:
    merged = dict(DEFAULT_PARAMS)
    merged.update(params or {})
    unknown = set(merged) - set(DEFAULT_PARAMS)
    if unknown:
        raise ValueError(f"unknown model params: {sorted(unknown)}")
    return merged


def _make_optimizer(name: str, learning_rate: float):
    import tensorflow as tf

    if name == "adagrad":
        return tf.compat.v1.train.AdagradOptimizer(learning_rate)
    if name == "adam":
        return tf.compat.v1.train.AdamOptimizer(learning_rate)
    raise ValueError(f"unknown optimizer {name!r}; expected 'adagrad' or 'adam'")


def model_fn(features, labels, mode, params=None):
    """Estimator ``model_fn``: returns a ``tf.estimator.EstimatorSpec`` for TRAIN, EVAL and PREDICT."""
    import tensorflow as tf

    from components.export import sharded_embedding

    v1 = tf.compat.v1
    params = _resolve_params(params)
    vocab_size = int(params["vocab_size"])
    embedding_dim = int(params["embedding_dim"])
    hidden_units = int(params["hidden_units"])

    dense = tf.reshape(tf.cast(features[DENSE_KEY], tf.float32), [-1, DENSE_DIM], name="dense_input")
    item_id = tf.reshape(tf.cast(features[ITEM_ID_KEY], tf.int64), [-1], name="item_id_input")
    # Ids outside the vocabulary are folded into it instead of failing the lookup at serving time.
    item_id = tf.math.floormod(item_id, vocab_size, name="item_id_in_vocab")

    embedding_table = v1.get_variable(
        EMBEDDING_VARIABLE,
        shape=[vocab_size, embedding_dim],
        dtype=tf.float32,
        initializer=v1.truncated_normal_initializer(stddev=0.05),
    )
    embedded = tf.nn.embedding_lookup(embedding_table, item_id, name="item_embedding_lookup")

    with v1.variable_scope("hidden"):
        hidden_kernel = v1.get_variable(
            "kernel", shape=[DENSE_DIM, hidden_units], initializer=v1.glorot_uniform_initializer()
        )
        hidden_bias = v1.get_variable("bias", shape=[hidden_units], initializer=v1.zeros_initializer())
        hidden = tf.nn.relu(tf.matmul(dense, hidden_kernel) + hidden_bias)

    with v1.variable_scope("logit"):
        tower = tf.concat([hidden, embedded], axis=1)
        logit_kernel = v1.get_variable(
            "kernel", shape=[hidden_units + embedding_dim, 1], initializer=v1.glorot_uniform_initializer()
        )
        logit_bias = v1.get_variable("bias", shape=[1], initializer=v1.zeros_initializer())
        logit = tf.reshape(tf.matmul(tower, logit_kernel) + logit_bias, [-1])

    # Looked up locally when training and in a standalone export; from ps_<i> graphs when distributed.
    item_bias = sharded_embedding(
        SHARDED_BIAS_TABLE,
        vocab_size,
        1,
        int(params["num_shards"]),
        initializer=v1.truncated_normal_initializer(stddev=0.05),
    )
    logit = logit + tf.reshape(item_bias.lookup(item_id), [-1])

    logit = tf.identity(logit, name="logit")
    probability = tf.sigmoid(logit, name="probability")
    class_id = tf.cast(probability > 0.5, tf.int64, name="class_id")
    scores = tf.stack([1.0 - probability, probability], axis=1, name="scores")
    classes = tf.tile(
        tf.constant([list(CLASS_NAMES)], dtype=tf.string), [tf.shape(logit)[0], 1], name="classes"
    )

    predictions = {"probability": probability, "logit": logit, "class_id": class_id}
    export_outputs = {
        SERVING_SIGNATURE: tf.estimator.export.PredictOutput({"probability": probability, "logit": logit}),
        CLASSIFICATION_SIGNATURE: tf.estimator.export.ClassificationOutput(scores=scores, classes=classes),
    }

    if mode == tf.estimator.ModeKeys.PREDICT:
        return tf.estimator.EstimatorSpec(mode=mode, predictions=predictions, export_outputs=export_outputs)

    if labels is None:
        raise ValueError(f"labels are required in mode {mode}")
    if isinstance(labels, dict):
        labels = labels[LABEL_KEY]
    labels = tf.reshape(tf.cast(labels, tf.int64), [-1])
    loss = v1.losses.sigmoid_cross_entropy(multi_class_labels=tf.cast(labels, tf.float32), logits=logit)

    if mode == tf.estimator.ModeKeys.EVAL:
        eval_metric_ops = {
            "accuracy": v1.metrics.accuracy(labels=labels, predictions=class_id),
            "auc": v1.metrics.auc(labels=labels, predictions=probability),
        }
        return tf.estimator.EstimatorSpec(
            mode=mode,
            loss=loss,
            predictions=predictions,
            eval_metric_ops=eval_metric_ops,
            export_outputs=export_outputs,
        )

    optimizer = _make_optimizer(params["optimizer"], float(params["learning_rate"]))
    train_op = optimizer.minimize(loss, global_step=v1.train.get_or_create_global_step())
    return tf.estimator.EstimatorSpec(
        mode=mode, loss=loss, train_op=train_op, predictions=predictions, export_outputs=export_outputs
    )


# --------------------------------------------------------------------------------------------
# Input receivers (for export). Placeholders are created inside each fn: the export code calls
# them inside a fresh graph, while eager execution is on everywhere else.


def serving_input_receiver_fn():
    """PREDICT receiver: a [None] string placeholder of serialized tf.Examples under key "examples"."""
    import tensorflow as tf

    serialized = tf.compat.v1.placeholder(tf.string, shape=[None], name="examples")
    features = tf.io.parse_example(serialized, feature_spec(with_label=False))
    return tf.estimator.export.ServingInputReceiver(features, {EXAMPLES_RECEIVER_KEY: serialized})


def raw_serving_input_receiver_fn():
    """PREDICT receiver taking raw tensors: "dense" float32 [None, 8] and "item_id" int64 [None]."""
    import tensorflow as tf

    receiver_tensors = {
        DENSE_KEY: tf.compat.v1.placeholder(tf.float32, shape=[None, DENSE_DIM], name=DENSE_KEY),
        ITEM_ID_KEY: tf.compat.v1.placeholder(tf.int64, shape=[None], name=ITEM_ID_KEY),
    }
    return tf.estimator.export.ServingInputReceiver(dict(receiver_tensors), receiver_tensors)


def supervised_input_receiver_fn():
    """TRAIN / EVAL receiver: serialized tf.Examples *with* labels under key "examples"."""
    import tensorflow as tf
    from tensorflow_estimator.python.estimator.export.export_lib import SupervisedInputReceiver

    serialized = tf.compat.v1.placeholder(tf.string, shape=[None], name="examples")
    parsed = tf.io.parse_example(serialized, feature_spec(with_label=True))
    labels = parsed.pop(LABEL_KEY)
    return SupervisedInputReceiver(parsed, labels, {EXAMPLES_RECEIVER_KEY: serialized})


def all_modes_receiver_fn_map() -> dict[str, Any]:
    """``{mode: receiver_fn}`` for ``Estimator.experimental_export_all_saved_models``."""
    import tensorflow as tf

    return {
        tf.estimator.ModeKeys.TRAIN: supervised_input_receiver_fn,
        tf.estimator.ModeKeys.EVAL: supervised_input_receiver_fn,
        tf.estimator.ModeKeys.PREDICT: serving_input_receiver_fn,
    }


# --------------------------------------------------------------------------------------------
# Input functions (Estimator input_fn). Use as functools.partial(train_input_fn, path=...).


def _parse_batch(serialized, with_label: bool):
    import tensorflow as tf

    parsed = tf.io.parse_example(serialized, feature_spec(with_label=with_label))
    if not with_label:
        return parsed
    labels = parsed.pop(LABEL_KEY)
    return parsed, labels


def train_input_fn(
    path: str | os.PathLike[str], batch_size: int = 64, epochs: int | None = None, shuffle_buffer: int = 1000
):
    """Shuffled, repeated (``epochs=None`` = forever) dataset of ``(features, label)`` batches."""
    import tensorflow as tf

    dataset = tf.data.TFRecordDataset(os.fspath(path))
    if shuffle_buffer:
        dataset = dataset.shuffle(shuffle_buffer, reshuffle_each_iteration=True)
    dataset = dataset.repeat(epochs)
    dataset = dataset.batch(batch_size)
    dataset = dataset.map(lambda s: _parse_batch(s, with_label=True))
    return dataset.prefetch(1)


def eval_input_fn(path: str | os.PathLike[str], batch_size: int = 128):
    """One pass, in file order, of ``(features, label)`` batches."""
    import tensorflow as tf

    dataset = tf.data.TFRecordDataset(os.fspath(path)).batch(batch_size)
    return dataset.map(lambda s: _parse_batch(s, with_label=True)).prefetch(1)


def predict_input_fn(path: str | os.PathLike[str], batch_size: int = 128):
    """One pass, in file order, of feature batches (labels in the file are ignored)."""
    import tensorflow as tf

    dataset = tf.data.TFRecordDataset(os.fspath(path)).batch(batch_size)
    return dataset.map(lambda s: _parse_batch(s, with_label=False)).prefetch(1)


def make_estimator(model_dir: str | os.PathLike[str], params: dict[str, Any] | None = None, config=None):
    """A ``tf.estimator.Estimator`` for :func:`model_fn` rooted at ``model_dir``."""
    import tensorflow as tf

    return tf.estimator.Estimator(
        model_fn=model_fn, model_dir=os.fspath(model_dir), params=_resolve_params(params), config=config
    )
