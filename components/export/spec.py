"""Export's component spec: a blessed evaluation in, a SavedModel (Model artifact) out."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from components.config.schema import PipelineConfig, StrategyConfig
from components.ledger import LedgerState


@dataclasses.dataclass(frozen=True)
class ExportParams:
    config: PipelineConfig
    strategy: StrategyConfig
    ledger: LedgerState
    force: bool = False  # re-export even when a complete version exists
    is_final: bool = False  # training said this is its last checkpoint (FinalExporter)
    # Re-reads the ledger (for retention, which must see exports recorded after ``ledger`` was loaded).
    ledger_source: Callable[[], LedgerState] | None = dataclasses.field(default=None, compare=False)
    # Turns the configured strategy into one for another framework (Keras: its decision, Keras's writer;
    # given by the pipeline); None: the strategy as configured.
    adapt_strategy: Callable[[Any], Any] | None = dataclasses.field(default=None, compare=False)

