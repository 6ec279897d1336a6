"""Where a model's scratch files live: derived from the config, never from a trigger."""

from __future__ import annotations

import os
import tempfile

from components.config.schema import PipelineConfig
from components.storage.registry import scheme_of


def state_dir(config: PipelineConfig) -> str:
    """Local folder for this model's staging and scratch files.

    Beside the destination when the destination is local (same filesystem, so publishing can hard-link
    or rename instead of copying); under the system temp folder otherwise, unless ``staging_dir`` is set.
    """
    if config.staging_dir:
        return os.path.join(config.staging_dir, config.name)
    if scheme_of(config.destination.uri) == "file":
        return os.path.join(config.destination.uri, ".exportflow", config.name)
    return os.path.join(tempfile.gettempdir(), "exportflow", config.name)


def staging_dir(config: PipelineConfig, strategy: str) -> str:
    """Exports of one strategy before publication: ``<state>/staging/<strategy>/<version>``."""
    return os.path.join(state_dir(config), "staging", strategy)


def work_dir(config: PipelineConfig, purpose: str) -> str:
    """Scratch folder for the Estimator's own files (eval summaries, export temp dirs)."""
    return os.path.join(state_dir(config), "work", purpose)
