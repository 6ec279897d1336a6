"""Start-up of a stage or task process: importing TensorFlow (and Airflow) from the bytecode compiled at
install (``uv sync --compile-bytecode``: .ci/run, the Keras and TFX environments) against compiling the
sources on import.

Every Airflow task, every external-python stage and many test children are fresh interpreters, and where
``PYTHONDONTWRITEBYTECODE`` is set (CI machines, most container images) nothing compiled on import is
kept, so without the install-time bytecode each of them compiles TensorFlow again. Both sides in one run,
in the same interpreters:

* baseline — ``PYTHONDONTWRITEBYTECODE=1`` with ``-X pycache_prefix`` pointing at an empty folder: Python
  finds no ``.pyc`` and compiles every module it imports, as in an environment synced without the flag;
* ours — the environment as ``uv sync --compile-bytecode`` left it: the ``.pyc`` files beside the sources.

    uv sync --locked --compile-bytecode && uv run python bench/bench_imports.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CASES = {
    "TF 2.15 (Estimator runtime)": (ROOT / ".venv" / "bin" / "python", "import tensorflow"),
    "Airflow task SDK": (ROOT / ".venv" / "bin" / "python", "import airflow.sdk, airflow.models"),
    "TF 2.21 + Keras 3 (Keras runtime)": (ROOT / ".venv-keras" / "bin" / "python", "import tensorflow, keras"),
}


def cpu_seconds(python: Path, statement: str, pycache_prefix: str | None) -> float:
    """CPU seconds (user + system) of a fresh interpreter that runs ``statement``."""
    command = [str(python), *(["-X", f"pycache_prefix={pycache_prefix}"] if pycache_prefix else []), "-c", statement]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    before = os.times()
    subprocess.run(command, env=env, check=True, stdin=subprocess.DEVNULL, capture_output=True)
    after = os.times()
    return (after.children_user - before.children_user) + (after.children_system - before.children_system)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"{'import':<36} {'compiled on import':>19} {'install-time .pyc':>18} {'ratio':>6}")
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as empty:
        for name, (python, statement) in CASES.items():
            if not python.exists():
                sys.exit(f"{python} is missing: run `uv sync --locked` (and `uv run exportflow keras-env`) first")
            baseline, ours = [], []
            for _ in range(args.runs):  # alternate, so a change in machine load touches both sides alike
                baseline.append(cpu_seconds(python, statement, empty))
                ours.append(cpu_seconds(python, statement, None))
            slow, fast = statistics.median(baseline), statistics.median(ours)
            print(f"{name:<36} {slow:>17.2f} s {fast:>16.2f} s {slow / fast:>5.1f}x")
    print(f"(CPU seconds per fresh interpreter, median of {args.runs}; {time.monotonic() - started:.0f} s in all)")


if __name__ == "__main__":
    main()
