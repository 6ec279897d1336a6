"""What one run may choose, and how those choices select among the configured strategies."""

from __future__ import annotations

import dataclasses

from components.config.schema import PipelineConfig, StrategyConfig


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """What one run may choose among configured things (the manual trigger's form maps onto this)."""

    checkpoint: int | None = None  # a step; None takes every new checkpoint
    steps: tuple[int, ...] | None = None  # steps named by training's asset events (every coalesced event)
    final_steps: tuple[int, ...] = ()  # steps whose asset event said final: true
    strategies: tuple[str, ...] | None = None  # a subset of the configured strategy names
    force: bool = False  # re-export and re-publish even when already done
    dry_run: bool = False  # do everything but publish
    max_checkpoints: int | None = None
    run_id: str | None = None  # the orchestrator's run (an Airflow DAG run id), recorded with publications

    def __post_init__(self) -> None:
        if self.max_checkpoints is not None and self.max_checkpoints <= 0:
            raise ValueError(f"max_checkpoints must be positive, got {self.max_checkpoints}")


def selected_strategies(config: PipelineConfig, options: RunOptions) -> tuple[StrategyConfig, ...]:
    """The configured strategies this run exports; an unknown name is refused with the configured ones."""
    if options.strategies is None:
        return config.strategies
    configured = [s.name for s in config.strategies]
    unknown = sorted(set(options.strategies) - set(configured))
    if unknown:
        raise ValueError(f"unknown strategies {unknown}; configured strategies: {configured}")
    return tuple(s for s in config.strategies if s.name in options.strategies)


def strategy_named(config: PipelineConfig, name: str) -> StrategyConfig:
    for strategy in config.strategies:
        if strategy.name == name:
            return strategy
    raise ValueError(f"{config.source}: no strategy named {name!r}; configured: {[s.name for s in config.strategies]}")
