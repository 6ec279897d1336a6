"""Asset names shared by the training side and the export DAGs.

Training emits an event on its model directory's asset; the export DAG of a model configured with
``schedule: asset`` runs on it. Publishing emits events on ``<destination>/<model>`` for rollout DAGs.
"""

from __future__ import annotations

from typing import Any


def _uri(location: str) -> str:
    """Local paths become ``file://`` URIs (Airflow assets need a scheme); others are kept."""
    return location if "://" in location else f"file://{location}"


def model_dir_asset(model_dir: str) -> Any:
    from airflow.sdk import Asset

    return Asset(uri=_uri(model_dir.rstrip("/")), name=f"exportflow-checkpoints:{model_dir.rstrip('/')}")


def published_asset(destination: str, model: str) -> Any:
    from airflow.sdk import Asset

    location = f"{destination.rstrip('/')}/{model}"
    return Asset(uri=_uri(location), name=f"exportflow-published:{location}")


def published_alias(model: str) -> Any:
    """The alias the report task emits through: one event per version published in the run."""
    from airflow.sdk import AssetAlias

    return AssetAlias(name=f"exportflow-published-{model}")
