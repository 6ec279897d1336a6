"""The example training DAG, present only when ``EXPORTFLOW_EXAMPLE_TRAINING_DIR`` names a workspace.

That folder holds ``model/`` (checkpoints) and ``data/`` (TFRecords); an export DAG whose config sets
``airflow.schedule: asset`` on the same ``model/`` runs after each training run.
"""

from __future__ import annotations

import os

if workspace := os.environ.get("EXPORTFLOW_EXAMPLE_TRAINING_DIR"):
    from examples.training_dag import build_training_dag

    example_training = build_training_dag(
        os.path.join(workspace, "model"), os.path.join(workspace, "data")
    )
