"""The contract every pipeline export strategy implements: decide, then write into a fresh folder.

The export executor owns everything around a strategy — the version name, the temp folder, the atomic
rename into the version folder, idempotency, verification and retention — so a strategy only decides
whether to export this checkpoint and writes one SavedModel (or a set of them) into the folder it is
given. ``write`` may return a :class:`Written` describing a set, how variables got there, or that it
declined after all (an ``Exporter`` that returns ``None``). The built-in kinds derive from
:class:`OptionsStrategy`, which parses ``params`` into their options dataclass.

Options in a strategy config's ``params`` (see ``strategies/options.py``): every kind takes ``verify``
(``full`` | ``graph``), ``version`` (``step`` | ``timestamp``) and ``exports_to_keep``; the kinds that
write SavedModels themselves also take ``by_reference``, ``as_text``, ``strip_default_attrs`` and
``assets_extra``, plus their own (``layout``, ``max_steps``, ``metric``, ``include_graphs``, ...).
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Mapping
from typing import Any

from components.artifacts import EvaluationArtifact
from components.config.schema import PipelineConfig
from components.export.savedmodel.versions import Written
from components.export.strategies.options import BaseOptions, parse_options
from components.ledger import LedgerState


@dataclasses.dataclass(frozen=True)
class StrategyContext:
    """What a strategy may look at when deciding and writing."""

    config: PipelineConfig
    evaluation: EvaluationArtifact
    checkpoint_path: str  # the readable (pinned) checkpoint prefix
    ledger: LedgerState
    is_final: bool  # training's asset event said final: true for this checkpoint (CheckpointArtifact.final)
    work_dir: str  # scratch folder for the Estimator
    version: str = ""  # the version folder being written
    strategy_name: str = ""

    @property
    def step(self) -> int:
        return self.evaluation.checkpoint.step


@dataclasses.dataclass(frozen=True)
class Decision:
    export: bool
    reason: str


class PipelineStrategy(abc.ABC):
    """A configured export strategy: ``name`` is its directory and task id, ``params`` its settings.

    The executor reads ``exports_to_keep``, ``verify`` and ``version_scheme`` from the instance; the
    built-ins set them from their options.
    """

    exports_to_keep: int | None = None
    verify: str = "full"
    version_scheme: str = "step"

    def __init__(self, name: str, params: Mapping[str, Any]) -> None:
        self.name = name
        self.params = dict(params)

    def decide(self, ctx: StrategyContext) -> Decision:
        """Whether to export this checkpoint; the default exports every blessed one."""
        return Decision(True, "exports every blessed checkpoint")

    @abc.abstractmethod
    def write(self, ctx: StrategyContext, export_dir: str) -> Written | None:
        """Write the SavedModel (or a set) into ``export_dir`` (which does not exist yet)."""


class OptionsStrategy(PipelineStrategy):
    """A built-in strategy whose params parse into an options dataclass."""

    options_class: type[BaseOptions] = BaseOptions

    def __init__(self, name: str, params: Any) -> None:
        super().__init__(name, params)
        self.options = parse_options(self.options_class, self.params, name)
        self.exports_to_keep = self.options.exports_to_keep
        self.verify = self.options.verify
        self.version_scheme = self.options.version


__all__ = ["Decision", "OptionsStrategy", "PipelineStrategy", "StrategyContext", "Written"]
