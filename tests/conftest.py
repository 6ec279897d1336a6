"""Shared fixtures: a trained example model (once per session), configs pointing at it, a GCS emulator.

Everything is real: the example Estimator trains for a few seconds, and the GCS fixture is
gcp-storage-emulator's JSON API server on a loopback port.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.built_once import built_once
from tests.support.example_pipeline import TrainedModel, example_config, free_port
from tests.support.keras_env import keras_runtime, keras_trained  # noqa: F401 - Keras runtime fixtures
from tests.support.worker_groups import by_group, stray_shared_airflow_modules, worker_group

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# Test tiers (markers registered in pyproject.toml), applied here so no test file names its own:
# a test is in every tier a fixture it uses or its module puts it in, and in ``unit`` when in none.
# A test parametrized with the value "gcs" takes the emulator through request.getfixturevalue.
TIER_BY_FIXTURE = {
    "trained_model": "tf",  # the example Estimator trained once per session (model_copy uses it too)
    "gcs_server": "emulator",  # gcp-storage-emulator on loopback (gcs, gcs_bucket use it too)
    "shared_airflow": "live",  # the one live deployment the live modules share
    "migrated_airflow_db": "live",  # an Airflow metadata database, migrated once per session
    "keras_runtime": "tf",  # the Keras runtime (TF 2.21) built from uv.lock (keras_trained uses it too)
}
TIER_BY_MODULE = {
    # TensorFlow graphs, SavedModels or training without the trained_model fixture
    "test_discovery_integrity": ("tf",),
    "test_example_model": ("tf",),
    "test_export_canned": ("tf",),
    "test_export_contracts": ("tf",),
    "test_export_models": ("tf",),
    "test_tf_logs_import": ("tf",),  # imports TensorFlow in a child process
    "test_warmup": ("tf",),
    # a real Airflow: a migrated metadata database, `airflow dags test`, a scheduler or the api-server
    "test_airflow_dags": ("live",),
    "test_airflow_live": ("live",),
    "test_demo_e2e": ("live", "tf"),  # the demo trains the example model itself
    "test_sensor": ("live",),
    "test_ui_plugin": ("live",),
    "test_serving_promote_dag": ("live",),  # the promote DAG through `dag.test()`
    "test_serving_approval_live": ("live",),  # approve / reject on a live api-server
    # the CeleryExecutor on PostgreSQL and Redis, workers as isolated hosts
    "test_celery_executor": ("scale",),
    # the TFX interop environment (built from interop/tfx/uv.lock) fed a SavedModel exported here
    "test_tfx_interop": ("tf",),
    "test_keras_demo": ("live", "tf"),  # `exportflow demo --framework keras`: trains, then `dags test`
}


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Hands out whole groups (``tests/support/worker_groups.py``) in the order ``by_group`` gave the
    collection; an explicit ``--dist`` other than the default ``load`` keeps xdist's own."""
    from xdist.scheduler import LoadScopeScheduling

    if config.getvalue("dist") != "load":
        return None

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return worker_group(nodeid)

    config.option.loadscopereorder = False  # keep the order set in pytest_collection_modifyitems
    return GroupScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    strays = stray_shared_airflow_modules({item.path.stem for item in items if "shared_airflow" in item.fixturenames})
    if strays:
        raise pytest.UsageError(
            f"{', '.join(strays)} use the shared_airflow fixture: add them to SHARED_AIRFLOW_MODULES in "
            "tests/support/worker_groups.py, so they run on the worker that holds the deployment"
        )
    items[:] = by_group(items, lambda item: item.nodeid, lambda item: "shared_airflow" in item.fixturenames)
    for item in items:
        module = item.path.stem
        tiers = {tier for fixture, tier in TIER_BY_FIXTURE.items() if fixture in item.fixturenames}
        tiers |= set(TIER_BY_MODULE.get(module, ()))
        params = item.callspec.params if hasattr(item, "callspec") else {}
        if "gcs" in params.values():
            tiers.add("emulator")
        for tier in sorted(tiers) or ["unit"]:
            item.add_marker(tier)


SHARED_AIRFLOW = pytest.StashKey[Any]()


