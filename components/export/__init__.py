"""Export: turn a blessed checkpoint into SavedModels through pluggable export strategies.

The library contracts (usable without the pipeline), imported lazily so ``import components.export``
stays cheap and free of TensorFlow:

* ``ExportStrategy(name, export_fn)`` — tf.contrib.learn's pair (``contrib.py``);
* ``Exporter`` (an ABC), ``FinalExporter``, ``LatestExporter``, ``BestExporter`` (``exporters.py``);
* ``export_all_saved_models`` with ``combined`` / ``per_mode`` layouts (``all_modes.py``);
* ``ExportContext``, ``enter_export_mode`` and friends, ``sharded_embedding`` (``context.py``);
* ``StandaloneExporter``, ``DistributedExporter`` (``standalone.py``, ``distributed.py``);
* variables by reference (``by_reference.py``), the retention helper (``retention.py``).

The pipeline side — strategy kinds, registry, executor — lives in ``strategies/`` and ``executor.py``.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "ExportStrategy": "components.export.contrib",
    "Exporter": "components.export.exporters",
    "FinalExporter": "components.export.exporters",
    "LatestExporter": "components.export.exporters",
    "BestExporter": "components.export.exporters",
    "loss_smaller": "components.export.exporters",
    "export_all_saved_models": "components.export.all_modes",
    "ExportContext": "components.export.context",
    "ExportMode": "components.export.context",
    "enter_export_mode": "components.export.context",
    "is_exporting": "components.export.context",
    "is_exporting_standalone": "components.export.context",
    "is_exporting_distributed": "components.export.context",
    "get_current_export_ctx": "components.export.context",
    "sharded_embedding": "components.export.context",
    "StandaloneExporter": "components.export.standalone",
    "DistributedExporter": "components.export.distributed",
    "prune_export_versions": "components.export.retention",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'components.export' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
