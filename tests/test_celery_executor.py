"""The export DAG on Airflow's CeleryExecutor: PostgreSQL metadata DB, Redis broker, two real workers.

Everything is a separate process on loopback, as in the compose stack: api-server, scheduler and
dag-processor from ``LiveAirflow``, plus two ``airflow celery worker`` processes with concurrency 1
and distinct hostnames. The metadata database is fresh for this module (``exportflow_test_<random>``,
dropped afterwards) and the broker uses an empty Redis database number and a queue of its own, so a
concurrent run of these tests cannot steal our tasks.

Each worker reports its own hostname to Airflow through ``[core] hostname_callable`` (below), because
both run on this one machine; on real hosts or containers the default (the FQDN) already differs.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import signal
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.support.airflow_live import LiveAirflow, wait_for

WORKER_HOSTNAME_ENV = "EXPORTFLOW_TEST_WORKER_HOSTNAME"
HEARTBEAT_TIMEOUT_SECONDS = 20
# The maintenance database .ci/run creates; each module run creates (and drops) its own beside it.
POSTGRES_URL = os.environ.get(
    "EXPORTFLOW_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/exportflow_test"
)
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
ROOT = Path(__file__).resolve().parent.parent
MODEL = "celery_fleet"
DAG_ID = f"exportflow__{MODEL}"
TAGS = "abc"  # three all_modes strategies, each publishing to a servable of its own


def worker_hostname() -> str:
    """``[core] hostname_callable`` for the test workers: the hostname each one was started with."""
    return os.environ[WORKER_HOSTNAME_ENV]


# --- services ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for Airflow's metadata; its SQLAlchemy URL."""
    import psycopg2
    from psycopg2 import sql
    from sqlalchemy.engine import make_url

    maintenance = make_url(POSTGRES_URL)
    try:
        admin = psycopg2.connect(
            host=maintenance.host,
            port=maintenance.port,
            user=maintenance.username,
            dbname=maintenance.database,
        )
    except psycopg2.OperationalError as exc:
        raise RuntimeError(
            f"PostgreSQL at {POSTGRES_URL} is not usable ({exc}). Start it and create the database as "
            ".ci/run does: `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` and "
            "`createdb -h 127.0.0.1 -U postgres exportflow_test`"
        ) from exc
    admin.autocommit = True
    name = f"exportflow_test_{secrets.token_hex(4)}"
    with admin.cursor() as cursor:
        cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield maintenance.set(drivername="postgresql+psycopg2", database=name).render_as_string(
            hide_password=False
        )
    finally:
        with admin.cursor() as cursor:
            cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.close()


@pytest.fixture(scope="module")
def redis_broker() -> Iterator[str]:
    """A broker URL on an empty Redis database number, flushed afterwards."""
    import redis

    probe = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    try:
        probe.ping()
    except redis.ConnectionError as exc:
        raise RuntimeError(
            f"Redis at {REDIS_HOST}:{REDIS_PORT} is not reachable ({exc}); start it as .ci/run does"
        ) from exc
    databases = int(probe.config_get("databases")["databases"])
    empty = [
        n for n in range(1, databases) if redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=n).dbsize() == 0
    ]
    if not empty:
        raise RuntimeError(f"no empty Redis database among 1..{databases - 1} on {REDIS_HOST}:{REDIS_PORT}")
    number = secrets.choice(empty)
    try:
        yield f"redis://{REDIS_HOST}:{REDIS_PORT}/{number}"
    finally:
        redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=number).flushdb()


# --- the deployment ------------------------------------------------------------------------------


