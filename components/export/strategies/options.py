"""Typed options of the built-in strategies, parsed from a strategy config's ``params``.

Unknown keys and wrong types are ``StrategyConfigError`` naming the strategy and the key, so a typo in
the YAML fails the task with the fix instead of silently taking a default.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar

from components.export.errors import StrategyConfigError

O = TypeVar("O")


@dataclasses.dataclass(frozen=True)
class BaseOptions:
    """What the executor reads from every strategy."""

    # full: load each tag with its variables; graph: import each tag and check variables against the index
    verify: Literal["full", "graph"] = "full"
    version: Literal["step", "timestamp"] = "step"
    exports_to_keep: int | None = None  # staged versions kept (unpublished ones are never removed)


@dataclasses.dataclass(frozen=True)
class CommonOptions(BaseOptions):
    """What every built-in strategy that writes SavedModels itself accepts."""

    by_reference: bool = False  # place the checkpoint files as variables/ (see savedmodel/by_reference.py)
    as_text: bool = False
    strip_default_attrs: bool = True
    assets_extra: dict[str, str] = dataclasses.field(default_factory=dict)  # relative key -> source file


@dataclasses.dataclass(frozen=True)
class AllModesOptions(CommonOptions):
    layout: Literal["combined", "per_mode"] = "combined"
    # a subset of train / eval / predict; default: every mode with a configured receiver
    modes: tuple[str, ...] | None = None


@dataclasses.dataclass(frozen=True)
class FinalOptions(CommonOptions):
    max_steps: int | None = None  # a checkpoint at or past this step is final too


@dataclasses.dataclass(frozen=True)
class LatestOptions(CommonOptions):
    exports_to_keep: int | None = 5


@dataclasses.dataclass(frozen=True)
class BestOptions(CommonOptions):
    exports_to_keep: int | None = 5
    # default: the config's ranking rule (components.ranking: the first change threshold, else lower loss)
    metric: str | None = None
    direction: Literal["lower_is_better", "higher_is_better"] | None = None  # with metric; default lower
    compare_fn: str | None = None  # import path of compare_fn(best_eval_result, current_eval_result)


@dataclasses.dataclass(frozen=True)
class StandaloneOptions(CommonOptions):
    shared_embedding: bool | None = None  # Monolith's name for by_reference
    warmup_file: str | None = None


@dataclasses.dataclass(frozen=True)
class DistributedOptions(StandaloneOptions):
    dense_only: bool = False
    allow_gpu: bool = False
    with_remote_gpu: bool = False
    clear_entry_devices: bool = False
    include_graphs: tuple[str, ...] | None = None


@dataclasses.dataclass(frozen=True)
class AdapterOptions(BaseOptions):
    """The user's ExportStrategy / Exporter writes the SavedModel, so only the executor's options apply."""

    target: str | None = None  # import path of an ExportStrategy, an Exporter or a factory of one
    target_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)  # passed to a factory target
    max_steps: int | None = None  # with is_final, defines "final" for an Exporter's is_the_final_export


def parse_options(cls: type[O], params: Mapping[str, Any], strategy: str) -> O:
    """``cls`` built from ``params``; every key checked against the field's annotation."""
    if not isinstance(params, Mapping):
        raise StrategyConfigError(
            f"strategy {strategy!r}: params must be a mapping, got {type(params).__name__}"
        )
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(params) - set(fields))
    if unknown:
        raise StrategyConfigError(
            f"strategy {strategy!r}: unknown parameter(s) {unknown}; this kind accepts {sorted(fields)}"
        )
    hints = typing.get_type_hints(cls)
    values = {
        key: _coerce(hints[key], value, f"strategy {strategy!r} parameter {key!r}")
        for key, value in params.items()
    }
    return cls(**values)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(tp):
            return None
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        return _coerce(options[0], value, where)
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise StrategyConfigError(f"{where} must be one of {list(allowed)}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise StrategyConfigError(f"{where} must be a list of strings, got {value!r}")
        return tuple(value)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise StrategyConfigError(f"{where} must be a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise StrategyConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise StrategyConfigError(f"{where} must be a positive integer, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str) or not value:
            raise StrategyConfigError(f"{where} must be a non-empty string, got {value!r}")
        return value
    return value
