"""Strategy kinds by name: the built-ins, plus third-party kinds from an entry-point group."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any

from components.export.errors import UnknownStrategyError
from components.export.strategies.base import PipelineStrategy

ENTRY_POINT_GROUP = "exportflow.export_strategies"
StrategyFactory = Callable[[str, Mapping[str, Any]], PipelineStrategy]


def _builtins() -> dict[str, StrategyFactory]:
    from components.export.strategies.all_modes import AllModesStrategy

    return {"all_modes": AllModesStrategy}


def known_kinds() -> dict[str, StrategyFactory]:
    kinds = _builtins()
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        kinds.setdefault(ep.name, ep.load())
    return kinds


def create_strategy(kind: str, name: str, params: Mapping[str, Any]) -> PipelineStrategy:
    kinds = known_kinds()
    if kind not in kinds:
        raise UnknownStrategyError(f"unknown export strategy kind {kind!r}; known kinds: {sorted(kinds)}")
    return kinds[kind](name, params)
