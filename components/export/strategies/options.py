"""Typed options of the built-in strategies, parsed from a strategy config's ``params``.

Unknown keys and wrong types are ``StrategyConfigError`` naming the strategy and the key, so a typo in
the YAML fails the task with the fix instead of silently taking a default. Values are decoded by
``components.decoding``'s rule, plus two of the options' own: integers are positive, strings not empty.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar

from components.decoding import DecodeError, decode, type_hints
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
    hints = type_hints(cls)
    values = {}
    for key, value in params.items():
        try:
            values[key] = decode(hints[key], value, path=key, check=_positive_and_non_empty)
        except DecodeError as exc:
            raise StrategyConfigError(
                f"strategy {strategy!r} parameter {key!r} must be {_expected(hints[key])}, got {value!r}"
            ) from exc
    return cls(**values)


def _positive_and_non_empty(path: str, tp: Any, value: Any) -> Any:
    """The options' own rule on top of ``components.decoding``'s: counts are positive, strings not empty."""
    if (tp is int and value <= 0) or (tp is str and value == ""):
        raise DecodeError(path, value, annotation=tp)
    return value


def _expected(tp: Any) -> str:
    """How a parameter's error words what its annotation allows."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
    origin = typing.get_origin(tp)
    if origin is Literal:
        return f"one of {list(typing.get_args(tp))}"
    if origin is tuple:
        return "a list of strings"
    if origin is dict:
        return "a mapping"
    return {bool: "true or false", int: "a positive integer", str: "a non-empty string"}.get(tp, "valid")
