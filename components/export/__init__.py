"""Export: turn a blessed checkpoint into SavedModels through pluggable export strategies.

Three parts, each usable on its own:

* ``compat/`` — the seed APIs, usable without the pipeline: tf.contrib.learn's ``ExportStrategy``,
  tf.estimator's ``Exporter`` / ``FinalExporter`` / ``LatestExporter`` / ``BestExporter`` and
  ``export_all_saved_models``, Monolith's ``ExportContext``, ``StandaloneExporter`` and
  ``DistributedExporter``;
* ``savedmodel/`` — writing SavedModels under all of them: graphs per mode, variables by reference,
  assets, verification, versions and atomic writes (retention: ``components.version_folders``);
* ``strategies/`` — the pipeline's strategy kinds (``all_modes``, ``final``, ``latest``, ``best``,
  ``standalone``, ``distributed``, ``custom``), their base class and the entry-point registry;
  ``executor.py`` runs one of them for the export stage (``spec.py``).

The seed APIs are importable from here, lazily, so ``import components.export`` stays cheap and free
of TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "ExportStrategy": "components.export.compat.export_strategy",
    "Exporter": "components.export.compat.exporters",
    "FinalExporter": "components.export.compat.exporters",
    "LatestExporter": "components.export.compat.exporters",
    "BestExporter": "components.export.compat.exporters",
    "loss_smaller": "components.export.compat.exporters",
    "export_all_saved_models": "components.export.compat.export_all_saved_models",
    "ExportContext": "components.export.compat.export_context",
    "ExportMode": "components.export.compat.export_context",
    "enter_export_mode": "components.export.compat.export_context",
    "is_exporting": "components.export.compat.export_context",
    "is_exporting_standalone": "components.export.compat.export_context",
    "is_exporting_distributed": "components.export.compat.export_context",
    "get_current_export_ctx": "components.export.compat.export_context",
    "sharded_embedding": "components.export.compat.export_context",
    "StandaloneExporter": "components.export.compat.standalone",
    "DistributedExporter": "components.export.compat.distributed",
    "prune_export_versions": "components.version_folders",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'components.export' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
