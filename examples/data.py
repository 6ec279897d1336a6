"""Deterministic synthetic data for the example model.

Each example has two features and a binary label:

* ``dense``   -- float32 vector of length :data:`DENSE_DIM`;
* ``item_id`` -- int64 scalar in ``[0, VOCAB_SIZE)``, drawn from a skewed
  (Zipf-like) distribution so that popular ids repeat often enough for an
  embedding to learn them;
* ``label``   -- int64 in ``{0, 1}``, drawn from ``sigmoid(hidden_logit)`` where
  ``hidden_logit = dense . w + bias[item_id] + b``.

The hidden rule (``w``, ``bias``, ``b`` and the id popularity ranking) is fixed by
:data:`RULE_SEED` and is the same for every data ``seed``; the ``seed`` argument
only changes which examples are drawn. Train and eval files written with
different seeds therefore share one rule, and the model has something to learn.

TensorFlow is imported inside the functions that need it, never at module level.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import numpy as np

DENSE_DIM = 8
VOCAB_SIZE = 1000

DENSE_KEY = "dense"
ITEM_ID_KEY = "item_id"
LABEL_KEY = "label"

#: Seed of the hidden labelling rule; independent of the per-file data seed.
RULE_SEED = 20_240_611
#: Exponent of the Zipf-like popularity of item ids.
ZIPF_EXPONENT = 1.1


@functools.lru_cache(maxsize=1)
def _hidden_rule() -> dict[str, np.ndarray]:
    """The fixed labelling rule and id popularity, computed once."""
    rng = np.random.default_rng(RULE_SEED)
    weights = rng.normal(0.0, 1.0, size=DENSE_DIM) * (2.0 / np.sqrt(DENSE_DIM))
    id_bias = rng.normal(0.0, 1.5, size=VOCAB_SIZE)
    # Popularity: rank r gets mass ~ 1 / (r + 1)^s; ranks are mapped onto ids by a
    # fixed permutation so that popular ids are spread across the vocabulary.
    ranks = np.arange(VOCAB_SIZE, dtype=np.float64)
    mass = 1.0 / np.power(ranks + 1.0, ZIPF_EXPONENT)
    id_probs = np.empty(VOCAB_SIZE, dtype=np.float64)
    id_probs[rng.permutation(VOCAB_SIZE)] = mass / mass.sum()
    for arr in (weights, id_bias, id_probs):
        arr.setflags(write=False)
    return {"weights": weights, "id_bias": id_bias, "intercept": np.float64(0.2), "id_probs": id_probs}


def hidden_logit(dense: np.ndarray, item_id: np.ndarray) -> np.ndarray:
    """The true logit of ``P(label = 1)`` for a batch (``dense`` [n, 8], ``item_id`` [n])."""
    rule = _hidden_rule()
    dense = np.asarray(dense, dtype=np.float64).reshape(-1, DENSE_DIM)
    item_id = np.asarray(item_id, dtype=np.int64).reshape(-1)
    return dense @ rule["weights"] + rule["id_bias"][item_id] + rule["intercept"]


def generate_arrays(num_examples: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Draw ``num_examples`` examples as numpy arrays keyed like the tf.Example features.

    Returns ``{"dense": float32 [n, 8], "item_id": int64 [n], "label": int64 [n]}``.
    The same ``(num_examples, seed)`` always gives the same arrays.
    """
    if num_examples < 0:
        raise ValueError(f"num_examples must be >= 0, got {num_examples}")
    rule = _hidden_rule()
    rng = np.random.default_rng(seed)
    dense = rng.normal(0.0, 1.0, size=(num_examples, DENSE_DIM)).astype(np.float32)
    item_id = rng.choice(VOCAB_SIZE, size=num_examples, p=rule["id_probs"]).astype(np.int64)
    prob = 1.0 / (1.0 + np.exp(-hidden_logit(dense, item_id)))
    label = (rng.random(num_examples) < prob).astype(np.int64)
    return {DENSE_KEY: dense, ITEM_ID_KEY: item_id, LABEL_KEY: label}


def make_example(dense: Any, item_id: int, label: int | None = None) -> bytes:
    """Serialize one ``tf.train.Example`` (the label feature is omitted when ``label`` is None)."""
    import tensorflow as tf

    dense_values = np.asarray(dense, dtype=np.float32).reshape(-1)
    if dense_values.shape[0] != DENSE_DIM:
        raise ValueError(f"dense must have {DENSE_DIM} values, got {dense_values.shape[0]}")
    feature = {
        DENSE_KEY: tf.train.Feature(float_list=tf.train.FloatList(value=dense_values.tolist())),
        ITEM_ID_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[int(item_id)])),
    }
    if label is not None:
        feature[LABEL_KEY] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def write_tfrecords(path: str | os.PathLike[str], num_examples: int, seed: int = 0) -> int:
    """Write ``num_examples`` labelled examples to a TFRecord file at ``path``.

    Parent directories are created; the file appears at ``path`` only once complete.
    Returns the number of records written.
    """
    import tensorflow as tf

    path = os.fspath(path)
    parent = os.path.dirname(path)
    if parent:
        tf.io.gfile.makedirs(parent)
    arrays = generate_arrays(num_examples, seed)
    # Write beside the target and rename, so a crash never leaves a partial file at ``path``.
    tmp_path = f"{path}.tmp-{os.getpid()}"
    try:
        with tf.io.TFRecordWriter(tmp_path) as writer:
            for dense, item_id, label in zip(arrays[DENSE_KEY], arrays[ITEM_ID_KEY], arrays[LABEL_KEY]):
                writer.write(make_example(dense, int(item_id), int(label)))
        tf.io.gfile.rename(tmp_path, path, overwrite=True)
    finally:
        if tf.io.gfile.exists(tmp_path):
            tf.io.gfile.remove(tmp_path)
    return num_examples


def feature_spec(with_label: bool = False) -> dict[str, Any]:
    """The ``tf.io.parse_example`` spec for the example features (and the label if asked)."""
    import tensorflow as tf

    spec: dict[str, Any] = {
        DENSE_KEY: tf.io.FixedLenFeature([DENSE_DIM], tf.float32),
        ITEM_ID_KEY: tf.io.FixedLenFeature([], tf.int64),
    }
    if with_label:
        spec[LABEL_KEY] = tf.io.FixedLenFeature([], tf.int64)
    return spec
