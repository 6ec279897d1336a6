"""Turn model configs into Airflow DAGs: thin wiring only.

Each DAG is discover → evaluate (mapped per checkpoint) → export (mapped per checkpoint × strategy)
→ warmup → publish → report. The tasks are the operators in ``plugins.operators``; they load the
config again at run time, so a task never depends on what the parser saw. Parsing reads the YAML
configs and nothing else: no TensorFlow, no storage client, no model files.

A broken config must not take the other models' DAGs down with it. Airflow records one import error
per DAG *file*, and an exception raised while importing the file would drop every DAG in it; instead,
broken configs become one placeholder DAG whose ``validate()`` raises. DagBag validates each DAG
separately, so the good DAGs are bagged and the import error names every broken file and field.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, conf

from components.config import ConfigError, PipelineConfig, load_configs_dir

log = logging.getLogger(__name__)
DAG_ID_PREFIX = "exportflow__"
BROKEN_CONFIGS_DAG_ID = "exportflow__invalid_configs"
DEFAULT_CONFIGS = Path(__file__).resolve().parent.parent / "dags" / "configs"


class InvalidConfigsError(ValueError):
    """One or more model configs are invalid; the message lists each file, field and problem."""


class _InvalidConfigsDag(DAG):
    """Placeholder that DagBag refuses at validation, turning config errors into an import error."""

    def validate(self) -> None:
        raise InvalidConfigsError(self.description)


def configs_folder() -> str:
    """From ``EXPORTFLOW_CONFIGS_DIR`` or airflow.cfg ``[exportflow] configs_folder``; never a Variable."""
    return os.environ.get("EXPORTFLOW_CONFIGS_DIR") or conf.get(
        "exportflow", "configs_folder", fallback=str(DEFAULT_CONFIGS)
    )


def build_dags(folder: str) -> dict[str, DAG]:
    dags: dict[str, DAG] = {}
    problems: list[str] = []
    for path, loaded in load_configs_dir(folder).items():
        if isinstance(loaded, ConfigError):
            problems.append(str(loaded))
            continue
        try:
            dag = build_dag(loaded)
        except Exception as exc:  # noqa: BLE001 - Airflow refused what the schema let through (a cron...)
            problems.append(f"{path}: {type(exc).__name__}: {exc}")
            continue
        if dag.dag_id in dags:
            problems.append(f"{path}: name: {loaded.name!r} is already used by {dags[dag.dag_id].fileloc}")
            continue
        dags[dag.dag_id] = dag
    if problems:
        for problem in problems:
            log.error("invalid exportflow config: %s", problem)
        summary = f"{len(problems)} exportflow model config(s) are invalid; the other models' DAGs are loaded:\n"
        dags[BROKEN_CONFIGS_DAG_ID] = _InvalidConfigsDag(
            dag_id=BROKEN_CONFIGS_DAG_ID,
            schedule=None,
            description=summary + "\n".join(f"- {p}" for p in problems),
        )
    return dags


def _schedule(config: PipelineConfig) -> Any:
    if config.airflow.schedule == "asset":
        from plugins.assets import model_dir_asset

        return [model_dir_asset(config.model_dir)]
    return config.airflow.schedule


def _doc_md(config: PipelineConfig) -> str:
    strategies = ", ".join(f"`{s.name}` ({s.kind})" for s in config.strategies)
    return (
        f"### exportflow: {config.name}\n\n"
        f"Post-training export of checkpoints in `{config.model_dir}` to `{config.destination.uri}`.\n\n"
        f"Strategies: {strategies}. Trigger with the form to choose a checkpoint, strategies, "
        f"force or dry run.\n\nConfig `{config.source}`:\n\n```yaml\n{config.source_text}\n```\n"
    )


def build_dag(config: PipelineConfig) -> DAG:
    from plugins.assets import published_alias
    from plugins.operators import ReportRunOperator, StageOperator
    from plugins.params import build_params

    strategy_names = [s.name for s in config.strategies]
    airflow = config.airflow
    minutes = airflow.timeouts
    common: dict[str, Any] = {"config_path": config.source}
    tf_task: dict[str, Any] = {"max_active_tis_per_dagrun": airflow.max_active_tf_tasks}
    if airflow.pool:
        tf_task["pool"] = airflow.pool
    with DAG(
        dag_id=f"{DAG_ID_PREFIX}{config.name}",
        schedule=_schedule(config),
        catchup=False,
        max_active_runs=airflow.max_active_runs,
        tags=["exportflow", *airflow.tags],
        params=build_params(strategy_names),
        default_args={
            "owner": airflow.owner,
            "retries": airflow.retries,
            "retry_delay": timedelta(seconds=airflow.retry_delay_seconds),
            "retry_exponential_backoff": 2.0,
            # a model whose runtime only some workers have (Keras): their queue / pod template
            **({"queue": airflow.queue} if airflow.queue else {}),
            **({"executor_config": {"pod_template_file": airflow.pod_template_file}} if airflow.pod_template_file else {}),
        },
        description=f"exportflow: {config.name} ({len(config.strategies)} strategies)",
        doc_md=_doc_md(config),
    ) as dag:
        discover = StageOperator(
            task_id="discover",
            stage="discover",
            execution_timeout=timedelta(minutes=minutes.discover),
            inlets=_schedule(config) if airflow.schedule == "asset" else [],
            **common,
        )
        if airflow.wait_for_checkpoint_minutes is not None:
            from plugins.sensors import WaitForCheckpointSensor

            WaitForCheckpointSensor(
                task_id="wait_for_checkpoint",
                config_path=config.source,
                timeout=timedelta(minutes=airflow.wait_for_checkpoint_minutes),
                poll_interval=float(airflow.wait_poll_seconds),
            ) >> discover
        def mapped(stage: str, timeout_minutes: int, *, tf: bool = True) -> Any:
            """A mapped stage task named by its label; TF stages get the per-run bound and pool."""
            return StageOperator.partial(
                task_id=stage,
                stage=stage,
                execution_timeout=timedelta(minutes=timeout_minutes),
                map_index_template="{{ exportflow_label }}",
                **(tf_task if tf else {}),
                **common,
            )

        evaluate = mapped("evaluate", minutes.evaluate).expand(checkpoint=discover.output)
        export = mapped("export", minutes.export).expand(evaluation=evaluate.output, strategy=strategy_names)
        warmup = mapped("warmup", minutes.warmup).expand(export=export.output)
        publish = mapped("publish", minutes.publish, tf=False).expand(export=warmup.output)
        ReportRunOperator(
            task_id="report",
            pushed=publish.output,
            outlets=[published_alias(config.name)],
            execution_timeout=timedelta(minutes=minutes.report),
            **common,
        )
    return dag
