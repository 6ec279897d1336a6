"""The contract every pipeline export strategy implements: decide, then write into a fresh folder.

The export executor owns everything around a strategy — the temp folder, the atomic rename into the
version folder, idempotency and verification — so a strategy only decides whether to export this
checkpoint and writes one SavedModel (or a set of them) into the folder it is given.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Mapping
from typing import Any

from components.artifacts import EvaluationArtifact
from components.config.schema import PipelineConfig
from components.ledger import LedgerState


@dataclasses.dataclass(frozen=True)
class StrategyContext:
    """What a strategy may look at when deciding and writing."""

    config: PipelineConfig
    evaluation: EvaluationArtifact
    checkpoint_path: str  # the readable (pinned) checkpoint prefix
    ledger: LedgerState
    is_final: bool
    work_dir: str  # scratch folder for the Estimator


@dataclasses.dataclass(frozen=True)
class Decision:
    export: bool
    reason: str


class PipelineStrategy(abc.ABC):
    """A configured export strategy: ``name`` is its directory and task id, ``params`` its settings."""

    def __init__(self, name: str, params: Mapping[str, Any]) -> None:
        self.name = name
        self.params = dict(params)

    def decide(self, ctx: StrategyContext) -> Decision:
        """Whether to export this checkpoint; the default exports every blessed one."""
        return Decision(True, "exports every blessed checkpoint")

    @abc.abstractmethod
    def write(self, ctx: StrategyContext, export_dir: str) -> None:
        """Write the SavedModel into ``export_dir`` (which does not exist yet)."""
