"""Session artifacts built once for the whole test run, however many pytest-xdist workers it has.

Each worker is a separate process with its own session fixtures, so a session-scoped fixture that trains a
model or migrates a database would do it once per worker. ``built_once`` does it once in the folder all
workers share (the parent of their basetemps) under an exclusive ``flock``: the first worker builds, the
others wait on the lock (no polling) and find it done. A build that raised leaves no ``.built`` mark, so
the next caller starts again from an empty folder instead of taking half a build.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

BUILT_MARK = ".built"


def shared_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder every worker of this run sees: the parent of the workers' basetemps under xdist, else
    the basetemp itself."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """``root/name`` after ``build(root/name)`` ran exactly once in this test run; returns the folder.

    Treat the folder as read-only: the other worker uses it at the same time. Copy what a test changes.
    """
    root = shared_root(tmp_path_factory)
    folder = root / name
    with open(root / f"{name}.lock", "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also when build raises
        if not (folder / BUILT_MARK).exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            (folder / BUILT_MARK).touch()
    return folder