@dataclass
class CeleryStack:
    airflow: LiveAirflow
    published: Path  # the model's destination folder
    workers: dict[str, str]  # airflow component log name → the hostname its task instances report
    celery_nodes: dict[str, str]  # the same hostname → the worker's Celery node name

    def worker_process(self, hostname: str) -> subprocess.Popen:
        name = next(n for n, h in self.workers.items() if h == hostname)
        return self.airflow.processes[name]

    def failure_context(self) -> str:
        names = ("scheduler", "dag-processor", *self.workers)
        return "\n".join(f"--- {n} ---\n{self.airflow.log_tail(n, 40)}" for n in names)


def _ping_workers(broker_url: str, celery_names: list[str]) -> bool:
    from celery import Celery

    app = Celery(broker=broker_url)
    try:
        replies = app.control.ping(destination=celery_names, timeout=2.0)
    finally:
        app.close()
    return {name for reply in replies for name in reply} == set(celery_names)


@pytest.fixture(scope="module")
def celery_stack(trained_model, postgres_database, redis_broker, tmp_path_factory) -> Iterator[CeleryStack]:
    import yaml

    from tests.conftest import example_config_dict, free_port

    root = tmp_path_factory.mktemp("celery")
    configs = root / "configs"
    configs.mkdir()
    config = example_config_dict(
        trained_model,
        root / "published",
        name=MODEL,
        discovery={"policy": "latest"},  # step 300: one evaluation, one export per strategy
        strategies=[
            {"name": f"all_modes_{tag}", "kind": "all_modes", "servable": f"{MODEL}_{tag}"} for tag in TAGS
        ],
        airflow={"schedule": None, "retries": 1, "retry_delay_seconds": 2, "max_active_tf_tasks": 2},
    )
    (configs / f"{MODEL}.yaml").write_text(yaml.safe_dump(config))

    token = secrets.token_hex(3)
    queue = f"exportflow_test_{token}"
    deployment = LiveAirflow(
        home=root / "airflow",
        port=free_port(),
        configs_dir=configs,
        sql_alchemy_conn=postgres_database,
        executor="CeleryExecutor",
        components=("api-server", "scheduler", "dag-processor"),
        extra_env={
            "AIRFLOW__CELERY__BROKER_URL": redis_broker,
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{postgres_database}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": queue,
            # a worker that vanishes stops heartbeating; notice within seconds instead of 5 minutes
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT_SECONDS),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "3",
            # the scheduler's /health endpoint, which the image's health check asks
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": "127.0.0.1",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(free_port()),
        },
    )
    workers: dict[str, str] = {}
    celery_names: list[str] = []
    try:
        deployment.start()
        for index in (1, 2):
            hostname = f"exportflow-worker-{index}-{token}"
            celery_name = f"w{index}-{token}@exportflow"
            name = f"celery-worker-{index}"
            deployment.start_component(
                "celery",
                "worker",
                "--celery-hostname",
                celery_name,
                "--concurrency",
                "1",
                "--queues",
                queue,
                "--pid",
                str(root / f"{name}.pid"),
                "--skip-serve-logs",
                env={
                    WORKER_HOSTNAME_ENV: hostname,
                    "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.test_celery_executor.worker_hostname",
                },
                log_name=name,
            )
            workers[name] = hostname
            celery_names.append(celery_name)
        wait_for(
            lambda: _ping_workers(redis_broker, celery_names), 120, "both celery workers to answer a ping"
        )
        deployment.wait_for_dag(DAG_ID)
        yield CeleryStack(deployment, root / "published", workers, dict(zip(workers.values(), celery_names)))
    finally:
        deployment.stop()


@dataclass(frozen=True)
class FailoverRun:
    run: dict[str, Any]
    run_id: str
    victim: dict[str, Any]  # the task instance (its first try) that was running on the killed worker
    killed_host: str
    survivor: str
    killed_at: datetime
    task_instances: list[dict[str, Any]]