@pytest.fixture(scope="session")
def migrated_airflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite Airflow metadata database migrated once per test run (for both workers): every AIRFLOW_HOME
    the tests make gets a copy of the file (milliseconds) instead of its own ``airflow db migrate``."""
    from tests.support.dag_test_run import airflow_env, migrate

    home = built_once(tmp_path_factory, "airflow-db", lambda home: migrate(airflow_env(home, home)))
    return home / "airflow.db"  # only ever copied, so both workers can read the one file


@pytest.fixture(scope="session")
def shared_airflow(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, migrated_airflow_db: Path
) -> Iterator[Any]:
    """The live Airflow every module needing scheduler, triggerer and api-server shares (a SharedAirflow).

    Started by the first test that uses it, stopped right after the last one (pytest_runtest_teardown), so its
    processes do not compete with the rest of the session for the CPU.
    """
    from tests.support.airflow_live import SharedAirflow

    deployment = SharedAirflow.create(
        tmp_path_factory.mktemp("shared-airflow"), free_port(), database_template=migrated_airflow_db
    )
    request.config.stash[SHARED_AIRFLOW] = deployment
    try:
        deployment.airflow.start()
        yield deployment
    finally:
        deployment.airflow.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    yield
    deployment = item.config.stash.get(SHARED_AIRFLOW, None)
    if deployment is None or "shared_airflow" not in item.fixturenames:
        return
    if nextitem is None or "shared_airflow" not in nextitem.fixturenames:  # the group's tests are together
        deployment.airflow.stop()  # idempotent: the session fixture's own stop finds nothing left to stop


@pytest.fixture(autouse=True)
def _unit_tests_load_no_tensorflow(request: pytest.FixtureRequest) -> Iterator[None]:
    """Keeps ``-m unit`` honest: a unit test that loads TensorFlow fails, naming the tier it belongs to."""
    checked = request.node.get_closest_marker("unit") is not None and "tensorflow" not in sys.modules
    yield
    if checked and "tensorflow" in sys.modules:
        pytest.fail(
            "this test loads TensorFlow but is in the 'unit' tier: add its fixture or module to "
            "TIER_BY_FIXTURE / TIER_BY_MODULE ('tf') in tests/conftest.py"
        )


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory: pytest.TempPathFactory) -> TrainedModel:
    """The example model trained to step 300 with checkpoints at 0, 100, 200, 300. Treat as read-only.

    Trained once per test run; each worker gets its own copy, since tests pin its checkpoints with leases."""
    from examples.train import checkpoint_steps, train

    def train_example(folder: Path) -> None:
        train(str(folder / "model"), str(folder / "data"), steps=300, checkpoint_every=100)

    trained = built_once(tmp_path_factory, "trained", train_example)
    root = tmp_path_factory.mktemp("trained")
    for part in ("model", "data"):
        shutil.copytree(trained / part, root / part)
    return TrainedModel(root / "model", root / "data", tuple(checkpoint_steps(str(root / "model"))))


@pytest.fixture
def model_copy(trained_model: TrainedModel, tmp_path: Path) -> TrainedModel:
    """A private copy of the trained model dir, for tests that damage or add checkpoints."""
    target = tmp_path / "model"
    shutil.copytree(trained_model.model_dir, target)
    return dataclasses.replace(trained_model, model_dir=target)


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., Any]:
    """``example_config`` in this test's tmp_path: ``make_config(model, destination=None, **overrides)``."""

    def make(model: TrainedModel, destination: str | Path | None = None, **overrides: Any):
        return example_config(model, tmp_path, destination, **overrides)

    return make


@dataclasses.dataclass(frozen=True)
class GCSEmulator:
    host: str  # "127.0.0.1:<port>", the STORAGE_EMULATOR_HOST value without scheme
    server: Any

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}"

    def client(self) -> Any:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(
            project="exportflow-test",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.endpoint},
        )


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[GCSEmulator]:
    """gcp-storage-emulator serving the GCS JSON API on a loopback port, in memory."""
    from gcp_storage_emulator.server import create_server

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    try:
        yield GCSEmulator(f"127.0.0.1:{port}", server)
    finally:
        server.stop()


@pytest.fixture
def gcs(
    gcs_server: GCSEmulator, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[GCSEmulator]:
    """The emulator, wiped, with STORAGE_EMULATOR_HOST set and our cached storage clients reset."""
    from components.storage import registry

    if request.node.get_closest_marker("unit") is not None:
        pytest.fail(
            "this test uses the GCS emulator but is in the 'unit' tier: see TIER_BY_FIXTURE in tests/conftest.py"
        )
    gcs_server.server.wipe()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_server.endpoint)
    registry._instances.clear()
    yield gcs_server
    registry._instances.clear()


@pytest.fixture
def gcs_bucket(gcs: GCSEmulator) -> str:
    """A fresh bucket in the emulator; returns its name."""
    gcs.client().create_bucket("exportflow-test-bucket")
    return "exportflow-test-bucket"
