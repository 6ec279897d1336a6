"""How the suite is split over its two workers (pytest-xdist, ``-n 2`` in pyproject.toml's addopts).

The tests that share an expensive session fixture run on one worker, one after another, so it is built
once: the live deployment's modules (``shared_airflow``), the Keras runtime's (its model is trained once),
the TFX environment's. Every other module is its own group (its module fixtures stay in one process). The
longest groups are handed out first, so neither worker is left with a long tail. Groups are told from node
ids alone: the scheduler sees nothing else. ``tests/conftest.py`` applies this.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import PurePosixPath
from typing import TypeVar

T = TypeVar("T")

SHARED_AIRFLOW_MODULES = frozenset({"test_airflow_live", "test_sensor", "test_serving_approval_live", "test_ui_plugin"})
LONGEST_GROUPS_FIRST = ("keras", "shared_airflow", "test_demo_e2e", "tfx", "test_celery_executor")
_GROUPS_BY_PREFIX = (("test_keras_", "keras"), ("test_tfx_", "tfx"))


def worker_group(nodeid: str) -> str:
    """The group of the test ``nodeid`` (``tests/test_x.py::test_y[param]``): all of it runs on one worker."""
    module = PurePosixPath(nodeid.split("::", 1)[0]).stem
    if module in SHARED_AIRFLOW_MODULES:
        return "shared_airflow"
    for prefix, group in _GROUPS_BY_PREFIX:
        if module.startswith(prefix):
            return group
    return module


def stray_shared_airflow_modules(modules_using_it: set[str]) -> list[str]:
    """Modules using the ``shared_airflow`` fixture that are not in ``SHARED_AIRFLOW_MODULES``: on another
    worker they would start a second deployment."""
    return sorted(modules_using_it - SHARED_AIRFLOW_MODULES)


def by_group(items: Sequence[T], nodeid: Callable[[T], str], on_deployment: Callable[[T], bool]) -> list[T]:
    """``items`` with each group's tests next to each other (each keeps its order), the longest groups
    first; in a group, the tests on the shared deployment before the others, so it is up once and only
    while they run."""
    first_seen: dict[str, int] = {}
    for index, item in enumerate(items):
        first_seen.setdefault(worker_group(nodeid(item)), index)

    def rank(item: T) -> tuple[int, int, bool]:
        group = worker_group(nodeid(item))
        order = LONGEST_GROUPS_FIRST.index(group) if group in LONGEST_GROUPS_FIRST else len(LONGEST_GROUPS_FIRST)
        return (order, first_seen[group], not on_deployment(item))

    return sorted(items, key=rank)
