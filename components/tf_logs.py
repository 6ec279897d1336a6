"""TensorFlow's native log lines at their own level, and its start-up notices as what they are.

TensorFlow's C++ logging writes to file descriptor 2, and whatever reads a task's stderr (Airflow's
task supervisor, the operator reading an external stage's stderr) cannot tell a level from a line: a
CPU worker's "Unable to register cuDNN factory" or "Could not find cuda drivers" became ERROR lines in
every TF task's log. Here each line gets its level from its prefix (TF's ``<date>: E file:line]``,
absl's ``E0101 12:00:00.000000 …]``, or ``ERROR name:`` from our own logging format), the notices TF
prints on every start on a machine without a GPU are INFO whatever level TF gave them, and a line
without a prefix continues the one before (a traceback stays with its error).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterable, Iterator

_TF_CPP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: ([IWEF]) \S+\]")
_ABSL = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ \S+\]")
_PYTHON = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL) ")
_SEVERITY = {"I": logging.INFO, "W": logging.WARNING, "E": logging.ERROR, "F": logging.CRITICAL}
# What TF 2.x prints on every start without a GPU or TensorRT: notices, not failures.
_START_UP_NOTICES = re.compile(
    r"Unable to register cu(DNN|FFT|BLAS) factory"
    r"|Could not find cuda drivers"
    r"|TF-TRT Warning: Could not find TensorRT"
    r"|This TensorFlow binary is optimized to use available CPU instructions"
    r"|rebuild TensorFlow with the appropriate compiler flags"
    r"|oneDNN custom operations are on"
)


def level_of(line: str, previous: int = logging.INFO) -> int:
    """The logging level ``line`` deserves; ``previous`` is the level of the line before it."""
    if _START_UP_NOTICES.search(line):
        return logging.INFO
    for pattern in (_TF_CPP, _ABSL):
        match = pattern.match(line)
        if match:
            return _SEVERITY[match.group(1)]
    match = _PYTHON.match(line)
    if match:
        return logging.getLevelName(match.group(1))
    if line.startswith("Traceback (most recent call last):"):
        return logging.ERROR
    return previous


def log_lines(lines: Iterable[str], logger: logging.Logger | logging.LoggerAdapter, prefix: str = "") -> None:
    """Log each line at the level ``level_of`` gives it."""
    level = logging.INFO
    for raw in lines:
        line = raw.rstrip("\n")
        if not line:
            continue
        level = level_of(line, level)
        logger.log(level, "%s%s", prefix, line)


@contextlib.contextmanager
def native_stderr_logged(logger: logging.Logger | logging.LoggerAdapter) -> Iterator[None]:
    """For the block, this process's file descriptor 2 goes to a file; its lines are logged afterwards.

    Meant for short blocks that print without failing (``import tensorflow``): the lines are logged
    once fd 2 is back, so a handler writing to stderr cannot feed its own output back in.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            log_lines(capture.read().decode("utf-8", "replace").splitlines(), logger)


def import_tensorflow(logger: logging.Logger | logging.LoggerAdapter) -> None:
    """Import TensorFlow now, its start-up lines logged at their level (not as stderr, i.e. ERROR)."""
    if "tensorflow" in sys.modules:
        return
    with native_stderr_logged(logger):
        import tensorflow  # noqa: F401
