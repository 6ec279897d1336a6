"""Where a model's staged exports and scratch files live: derived from the config, never from a trigger.

Two places, with different jobs:

* **staging** (a URI, any storage scheme): versions between export and publish, handed from task to task
  by URI, so each stage may run on another worker. Default ``<destination>/.exportflow/<name>/staging``.
* **scratch** (a local folder, per worker): TF's own writes and the download cache. Never handed over.
"""

from __future__ import annotations

import os
import tempfile

from components.config.schema import PipelineConfig
from components.layout import BOOKKEEPING, STAGING_FOLDER
from components.storage.registry import scheme_of


def staging_root(config: PipelineConfig) -> str:
    """The model's staging location: ``staging``, else the old ``staging_dir``, else under the destination."""
    if config.staging:
        root = config.staging.removeprefix("file://")
        return root if scheme_of(root) == "file" else root.rstrip("/")
    if config.staging_dir:
        return os.path.join(config.staging_dir, config.name, STAGING_FOLDER)
    destination = config.destination.uri.removeprefix("file://")
    if scheme_of(destination) == "file":
        return os.path.join(destination, BOOKKEEPING, config.name, STAGING_FOLDER)
    return f"{destination.rstrip('/')}/{BOOKKEEPING}/{config.name}/{STAGING_FOLDER}"


def staging_is_local(config: PipelineConfig) -> bool:
    return scheme_of(staging_root(config)) == "file"


def staging_dir(config: PipelineConfig, strategy: str) -> str:
    """Exports of one strategy before publication: ``<staging>/<strategy>`` (``<version>`` below it)."""
    root = staging_root(config)
    return os.path.join(root, strategy) if scheme_of(root) == "file" else f"{root}/{strategy}"


def scratch_dir(config: PipelineConfig) -> str:
    """This worker's scratch folder for the model: ``scratch_dir``; else beside a local staging root (where
    it always was: ``<destination>/.exportflow/<name>``, or ``<staging_dir>/<name>``), else
    ``<temp>/exportflow/<name>``."""
    if config.scratch_dir:
        return config.scratch_dir
    root = staging_root(config)
    if scheme_of(root) == "file" and not config.staging:
        return os.path.dirname(root)
    return os.path.join(tempfile.gettempdir(), "exportflow", config.name)


def work_dir(config: PipelineConfig, purpose: str) -> str:
    """Scratch folder for the Estimator's own files (eval summaries, export temp dirs)."""
    return os.path.join(scratch_dir(config), "work", purpose)


def cache_dir(config: PipelineConfig) -> str:
    """The worker's download cache (objects by CRC32C), shared by every stage of the model."""
    return os.path.join(scratch_dir(config), "cache")


def state_dir(config: PipelineConfig) -> str:
    """The model's local state folder (kept for callers written before ``staging`` was a URI): the local
    staging root's parent when staging is on local disk, else the worker's scratch folder. Check
    ``staging_root`` for where versions are staged."""
    root = staging_root(config)
    return os.path.dirname(root) if scheme_of(root) == "file" else scratch_dir(config)
