"""Export strategies: the pipeline-level contract, the built-ins and the entry-point registry."""

from components.export.strategies.base import PipelineStrategy, StrategyContext
from components.export.strategies.registry import create_strategy, known_kinds

__all__ = ["PipelineStrategy", "StrategyContext", "create_strategy", "known_kinds"]
