"""A custom export strategy for the Keras example: Keras's own one-call ``model.export()``.

Kind ``custom`` with ``params.target: examples.keras.strategies:model_export``. For a Keras model the
``export_fn`` gets the model at the checkpoint where an Estimator's would get the Estimator.
"""

from __future__ import annotations

import os
from typing import Any

from components.export.compat.export_strategy import ExportStrategy


def export_with_model_export(model: Any, export_path: str) -> str:
    """Write ``model.export()``'s SavedModel (endpoint ``serve``, aliased ``serving_default``) under ``export_path``."""
    target = os.path.join(export_path, "model_export")
    model.export(target, verbose=False)
    return target


model_export = ExportStrategy("model_export", export_with_model_export)
