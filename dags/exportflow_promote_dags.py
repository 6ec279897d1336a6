"""Airflow entry point: a promote DAG (``exportflow__<model>__promote``) per model with serving labels.

Parsing reads the YAML configs and nothing else, like the export DAGs beside it.
"""

from __future__ import annotations

from plugins.dag_factory import configs_folder
from plugins.promote_dag import build_promote_dags

globals().update(build_promote_dags(configs_folder()))
