"""Train the example Keras model, writing a weights checkpoint per epoch as ``ModelCheckpoint`` does.

``python -m examples.keras.train MODEL_DIR DATA_DIR`` in the Keras runtime writes
``MODEL_DIR/ckpt-<epoch>.weights.h5`` (epoch 1, 2, ...) and ``DATA_DIR/warmup.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re

from examples.keras.model import build_model, make_data, warmup_instances

CHECKPOINT_PATTERN = "ckpt-{epoch:03d}.weights.h5"  # the same pattern goes into the pipeline config


def train(model_dir: str, data_dir: str, epochs: int = 3, seed: int = 0) -> list[int]:
    """Train ``epochs`` epochs from a fixed seed; returns the epochs checkpointed."""
    import keras

    keras.utils.set_random_seed(seed)
    os.makedirs(model_dir, exist_ok=True)
    os.makedirs(data_dir, exist_ok=True)
    features, labels = make_data(2048, seed)
    model = build_model()
    checkpoint = keras.callbacks.ModelCheckpoint(
        os.path.join(model_dir, CHECKPOINT_PATTERN), save_weights_only=True, save_freq="epoch"
    )
    model.fit(features, labels, epochs=epochs, batch_size=64, callbacks=[checkpoint], verbose=0)
    with open(os.path.join(data_dir, "warmup.json"), "w", encoding="utf-8") as handle:
        json.dump({"instances": warmup_instances()}, handle)
    return checkpoint_epochs(model_dir)


def checkpoint_epochs(model_dir: str) -> list[int]:
    """Epochs with a checkpoint file in ``model_dir``."""
    found = (re.fullmatch(r"ckpt-(\d+)\.weights\.h5", name) for name in os.listdir(model_dir))
    return sorted(int(m.group(1)) for m in found if m)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model_dir")
    parser.add_argument("data_dir")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args(argv)
    print(json.dumps(train(args.model_dir, args.data_dir, args.epochs)))


if __name__ == "__main__":
    main()
