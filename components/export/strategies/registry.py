"""Strategy kinds by name: the built-ins, plus third-party kinds from an entry-point group.

Built-in kinds: ``all_modes``, ``final``, ``latest``, ``best``, ``standalone``, ``distributed`` and
``custom`` (any ``ExportStrategy`` / ``Exporter`` named by import path).

An entry point in the group ``exportflow.export_strategies`` may name

* a ``PipelineStrategy`` subclass (called as ``cls(name, params)``),
* an ``ExportStrategy`` or ``Exporter`` instance (run through the adapter), or
* a factory ``(name, params)`` returning either of the above.

A kind is looked up by name only when a config uses it, so a broken plugin breaks only its own kind.
Two providers of one kind (a plugin reusing a built-in name, or two plugins) are an error naming both,
never a silent choice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from components.export.errors import StrategyRegistryError, UnknownStrategyError
from components.export.strategies.base import PipelineStrategy

ENTRY_POINT_GROUP = "exportflow.export_strategies"
StrategyFactory = Callable[[str, Mapping[str, Any]], PipelineStrategy]


def _builtins() -> dict[str, StrategyFactory]:
    from components.export.strategies.adapter import ExportStrategyAdapter
    from components.export.strategies.all_modes import AllModesStrategy
    from components.export.strategies.exporter_kinds import BestStrategy, FinalStrategy, LatestStrategy
    from components.export.strategies.monolith import DistributedStrategy, StandaloneStrategy

    return {
        "all_modes": AllModesStrategy,
        "final": FinalStrategy,
        "latest": LatestStrategy,
        "best": BestStrategy,
        "standalone": StandaloneStrategy,
        "distributed": DistributedStrategy,
        "custom": ExportStrategyAdapter,
    }


BUILTIN_KINDS = ("all_modes", "final", "latest", "best", "standalone", "distributed", "custom")


def _entry_points() -> dict[str, list[EntryPoint]]:
    found: dict[str, list[EntryPoint]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if any(ep.value == other.value for other in found.get(ep.name, [])):
            continue  # the same distribution seen twice on sys.path
        found.setdefault(ep.name, []).append(ep)
    return found


def _describe(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.name if dist is not None else '?'}: {ep.value}"


def known_kinds() -> dict[str, list[str]]:
    """Every registered kind with its provider(s); more than one provider means a collision."""
    kinds: dict[str, list[str]] = {kind: ["built-in"] for kind in BUILTIN_KINDS}
    for name, eps in _entry_points().items():
        kinds.setdefault(name, []).extend(_describe(ep) for ep in eps)
    return kinds


def create_strategy(kind: str, name: str, params: Mapping[str, Any]) -> PipelineStrategy:
    """The configured strategy; unknown kinds list the known ones, ambiguous kinds name the providers."""
    kinds = known_kinds()
    if kind not in kinds:
        raise UnknownStrategyError(f"unknown export strategy kind {kind!r}; known kinds: {sorted(kinds)}")
    if len(kinds[kind]) > 1:
        raise StrategyRegistryError(
            f"export strategy kind {kind!r} is registered by more than one provider: {kinds[kind]}; "
            f"rename the entry point in the '{ENTRY_POINT_GROUP}' group of all but one of them"
        )
    if kind in BUILTIN_KINDS:
        return _builtins()[kind](name, params)
    (ep,) = _entry_points()[kind]
    try:
        target = ep.load()
    except Exception as exc:  # a plugin's import error, reported with the entry point that caused it
        raise StrategyRegistryError(
            f"export strategy kind {kind!r} ({_describe(ep)}) does not load: {type(exc).__name__}: {exc}"
        ) from exc
    return _instantiate(kind, target, name, params)


def _instantiate(kind: str, target: Any, name: str, params: Mapping[str, Any]) -> PipelineStrategy:
    from components.export.strategies.adapter import ExportStrategyAdapter, is_adaptable

    if isinstance(target, type) and issubclass(target, PipelineStrategy):
        return target(name, params)
    if is_adaptable(target):
        return ExportStrategyAdapter(name, params, target)
    if callable(target):
        made = target(name, params)
        if isinstance(made, PipelineStrategy):
            return made
        if is_adaptable(made):
            return ExportStrategyAdapter(name, params, made)
        target = made
    raise StrategyRegistryError(
        f"export strategy kind {kind!r} resolves to {type(target).__name__}; an entry point must name a "
        "PipelineStrategy subclass, an ExportStrategy or Exporter, or a factory (name, params) of one"
    )
