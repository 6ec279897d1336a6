"""A small Keras 3 model with two inputs and two outputs, and the data it learns, made in code.

Inputs: ``dense`` (4 floats) and ``item_id`` (an id in [0, 20), through an embedding). Outputs:
``click`` (a probability) and ``value`` (a regression). Keras is imported inside functions so the
Estimator runtime can name these functions (config validation) without loading Keras 3.
"""

from __future__ import annotations

from typing import Any

NUM_ITEMS = 20
DENSE_DIM = 4


def build_model(embedding_dim: int = 8, hidden_units: int = 16) -> Any:
    """The model, compiled: ``model.evaluate`` reports loss, click_loss, value_loss, click_auc, ..."""
    import keras

    dense = keras.Input(shape=(DENSE_DIM,), name="dense", dtype="float32")
    item_id = keras.Input(shape=(), name="item_id", dtype="int32")
    embedded = keras.layers.Embedding(NUM_ITEMS, embedding_dim, name="item_embedding")(item_id)
    hidden = keras.layers.Concatenate(name="features")([dense, embedded])
    hidden = keras.layers.Dense(hidden_units, activation="relu", name="hidden")(hidden)
    click = keras.layers.Dense(1, activation="sigmoid", name="click")(hidden)
    value = keras.layers.Dense(1, name="value")(hidden)
    model = keras.Model({"dense": dense, "item_id": item_id}, {"click": click, "value": value}, name="example")
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss={"click": "binary_crossentropy", "value": "mse"},
        metrics={"click": [keras.metrics.AUC(name="auc"), "accuracy"], "value": ["mae"]},
    )
    return model


def make_data(size: int, seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Deterministic synthetic features and labels: click depends on the dense features and the item."""
    import numpy as np

    rng = np.random.default_rng(seed)
    dense = rng.normal(size=(size, DENSE_DIM)).astype("float32")
    item_id = rng.integers(0, NUM_ITEMS, size=(size,)).astype("int32")
    item_bias = np.linspace(-1.5, 1.5, NUM_ITEMS).astype("float32")
    logit = dense @ np.array([1.0, -0.5, 0.8, 0.0], dtype="float32") + item_bias[item_id]
    click = (rng.random(size) < 1.0 / (1.0 + np.exp(-logit))).astype("float32")
    value = (2.0 * dense[:, 0] + item_bias[item_id] + rng.normal(scale=0.1, size=size)).astype("float32")
    return {"dense": dense, "item_id": item_id}, {"click": click[:, None], "value": value[:, None]}


def eval_dataset(size: int = 512, seed: int = 1, batch_size: int = 128) -> Any:
    """The eval data as a batched ``tf.data.Dataset`` of (features, labels): what ``model.evaluate`` takes."""
    import tensorflow as tf

    features, labels = make_data(size, seed)
    return tf.data.Dataset.from_tensor_slices((features, labels)).batch(batch_size)


def warmup_instances(count: int = 20, seed: int = 2) -> list[dict[str, Any]]:
    """TF Serving REST-style instances (one dict per example) for the warmup file."""
    features, _ = make_data(count, seed)
    return [
        {"dense": [round(float(x), 4) for x in features["dense"][i]], "item_id": int(features["item_id"][i])}
        for i in range(count)
    ]
