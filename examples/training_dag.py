"""An example training DAG: trains the example model further and announces each new checkpoint.

It emits one asset event per checkpoint it wrote on the model directory's asset, with extra
``{"checkpoint": <prefix>, "step": <int>, "final": <bool>}`` — ``final`` marks the checkpoint at the
run's target step. Several events in one run are exactly the coalescing case an asset-scheduled
export DAG must handle: its single run sees all of them.
"""

from __future__ import annotations

import os
from typing import Any


def build_training_dag(model_dir: str, data_dir: str, dag_id: str = "exportflow_example_training") -> Any:
    from airflow.sdk import DAG, Param, task

    from plugins.assets import model_dir_asset

    checkpoints = model_dir_asset(model_dir)
    alias = _alias(model_dir)

    with DAG(
        dag_id=dag_id,
        schedule=None,
        catchup=False,
        max_active_runs=1,
        tags=["exportflow", "example", "training"],
        params={
            "steps": Param(300, type="integer", minimum=1, title="Target global step"),
            "checkpoint_every": Param(100, type="integer", minimum=1, title="Steps between checkpoints"),
        },
        doc_md=__doc__,
    ) as dag:

        @task(outlets=[alias])
        def train_and_announce(**context: Any) -> list[int]:
            from examples.train import checkpoint_steps, train

            params = context["params"]
            before = set(checkpoint_steps(model_dir)) if os.path.isdir(model_dir) else set()
            steps = train(model_dir, data_dir, steps=params["steps"], checkpoint_every=params["checkpoint_every"])
            written = sorted(set(steps) - before)
            events = context["outlet_events"][alias]
            for step in written:
                extra = {
                    "checkpoint": os.path.join(model_dir, f"model.ckpt-{step}"),
                    "step": step,
                    "final": step == params["steps"],
                }
                events.add(checkpoints, extra=extra)
            return written

        train_and_announce()
    return dag


def _alias(model_dir: str) -> Any:
    from airflow.sdk import AssetAlias

    return AssetAlias(name=f"exportflow-training:{model_dir.rstrip('/')}")
