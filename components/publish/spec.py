"""Publish's component spec: an export (with warmup) in, a PushedModel out."""

from __future__ import annotations

import dataclasses

from components.artifacts import EvaluationArtifact
from components.config.schema import PipelineConfig, StrategyConfig


@dataclasses.dataclass(frozen=True)
class PublishParams:
    config: PipelineConfig
    strategy: StrategyConfig
    evaluation: EvaluationArtifact | None = None
    dry_run: bool = False  # write the manifest, publish nothing
    force: bool = False  # other content at the same number: publish it under a fresh, higher number (conflict.py)

