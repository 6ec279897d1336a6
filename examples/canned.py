"""Canned estimators through a config's ``estimator:`` field, over the example data.

A canned estimator (``LinearRegressor``, ``DNNClassifier``, ...) keeps its model_fn to itself, so a config
names a factory instead of a model_fn::

    estimator: examples.canned:linear_classifier     # or examples.canned:linear_regressor
    receivers:
      predict: examples.canned:serving_input_receiver_fn
    evaluation:
      input_fn: examples.canned:eval_input_fn
      input_fn_kwargs: {path: /data/eval.tfrecord}

exportflow calls ``factory(model_dir=..., config=...)`` with a scratch folder and a RunConfig: pass both
through to the Estimator (the trainer's own folder is read via ``checkpoint_path``, never written). The
trainer must build the same estimator (same feature columns), so both sides use these functions.

TensorFlow is imported inside functions only.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from examples.data import DENSE_DIM, DENSE_KEY, ITEM_ID_KEY, LABEL_KEY, VOCAB_SIZE


def feature_columns() -> list[Any]:
    import tensorflow as tf

    return [
        tf.feature_column.numeric_column(DENSE_KEY, shape=[DENSE_DIM]),
        tf.feature_column.categorical_column_with_identity(ITEM_ID_KEY, num_buckets=VOCAB_SIZE),
    ]


def linear_regressor(model_dir: str, config: Any) -> Any:
    """Regresses the example's 0/1 label; its serving_default signature answers Regress requests."""
    import tensorflow as tf

    return tf.estimator.LinearRegressor(feature_columns(), model_dir=model_dir, config=config)


def linear_classifier(model_dir: str, config: Any) -> Any:
    """Binary classifier of the example's label; its serving_default signature answers Classify requests."""
    import tensorflow as tf

    return tf.estimator.LinearClassifier(feature_columns(), model_dir=model_dir, config=config)


def serving_input_receiver_fn() -> Any:
    """Serialized tf.Examples under the key ``examples``, parsed for the feature columns."""
    import tensorflow as tf

    spec = tf.feature_column.make_parse_example_spec(feature_columns())
    return tf.estimator.export.build_parsing_serving_input_receiver_fn(spec)()


def _dataset(path: str | os.PathLike[str], batch_size: int, repeat: bool) -> Any:
    import tensorflow as tf

    spec = {
        **tf.feature_column.make_parse_example_spec(feature_columns()),
        LABEL_KEY: tf.io.FixedLenFeature([], tf.int64),
    }

    def parse(serialized: Any) -> Any:
        features = tf.io.parse_example(serialized, spec)
        return features, features.pop(LABEL_KEY)

    dataset = tf.data.TFRecordDataset(os.fspath(path))
    if repeat:
        dataset = dataset.shuffle(1000, seed=0).repeat()
    return dataset.batch(batch_size).map(parse).prefetch(1)


def eval_input_fn(path: str | os.PathLike[str], batch_size: int = 128) -> Any:
    """One pass over labelled tf.Examples."""
    return _dataset(path, batch_size, repeat=False)


def train(
    factory: Any, model_dir: str | os.PathLike[str], data_dir: str | os.PathLike[str], steps: int, every: int
) -> list[int]:
    """Train ``factory``'s estimator on the example data; the steps of the checkpoints written."""
    import tensorflow as tf

    from examples.train import checkpoint_steps, ensure_data

    train_path, _ = ensure_data(data_dir)
    config = tf.estimator.RunConfig(
        model_dir=os.fspath(model_dir),
        save_checkpoints_steps=every,
        tf_random_seed=0,
        log_step_count_steps=None,
    )
    estimator = factory(model_dir=os.fspath(model_dir), config=config)
    estimator.train(functools.partial(_dataset, train_path, 64, True), max_steps=steps)
    return checkpoint_steps(model_dir)
