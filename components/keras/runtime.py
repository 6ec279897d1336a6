"""The Keras runtime's environment: built from the one lock, found by path, checked before TF loads.

One ``uv.lock`` describes both runtimes: the Estimator one (``.venv``, the default groups) and the Keras
one (``.venv-keras``: the ``keras`` dependency group, TF 2.21). ``build_keras_env`` is the single place
the Keras environment's build command lives; the demo, the tests and README's command use it. ``uv sync``
is idempotent: when the environment matches the lock it returns in a fraction of a second.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from components.airflow_env import PROJECT_ROOT
from components.keras.errors import KerasRuntimeError

KERAS_ENV = PROJECT_ROOT / ".venv-keras"
KERAS_GROUP = "keras"
MIN_TENSORFLOW = (2, 16)  # the first TensorFlow whose tf.keras is Keras 3 (and that has no tf.estimator)


def keras_python(env: str | os.PathLike[str] = KERAS_ENV) -> Path:
    """The Keras runtime's interpreter (it may not exist yet: ``build_keras_env`` makes it)."""
    return Path(env) / "bin" / "python"


def sync_command(uv: str = "uv") -> list[str]:
    """``uv sync`` of the Keras group alone (the project itself included, without the dev tools), compiled
    to bytecode: every Keras stage is a fresh interpreter, which then imports TensorFlow from the ``.pyc``
    files (~3 s of CPU) instead of compiling it where ``PYTHONDONTWRITEBYTECODE`` keeps nothing (~10 s)."""
    return [uv, "sync", "--locked", "--compile-bytecode", "--no-default-groups", "--group", KERAS_GROUP]


def build_keras_env(env: str | os.PathLike[str] = KERAS_ENV, *, quiet: bool = True) -> Path:
    """Create or update ``env`` from ``uv.lock``; returns its interpreter. Raises ``KerasRuntimeError``."""
    uv = os.environ.get("UV") or shutil.which("uv")
    if not uv:
        raise KerasRuntimeError(
            'building the Keras runtime needs uv; install it with: python3 -m pip install "uv==0.13.8"'
        )
    child_env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}  # not the caller's venv
    child_env["UV_PROJECT_ENVIRONMENT"] = str(Path(env).resolve())
    result = subprocess.run(
        sync_command(uv),
        cwd=PROJECT_ROOT,
        env=child_env,
        stdin=subprocess.DEVNULL,
        capture_output=quiet,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        tail = "\n".join(((result.stdout or "") + (result.stderr or "")).splitlines()[-20:])
        raise KerasRuntimeError(
            f"building the Keras runtime at {env} failed (exit {result.returncode}):\n{tail}"
        )
    return keras_python(env)


def _version(distribution: str) -> tuple[int, ...] | None:
    try:
        text = metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None
    return tuple(int(part) for part in text.split(".")[:2] if part.isdigit())


def require_keras_runtime(model: str) -> None:
    """Refuse, before TensorFlow is imported, to run a Keras model's stage in an interpreter without
    TF >= 2.16 and keras 3 (the Estimator runtime has TF 2.15 and Keras 2)."""
    tensorflow, keras = _version("tensorflow"), _version("keras")
    if tensorflow is not None and tensorflow >= MIN_TENSORFLOW and keras is not None and keras >= (3,):
        return
    found = f"TensorFlow {'.'.join(map(str, tensorflow or ())) or 'none'}, keras {'.'.join(map(str, keras or ())) or 'none'}"
    raise KerasRuntimeError(
        f"model {model!r} has framework: keras, but this interpreter ({sys.executable}) has {found}; a "
        f"Keras model's stages run in the Keras runtime (TF >= {'.'.join(map(str, MIN_TENSORFLOW))}, keras 3): "
        f"set airflow.runtime: external_python and airflow.python to its interpreter (default {keras_python()}, "
        "built by `uv run --locked exportflow keras-env`)"
    )