@pytest.fixture(scope="module")
def failover_run(celery_stack: CeleryStack) -> FailoverRun:
    """One DAG run; once exports have succeeded on both workers, SIGKILL the worker running the third.

    Three strategies, one checkpoint: the first two exports start together, one per worker (concurrency 1
    each); the third starts on whichever finishes first, and that worker is killed mid-export.
    """
    api = celery_stack.airflow
    status, body = api.trigger(DAG_ID)
    assert status == 200, body
    run_id = body["dag_run_id"]
    hosts = set(celery_stack.workers.values())

    def export_running_after_exports_on_both_workers() -> dict[str, Any] | None:
        tis = api.task_instances(DAG_ID, run_id)
        if any(ti["state"] in ("failed", "upstream_failed", "up_for_retry") for ti in tis):
            raise AssertionError(f"a task failed before the kill: {tis}\n{celery_stack.failure_context()}")
        exports = [ti for ti in tis if ti["task_id"] == "export"]
        if {ti["hostname"] for ti in exports if ti["state"] == "success"} != hosts:
            return None
        return next((ti for ti in exports if ti["state"] == "running" and ti["hostname"] in hosts), None)

    victim = wait_for(
        export_running_after_exports_on_both_workers,
        300,
        "exports done on both workers, then the third export running",
    )
    killed_at = datetime.now(UTC)
    _kill_worker_tree(celery_stack.worker_process(victim["hostname"]))
    run = api.wait_for_run(DAG_ID, run_id, timeout=300)
    (survivor,) = hosts - {victim["hostname"]}
    return FailoverRun(
        run, run_id, victim, victim["hostname"], survivor, killed_at, api.task_instances(DAG_ID, run_id)
    )


# --- helpers -------------------------------------------------------------------------------------


def _kill_worker_tree(process: subprocess.Popen) -> None:
    """SIGKILL a worker as a lost node would go: its process group and every descendant's group.

    The task runner puts itself in a process group of its own (so its supervisor can signal it), so
    killing only the worker's group would leave it running as an orphan — not what a dead host does.
    """
    import psutil

    groups = {os.getpgid(process.pid)}
    for child in psutil.Process(process.pid).children(recursive=True):
        try:
            groups.add(os.getpgid(child.pid))
        except ProcessLookupError:
            pass
    for group in groups:
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait(timeout=30)


def _started(ti: dict[str, Any]) -> datetime | None:
    return datetime.fromisoformat(ti["start_date"]) if ti.get("start_date") else None


def assert_published_complete(destination: Path, servables: list[str], versions: list[str]) -> None:
    """Every version folder holds a full SavedModel whose files match its manifest's sizes and CRC32C."""
    from components.storage import crc32c_of_file

    published = sorted(p.name for p in destination.iterdir() if not p.name.startswith("."))
    assert published == sorted(servables)
    for servable in servables:
        found = sorted(
            (p.name for p in (destination / servable).iterdir() if not p.name.startswith(".")), key=int
        )
        assert found == versions, f"{servable}: {found}"
        for version in versions:
            folder = destination / servable / version
            manifest = json.loads((folder / "assets.extra" / "export_manifest.json").read_text())
            assert manifest["step"] == int(version)
            listed = {entry["path"]: entry for entry in manifest["files"]}
            on_disk = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
            assert set(listed) == on_disk - {"assets.extra/export_manifest.json"}, folder
            assert "saved_model.pb" in listed and "variables/variables.index" in listed
            assert any(path.startswith("variables/variables.data-") for path in listed)
            for path, entry in listed.items():
                assert (folder / path).stat().st_size == entry["size"], folder / path
                assert crc32c_of_file(str(folder / path)) == entry["crc32c"], folder / path


# --- tests ---------------------------------------------------------------------------------------


def test_run_succeeds_with_mapped_exports_spread_over_both_workers(
    celery_stack: CeleryStack, failover_run: FailoverRun
) -> None:
    assert failover_run.run["state"] == "success", celery_stack.failure_context()
    tis = failover_run.task_instances
    assert {ti["state"] for ti in tis} == {"success"}
    exports = [ti for ti in tis if ti["task_id"] == "export"]
    assert sorted(ti["map_index"] for ti in exports) == list(range(len(TAGS)))  # one per strategy
    assert {ti["hostname"] for ti in exports} == set(celery_stack.workers.values())
    assert {ti["task_id"] for ti in tis} == {"discover", "evaluate", "export", "warmup", "publish", "report"}


