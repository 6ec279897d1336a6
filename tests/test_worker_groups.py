"""The split of the suite over two workers: what shares an expensive session fixture stays on one worker,
and the tests on the shared live deployment run one after another (``tests/support/worker_groups.py``)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.worker_groups import (
    LONGEST_GROUPS_FIRST,
    SHARED_AIRFLOW_MODULES,
    by_group,
    stray_shared_airflow_modules,
    worker_group,
)

TESTS = Path(__file__).resolve().parent


def test_modules_sharing_a_session_fixture_form_one_group_and_others_their_own() -> None:
    assert {worker_group(f"tests/{m}.py::test_a") for m in SHARED_AIRFLOW_MODULES} == {"shared_airflow"}
    assert worker_group("tests/test_keras_demo.py::test_a") == worker_group("tests/test_keras_gcs.py::test_b[gcs]") == "keras"
    assert worker_group("tests/test_tfx_interop.py::test_a") == worker_group("tests/test_tfx_boundary.py::b") == "tfx"
    assert worker_group("tests/test_config.py::test_a[x::y]") == "test_config"
    assert worker_group("tests/test_config.py::test_a") != worker_group("tests/test_decoding.py::test_a")


def test_every_module_using_the_shared_deployment_is_in_its_group() -> None:
    """Read from the sources, so a new live module cannot start a second deployment on the other worker."""
    using = {
        path.stem
        for path in TESTS.glob("test_*.py")
        if re.search(r"def \w+\([^)]*\bshared_airflow\b", path.read_text(encoding="utf-8"))
    }
    assert using and stray_shared_airflow_modules(using) == []
    assert stray_shared_airflow_modules(using | {"test_new_live"}) == ["test_new_live"]


def test_groups_are_contiguous_longest_first_and_deployment_tests_lead_their_group() -> None:
    items = [  # (node id, uses the shared deployment)
        ("tests/test_airflow_dags.py::a", False),
        ("tests/test_airflow_live.py::no_deployment", False),
        ("tests/test_airflow_live.py::first", True),
        ("tests/test_config.py::a", False),
        ("tests/test_keras_pipeline.py::a", False),
        ("tests/test_sensor.py::second", True),
        ("tests/test_airflow_dags.py::b", False),
        ("tests/test_keras_demo.py::b", False),
    ]
    ordered = [nodeid for nodeid, _ in by_group(items, lambda i: i[0], lambda i: i[1])]

    assert ordered == [
        "tests/test_keras_pipeline.py::a",  # keras first (LONGEST_GROUPS_FIRST), in collection order
        "tests/test_keras_demo.py::b",
        "tests/test_airflow_live.py::first",  # the deployment's tests together, before its group's others
        "tests/test_sensor.py::second",
        "tests/test_airflow_live.py::no_deployment",
        "tests/test_airflow_dags.py::a",  # then the other groups in the order first seen, each contiguous
        "tests/test_airflow_dags.py::b",
        "tests/test_config.py::a",
    ]
    assert LONGEST_GROUPS_FIRST.index("keras") < LONGEST_GROUPS_FIRST.index("shared_airflow")
