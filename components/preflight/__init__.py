"""Checks a config against the world before any work: code it names, places it reads and writes.

Loading a config checks its shape without I/O (the DAG factory loads configs at parse time). These
checks go further and are cheap (seconds, no TF graph is built): every import path resolves and each
function takes what it will be called with; the destination, the staging folder and the lease folder
take a write (a probe object written and deleted); the model_dir can be listed. ``exportflow validate``
prints them, and every run calls ``preflight`` before it pins any checkpoint, so a read-only destination
fails the run in seconds and is blamed on the destination instead of on a later stage.

Every problem is collected (not just the first) with the field, what is wrong and the fix.
"""

from __future__ import annotations

from components.config.schema import PipelineConfig
from components.preflight.code import check_code
from components.preflight.errors import PreflightError, PreflightFailed, Problem
from components.preflight.places import check_locations

__all__ = [
    "PreflightError",
    "PreflightFailed",
    "Problem",
    "check_code",
    "check_locations",
    "find_problems",
    "preflight",
]


def preflight(config: PipelineConfig, *, locations: bool = True) -> None:
    """Raise ``PreflightFailed`` listing every problem; nothing is left behind either way."""
    problems = find_problems(config, locations=locations)
    if problems:
        raise PreflightFailed(config.source, problems)


def find_problems(config: PipelineConfig, *, locations: bool = True) -> list[Problem]:
    """Every problem with the config's code and (with ``locations``) the files and folders it names."""
    problems = check_code(config)
    if locations:
        problems += check_locations(config)
    return problems
