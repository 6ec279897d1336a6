"""Export strategies: the pipeline-level contract, the built-ins and the entry-point registry."""

from components.export.strategies.base import Decision, PipelineStrategy, StrategyContext, Written
from components.export.strategies.registry import ENTRY_POINT_GROUP, create_strategy, known_kinds

__all__ = [
    "ENTRY_POINT_GROUP",
    "Decision",
    "PipelineStrategy",
    "StrategyContext",
    "Written",
    "create_strategy",
    "known_kinds",
]
