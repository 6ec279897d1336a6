"""The TFX interop environment for tests: built from its lock, and pipelines run in it as child processes.

The TFX DSL (protobuf >= 6) cannot share an interpreter with TF 2.15 (protobuf < 5), so the tests run in
the main environment and drive ``interop/tfx/.venv`` through ``tests/support/tfx_child.py``. Building is
``uv sync --locked --project interop/tfx`` (a no-op when the environment matches the lock), so the session
fixture builds it when missing instead of skipping.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

from tests.support.example_pipeline import PROJECT_ROOT

TFX_PROJECT = PROJECT_ROOT / "interop" / "tfx"
# Compiled at install, as .ci/run syncs the main environment: the TFX tests start fresh interpreters in it.
BUILD_COMMAND = ("sync", "--locked", "--compile-bytecode", "--project", str(TFX_PROJECT))


def build_tfx_env() -> Path:
    """Sync the TFX environment with its lock; returns its interpreter."""
    uv = os.environ.get("UV") or shutil.which("uv")
    if uv is None:
        raise RuntimeError("uv is not on PATH: install it (README: 'Try it') to build the TFX interop environment")
    # `uv run` exports the main environment as VIRTUAL_ENV; the TFX project has its own (.venv beside it).
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")}
    result = subprocess.run([uv, *BUILD_COMMAND], env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"`uv {' '.join(BUILD_COMMAND)}` failed:\n{result.stdout}\n{result.stderr}")
    return TFX_PROJECT / ".venv" / "bin" / "python"


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    return {**env, "TF_CPP_MIN_LOG_LEVEL": "2", **(extra or {})}


def run_pipeline(python: Path, spec: dict[str, Any], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the example pipeline once under LocalDagRunner (``tfx_child``'s spec); never raises on failure."""
    return subprocess.run(
        [str(python), "-m", "tests.support.tfx_child", json.dumps(spec)],
        cwd=PROJECT_ROOT, env=child_env(env), capture_output=True, text=True, check=False, timeout=300,
    )


def kill_at(python: Path, spec: dict[str, Any], pause_at: int, env: dict[str, str] | None = None) -> dict[str, Any] | None:
    """Run the pipeline until the pusher reports its ``pause_at``-th written object, then SIGKILL it.

    Returns that event (``{"event", "kind", "uri"}``), or None when the publish ended before reaching it
    (the pipeline then ran to its end). The child stops at the event and waits on its stdin; the kill
    comes after the event is read, so the kill point is a protocol step, never a moment in time."""
    child = subprocess.Popen(
        [str(python), "-m", "tests.support.tfx_child", json.dumps({**spec, "pause_at": pause_at})],
        cwd=PROJECT_ROOT, env=child_env(env), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True,
    )
    assert child.stdout is not None
    try:
        for line in child.stdout:
            if line.startswith("{"):
                message = json.loads(line)
                if "paused" in message:
                    child.send_signal(signal.SIGKILL)
                    assert child.wait(timeout=60) == -signal.SIGKILL
                    return message["paused"]
        assert child.wait(timeout=300) == 0, f"the pipeline failed before event {pause_at}"
        return None
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def lineage(python: Path, metadata_db: Path) -> dict[str, Any]:
    """The MLMD store's executions, artifacts and events as JSON (read by ml-metadata in the TFX env)."""
    result = subprocess.run(
        [str(python), "-m", "tests.support.tfx_child", "--lineage", str(metadata_db)],
        cwd=PROJECT_ROOT, env=child_env(), capture_output=True, text=True, check=True, timeout=120,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])