def test_task_of_the_killed_worker_is_retried_on_the_other_worker(
    celery_stack: CeleryStack, failover_run: FailoverRun
) -> None:
    api, victim = celery_stack.airflow, failover_run.victim
    assert celery_stack.worker_process(failover_run.killed_host).poll() == -signal.SIGKILL
    status, body = api.request(
        "GET",
        f"/api/v2/dags/{DAG_ID}/dagRuns/{failover_run.run_id}/taskInstances/{victim['task_id']}/{victim['map_index']}/tries",
    )
    assert status == 200, body
    tries = sorted(body["task_instances"], key=lambda t: t["try_number"])
    assert [(t["try_number"], t["hostname"], t["state"]) for t in tries] == [
        (1, failover_run.killed_host, "failed"),
        (2, failover_run.survivor, "success"),
    ]
    # the scheduler found it by its missing heartbeat, and nothing started after the kill ran on the dead host
    status, body = api.request("GET", f"/api/v2/eventLogs?dag_id={DAG_ID}&event=heartbeat%20timeout")
    assert status == 200, body
    assert [(e["task_id"], e["map_index"]) for e in body["event_logs"]] == [
        (victim["task_id"], victim["map_index"])
    ]
    others = [
        ti
        for ti in failover_run.task_instances
        if (ti["task_id"], ti["map_index"]) != (victim["task_id"], victim["map_index"])
    ]
    assert victim["task_id"] == "export"
    assert all(ti["try_number"] == 1 for ti in others)  # the only retry in the run is the victim's
    later = [
        ti
        for ti in failover_run.task_instances
        if (_started(ti) or failover_run.killed_at) > failover_run.killed_at
    ]
    assert later and {ti["hostname"] for ti in later} == {failover_run.survivor}


def test_published_versions_are_complete_after_the_failover(
    celery_stack: CeleryStack, failover_run: FailoverRun
) -> None:
    assert failover_run.run["state"] == "success", celery_stack.failure_context()
    assert_published_complete(celery_stack.published, [f"{MODEL}_{tag}" for tag in TAGS], ["300"])
    staging = celery_stack.published / ".exportflow"
    leftovers = (
        [p for p in staging.rglob("*") if p.name.startswith(("temp-", "tmp"))] if staging.exists() else []
    )
    assert leftovers == []


def test_image_health_checks_pass_for_live_components_and_fail_for_the_killed_worker(
    celery_stack: CeleryStack, failover_run: FailoverRun
) -> None:
    """docker/healthcheck.py, the image's HEALTHCHECK, asked about the real components of this stack."""
    spec = importlib.util.spec_from_file_location(
        "exportflow_docker_healthcheck", ROOT / "docker" / "healthcheck.py"
    )
    healthcheck = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(healthcheck)

    env = celery_stack.airflow.env
    commands = {
        "api-server": ["api-server"],
        "scheduler": ["scheduler"],
        "dag-processor": ["dag-processor"],
        **{
            host: ["celery", "worker", "--celery-hostname", node]
            for host, node in celery_stack.celery_nodes.items()
        },
    }
    with ThreadPoolExecutor(len(commands)) as pool:
        results = dict(
            zip(commands, pool.map(lambda argv: healthcheck.check(argv, env, timeout=240), commands.values()))
        )
    unhealthy = {name for name, (healthy, _) in results.items() if not healthy}
    assert unhealthy == {failover_run.killed_host}, "\n".join(f"{n}: {r}" for n, r in results.items())
    assert "No nodes replied" in results[failover_run.killed_host][1]
