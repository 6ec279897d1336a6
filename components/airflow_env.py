"""The environment of an embedded Airflow that sees exactly our DAGs, plugins and one configs folder.

Plain strings only (this library never imports Airflow): the demo, the test harnesses and the
benchmarks start ``airflow`` child processes with it.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def embedded_airflow_env(home: str | os.PathLike[str], configs_dir: str | os.PathLike[str], **extra: str) -> dict[str, str]:
    """``os.environ`` plus AIRFLOW_HOME (SQLite inside it), our folders, and ``extra`` on top."""
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{Path(home) / 'airflow.db'}",
            "EXPORTFLOW_CONFIGS_DIR": str(configs_dir),
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])),
        }
    )
    env.update(extra)
    return env
