"""A Keras model at one checkpoint: built by the config's builder with the file's weights, or loaded
from a whole ``.keras`` file. A builder whose model does not fit the weights is named layer by layer."""

from __future__ import annotations

import logging
import re
from typing import Any

from components.config.checkpoint_pattern import FilePattern
from components.config.schema import KerasConfig, PipelineConfig
from components.discovery.errors import CorruptCheckpoint
from components.keras.errors import KerasError, KerasModelMismatch

log = logging.getLogger(__name__)


def keras_section(config: PipelineConfig) -> KerasConfig:
    if config.framework != "keras" or config.keras is None:
        raise KerasError(f"model {config.name!r} is not a framework: keras model")
    return config.keras


def build_model(config: PipelineConfig) -> Any:
    """The builder's model (not yet with a checkpoint's weights)."""
    import keras

    section = keras_section(config)
    try:
        model = section.builder.resolve()(**section.builder_kwargs)
    except Exception as exc:
        raise KerasError(
            f"keras.builder {section.builder} raised {type(exc).__name__}: {_first_line(exc)}"
        ) from exc
    if not isinstance(model, keras.Model):
        raise KerasError(
            f"keras.builder {section.builder} returned {type(model).__name__}, not a keras.Model; "
            "return the (compiled) model"
        )
    return model


def load_checkpoint_model(config: PipelineConfig, path: str, label: str) -> Any:
    """The model with the weights of the checkpoint file at ``path`` (``label`` names it in errors)."""
    import keras

    section = keras_section(config)
    if FilePattern.parse(section.checkpoints).kind == "model":
        try:
            return keras.saving.load_model(path)
        except Exception as exc:
            raise KerasError(f"{label}: cannot load the .keras model: {type(exc).__name__}: {_first_line(exc)}") from exc
    model = build_model(config)
    problems = weight_mismatches(model, path, label)
    if problems:
        raise KerasModelMismatch(
            f"{label} does not match the model built by {section.builder}: {problems}; is model_dir the "
            "output of this model (and builder_kwargs the trainer's)?"
        )
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and not optimizer.built:  # so its saved state loads too, without a warning
        optimizer.build(model.trainable_variables)
    try:
        model.load_weights(path)
    except Exception as exc:
        raise KerasModelMismatch(
            f"{label}: loading its weights into the model built by {section.builder} failed: "
            f"{type(exc).__name__}: {_first_line(exc)}"
        ) from exc
    return model


def weight_mismatches(model: Any, path: str, label: str = "checkpoint") -> str:
    """What differs between the model's layers' variables and a ``.weights.h5`` file's; "" if none.

    Keras 3 keeps layer ``i``'s variables under ``layers/<key>/vars/<n>``, where the key is the layer's
    class name in snake case, numbered in the model's layer order (``dense``, ``dense_1``, ...)."""
    import h5py

    problems: list[str] = []
    try:
        with h5py.File(path, "r") as handle:
            saved_layers = handle.get("layers")
            saved_keys = set(saved_layers.keys()) if saved_layers is not None else set()
            expected = layer_keys(model)
            for key, layer in expected.items():
                if not layer.weights:
                    continue
                if key not in saved_keys:
                    problems.append(f"layer {layer.name!r} ({key}) is in the model but not in the checkpoint")
                    continue
                saved_vars = saved_layers[key].get("vars")
                saved = [tuple(saved_vars[str(i)].shape) for i in range(len(saved_vars))] if saved_vars else []
                wanted = [tuple(v.shape) for v in layer.weights]
                if saved != wanted:
                    problems.append(
                        f"layer {layer.name!r} ({key}) has variable shapes {saved} in the checkpoint, "
                        f"{wanted} in the model"
                    )
            extra = sorted(k for k in saved_keys - set(expected) if _has_vars(saved_layers[k]))
            if extra:
                problems.append(f"the checkpoint has layers the model lacks: {extra}")
    except OSError as exc:  # whole by its size and superblock, damaged inside: this checkpoint only
        raise CorruptCheckpoint(f"{label}: the weights file does not read as HDF5: {exc}") from exc
    return "; ".join(problems[:5]) + (f" and {len(problems) - 5} more" if len(problems) > 5 else "")


def layer_keys(model: Any) -> dict[str, Any]:
    """Each layer by the key Keras 3's weights file stores it under."""
    counts: dict[str, int] = {}
    keys = {}
    for layer in model.layers:
        name = re.sub(r"(?<!^)(?=[A-Z])", "_", type(layer).__name__).lower()
        counts[name] = counts.get(name, -1) + 1
        keys[name if counts[name] == 0 else f"{name}_{counts[name]}"] = layer
    return keys


def _has_vars(group: Any) -> bool:
    vars_group = group.get("vars") if hasattr(group, "get") else None
    return bool(vars_group is not None and len(vars_group))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:500] if text else ""
