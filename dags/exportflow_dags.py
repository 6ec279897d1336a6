"""Airflow entry point: one export DAG per model config (``exportflow__<model>``).

Parsing reads the YAML configs and nothing else: no TensorFlow, no storage client, no model files.
The factory lives in the installed package so this file works wherever Airflow's dags folder is.
"""

from __future__ import annotations

from plugins.dag_factory import build_dags, configs_folder

globals().update(build_dags(configs_folder()))
