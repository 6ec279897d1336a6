"""A real TensorFlow import in a task process: its start-up lines are logged at their level, none on stderr.

Its own module so the tiers can put it in ``tf`` (importing TensorFlow takes seconds); the parsing of such
lines is unit-tested in test_tf_logs.py.
"""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.example_pipeline import PROJECT_ROOT

IMPORT_TF = """
import logging, sys
logging.basicConfig(level=logging.DEBUG, stream=sys.stdout, format="%(levelname)s|%(message)s")
logging.getLogger("tensorflow").setLevel(logging.ERROR)
from components.tf_logs import import_tensorflow
import_tensorflow(logging.getLogger("task"))
"""


def test_importing_tensorflow_in_a_task_process_logs_its_start_up_lines_at_their_level() -> None:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0", "PYTHONPATH": str(PROJECT_ROOT)}
    process = subprocess.run(
        [sys.executable, "-c", IMPORT_TF], capture_output=True, text=True, env=env, check=True, cwd=PROJECT_ROOT
    )
    assert process.stderr == ""  # nothing left for Airflow's supervisor to log as ERROR
    task_lines = [line for line in process.stdout.splitlines() if " tensorflow/" in line or "external/" in line]
    assert any("Unable to register cuDNN factory" in line for line in task_lines), process.stdout
    assert all(line.startswith("INFO|") for line in task_lines), task_lines
