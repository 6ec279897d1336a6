"""Tiny trainer for the example model: writes checkpoints the export pipeline can consume.

    python -m examples.train --model-dir /tmp/model --data-dir /tmp/data --steps 300

TensorFlow is imported inside functions only.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
from collections.abc import Sequence
from typing import Any

TRAIN_FILE = "train.tfrecord"
EVAL_FILE = "eval.tfrecord"
NUM_TRAIN_EXAMPLES = 4000
NUM_EVAL_EXAMPLES = 500

_STEP_RE = re.compile(r"-(\d+)$")


def ensure_data(data_dir: str | os.PathLike[str], seed: int = 0) -> tuple[str, str]:
    """Write ``train.tfrecord`` / ``eval.tfrecord`` into ``data_dir`` unless they exist; return their paths."""
    import tensorflow as tf

    from examples.data import write_tfrecords

    data_dir = os.fspath(data_dir)
    tf.io.gfile.makedirs(data_dir)
    train_path = os.path.join(data_dir, TRAIN_FILE)
    eval_path = os.path.join(data_dir, EVAL_FILE)
    # Distinct data seeds for the two files; the labelling rule is shared (see examples.data).
    if not tf.io.gfile.exists(train_path):
        write_tfrecords(train_path, NUM_TRAIN_EXAMPLES, seed=2 * seed)
    if not tf.io.gfile.exists(eval_path):
        write_tfrecords(eval_path, NUM_EVAL_EXAMPLES, seed=2 * seed + 1)
    return train_path, eval_path


def checkpoint_steps(model_dir: str | os.PathLike[str]) -> list[int]:
    """Global steps of the checkpoints listed in ``model_dir``'s ``checkpoint`` state file, ascending."""
    import tensorflow as tf

    state = tf.train.get_checkpoint_state(os.fspath(model_dir))
    if state is None:
        return []
    steps = set()
    for path in state.all_model_checkpoint_paths:
        match = _STEP_RE.search(path)
        if match and tf.io.gfile.exists(path + ".index"):
            steps.add(int(match.group(1)))
    return sorted(steps)


def train(
    model_dir: str | os.PathLike[str],
    data_dir: str | os.PathLike[str],
    steps: int = 300,
    checkpoint_every: int = 100,
    keep_checkpoint_max: int = 5,
    seed: int = 0,
    params: dict[str, Any] | None = None,
) -> list[int]:
    """Train the example model until global step ``steps``; return the steps of the checkpoints present.

    ``steps`` is the target global step (training resumes from an existing checkpoint in
    ``model_dir``). A checkpoint is written every ``checkpoint_every`` steps and at the end.
    """
    import tensorflow as tf

    from examples.model import make_estimator, train_input_fn

    if steps < 1 or checkpoint_every < 1:
        raise ValueError("steps and checkpoint_every must be >= 1")
    train_path, _ = ensure_data(data_dir, seed=seed)
    config = tf.estimator.RunConfig(
        model_dir=os.fspath(model_dir),
        save_checkpoints_steps=checkpoint_every,
        keep_checkpoint_max=keep_checkpoint_max,
        tf_random_seed=seed,
        save_summary_steps=checkpoint_every,
        log_step_count_steps=checkpoint_every,
    )
    estimator = make_estimator(model_dir, params=params, config=config)
    estimator.train(functools.partial(train_input_fn, path=train_path), max_steps=steps)
    return checkpoint_steps(model_dir)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.train", description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--checkpoint-every", type=int, default=100)
    parser.add_argument("--keep-checkpoint-max", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    steps = train(
        args.model_dir,
        args.data_dir,
        steps=args.steps,
        checkpoint_every=args.checkpoint_every,
        keep_checkpoint_max=args.keep_checkpoint_max,
        seed=args.seed,
    )
    print("checkpoints:", " ".join(str(s) for s in steps))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
