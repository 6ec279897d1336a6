"""Export strategies: the pipeline-level contract, the built-in kinds and the entry-point registry.

* ``base.py`` — ``PipelineStrategy`` (decide, then write), ``StrategyContext``, ``Decision`` and
  ``OptionsStrategy``, the base of every built-in kind;
* ``options.py`` — each kind's typed ``params``;
* ``all_modes.py`` (kind ``all_modes``), ``exporter_kinds.py`` (``final``, ``latest``, ``best``),
  ``monolith.py`` (``standalone``, ``distributed``), ``adapter.py`` (``custom`` and entry points that
  name an ``ExportStrategy`` or ``Exporter``);
* ``registry.py`` — kinds by name, built-in or from the ``exportflow.export_strategies`` entry points.
"""

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
