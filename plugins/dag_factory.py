"""Turn model configs into Airflow DAGs: thin wiring only.

Each DAG is discover → evaluate (mapped per checkpoint) → export (mapped per checkpoint × strategy)
→ warmup → publish → report. The tasks are the operators in ``plugins.operators``; they load the
config again at run time, so a task never depends on what the parser saw.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from pathlib import Path

from airflow.sdk import DAG, conf

from components.config import ConfigError, PipelineConfig, load_configs_dir

log = logging.getLogger(__name__)
DAG_ID_PREFIX = "exportflow__"
DEFAULT_CONFIGS = Path(__file__).resolve().parent.parent / "dags" / "configs"


def configs_folder() -> str:
    """From ``EXPORTFLOW_CONFIGS_DIR`` or airflow.cfg ``[exportflow] configs_folder``; never a Variable."""
    return os.environ.get("EXPORTFLOW_CONFIGS_DIR") or conf.get(
        "exportflow", "configs_folder", fallback=str(DEFAULT_CONFIGS)
    )


def build_dags(folder: str) -> dict[str, DAG]:
    dags: dict[str, DAG] = {}
    for path, loaded in load_configs_dir(folder).items():
        if isinstance(loaded, ConfigError):
            log.error("skipping %s: %s", path, loaded)
            continue
        dag = build_dag(loaded)
        dags[dag.dag_id] = dag
    return dags


def build_dag(config: PipelineConfig) -> DAG:
    from plugins.operators import (
        DiscoverCheckpointsOperator,
        EvaluateCheckpointOperator,
        ExportStrategyOperator,
        InjectWarmupOperator,
        PublishExportOperator,
        ReportRunOperator,
    )
    from plugins.params import build_params

    strategy_names = [s.name for s in config.strategies]
    airflow = config.airflow
    common = {"config_path": config.source}
    with DAG(
        dag_id=f"{DAG_ID_PREFIX}{config.name}",
        schedule=airflow.schedule,
        start_date=None,
        catchup=False,
        max_active_runs=airflow.max_active_runs,
        tags=["exportflow", *airflow.tags],
        params=build_params(strategy_names),
        default_args={
            "owner": airflow.owner,
            "retries": airflow.retries,
            "retry_delay": timedelta(seconds=30),
            "retry_exponential_backoff": True,
        },
        doc_md=f"Post-training export of **{config.name}** from `{config.model_dir}` "
        f"to `{config.destination.uri}`.\n\nConfig: `{config.source}`",
    ) as dag:
        discover = DiscoverCheckpointsOperator(task_id="discover", **common)
        evaluate = EvaluateCheckpointOperator.partial(task_id="evaluate", **common).expand(
            checkpoint=discover.output
        )
        export = ExportStrategyOperator.partial(task_id="export", **common).expand(
            evaluation=evaluate.output, strategy=strategy_names
        )
        warmup = InjectWarmupOperator.partial(task_id="warmup", **common).expand(export=export.output)
        publish = PublishExportOperator.partial(task_id="publish", **common).expand(export=warmup.output)
        ReportRunOperator(task_id="report", pushed=publish.output, **common)
    return dag
