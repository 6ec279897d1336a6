"""A model served by labels, with versions published from synthetic exports: what the serving tests share.

Configs come from the one builder (``example_config_dict`` with a model dir nobody trained): the serving
tests publish hand-made exports and never load the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from components.config.loader import parse_config
from components.config.schema import PipelineConfig
from components.publish.executor import publish
from components.serving import config_file, model_config
from components.storage import storage_for
from tests.support.example_pipeline import example_config_dict
from tests.support.publishing import make_export, params_for


def serving_config_dict(folder: Path, *, name: str = "example", keep: int | None = None, **serving: Any) -> dict[str, Any]:
    """The config of model ``name`` publishing to ``folder/published`` (keeping ``keep`` versions, else the
    default), served in labels mode with no wait for a model server unless ``serving`` says otherwise."""
    return example_config_dict(
        folder / "model",
        folder / "published",
        merge={"destination": {"keep": keep}},
        name=name,
        serving={"mode": "labels", "label_wait_seconds": 0, **serving},
    )


def serving_config(folder: Path, **serving: Any) -> PipelineConfig:
    """``serving_config_dict`` for ``example`` keeping one version (so retention has something to retire), parsed."""
    return parse_config(serving_config_dict(folder, keep=1, **serving), base_dir=folder)


def publish_versions(config: PipelineConfig, folder: Path, *steps: int) -> None:
    """Publish a synthetic export of each of ``steps`` (the step is the version) with ``config``."""
    for step in steps:
        publish(params_for(config), make_export(folder / "exports", step=step, seed=step))


def config_path(folder: Path) -> Path:
    """The model server config (``models.config``) the publications under ``folder/published`` keep."""
    return folder / "published" / "models.config"


def entry(folder: Path, name: str = "example") -> model_config.ServableEntry | None:
    """Servable ``name``'s entry in the model server config under ``folder``, or None when it has none."""
    read = config_file.read(storage_for(str(folder)), str(config_path(folder)))
    return model_config.find(read.config, name)
