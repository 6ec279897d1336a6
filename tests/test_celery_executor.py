"""The export DAG on Airflow's CeleryExecutor, with two workers that share no filesystem.

Everything is a separate process on loopback, as in the compose stack: api-server, scheduler and
dag-processor from ``LiveAirflow`` (PostgreSQL metadata database fresh for this module, Redis broker on
an empty database number and a queue of our own), plus two ``airflow celery worker`` processes with
concurrency 1, each started as a host of its own (tests/support/isolated_host.py): its own mount and UTS
namespaces and hostname (what Airflow records for its task instances, through ``hostname_callable``),
every mount read-only except fresh tmpfs over /tmp, /var/tmp, /dev/shm and exportflow's scratch folder.
Code, venv, configs and the example's eval data are the same read-only content on both, like one image
(the configs and eval data are copied into each worker's private /tmp at the path the config names).

So the workers share only what a real fleet shares: the metadata database, the broker, and object
storage, the GCS emulator on loopback, which holds the model_dir (the trained example's checkpoints),
the staging area (``<destination>/.exportflow/<model>/staging``, the default for a ``gs://`` destination)
and the destination. A stage that hands its output to the next through a worker's disk fails here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
import secrets
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.support.airflow_live import LiveAirflow, wait_for
from tests.support.celery_services import (
    empty_redis_database,
    fresh_postgres_database,
    kill_like_a_lost_host,
    workers_answer_ping,
)
from tests.support.isolated_host import (
    SYSTEM_PRIVATE,
    HostSpec,
    check_isolation_available,
    launcher,
    run_on,
    visible_mounts,
    writable_mounts,
)

HEARTBEAT_TIMEOUT_SECONDS = 20
ROOT = Path(__file__).resolve().parent.parent
MODEL = "celery_fleet"
DAG_ID = f"exportflow__{MODEL}"
# Three strategies, each publishing to a servable of its own: variables saved by TensorFlow, and placed
# by reference (on GCS: the checkpoint's objects copied server-side) through two different code paths.
STRATEGIES = (
    {"name": "all_modes", "kind": "all_modes"},
    {"name": "by_reference", "kind": "all_modes", "params": {"by_reference": True}},
    {"name": "latest", "kind": "latest", "params": {"by_reference": True}},
)
SERVABLES = [f"{MODEL}_{s['name']}" for s in STRATEGIES]
# Where exportflow keeps a worker's local files for a gs:// destination (components.paths.state_dir):
# the "scratch folder" each worker gets a tmpfs of its own over (inside its private /tmp).
SCRATCH = str(Path(tempfile.gettempdir()) / "exportflow")
FAILED = ("failed", "upstream_failed", "up_for_retry")


# --- services ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres_database() -> Iterator[str]:
    yield from fresh_postgres_database()


@pytest.fixture(scope="module")
def redis_broker() -> Iterator[str]:
    yield from empty_redis_database()


@pytest.fixture(scope="module")
def fleet_bucket(gcs_server, trained_model) -> Iterator[str]:
    """A bucket of its own on the emulator, holding the trained example's checkpoints under models/."""
    client = gcs_server.client()
    bucket = client.create_bucket(f"exportflow-celery-{secrets.token_hex(4)}")
    for path in sorted(trained_model.model_dir.rglob("*")):
        if path.is_file():
            bucket.blob(f"models/{MODEL}/{path.relative_to(trained_model.model_dir)}").upload_from_filename(
                str(path)
            )
    try:
        yield bucket.name
    finally:
        bucket.delete(force=True)


# --- the deployment ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Worker:
    name: str  # the airflow component's log name
    hostname: str  # its UTS hostname, which its task instances report
    celery_node: str
    airflow_home: str  # private to its host
    process: subprocess.Popen


@dataclasses.dataclass(frozen=True)
class CeleryStack:
    airflow: LiveAirflow
    bucket: str
    workers: tuple[Worker, ...]
    carried: tuple[str, ...]  # the configs and data files each worker holds a private copy of

    @property
    def destination(self) -> str:
        return f"gs://{self.bucket}/published"

    @property
    def staging(self) -> str:
        return f"{self.destination}/.exportflow/{MODEL}/staging/"

    @property
    def hostnames(self) -> set[str]:
        return {w.hostname for w in self.workers}

    def worker(self, hostname: str) -> Worker:
        return next(w for w in self.workers if w.hostname == hostname)

    def failure_context(self) -> str:
        """Component logs, and the task logs each live worker keeps on its private disk."""
        names = ("scheduler", "dag-processor", *(w.name for w in self.workers))
        parts = [f"--- {n} ---\n{self.airflow.log_tail(n, 40)}" for n in names]
        for worker in self.workers:
            if worker.process.poll() is None:  # a live host's files, seen through its mount namespace
                logs = Path(f"/proc/{worker.process.pid}/root{worker.airflow_home}/logs")
                for log in sorted(logs.rglob("*.log")) if logs.exists() else []:
                    text = log.read_text(errors="replace")
                    if '"level":"error"' in text.replace(" ", ""):  # task logs are JSON lines
                        tail = "".join(text.splitlines(True)[-30:])
                        parts.append(f"--- {worker.hostname}: {log.relative_to(logs)} ---\n{tail}")
        return "\n".join(parts)


def _workers_ready(stack: CeleryStack, broker_url: str) -> bool:
    for worker in stack.workers:
        if worker.process.poll() is not None:  # e.g. its host could not be set up
            raise RuntimeError(
                f"{worker.name} exited with {worker.process.returncode}:\n{stack.airflow.log_tail(worker.name)}"
            )
    return workers_answer_ping(broker_url, [w.celery_node for w in stack.workers])


@pytest.fixture(scope="module")
def celery_stack(
    trained_model, fleet_bucket, gcs_server, postgres_database, redis_broker, tmp_path_factory
) -> Iterator[CeleryStack]:
    from tests.support.example_pipeline import example_config_dict, free_port, write_config

    check_isolation_available()
    root = tmp_path_factory.mktemp("celery")
    configs = root / "configs"
    configs.mkdir()
    config = example_config_dict(
        trained_model,
        f"gs://{fleet_bucket}/published",
        name=MODEL,
        model_dir=f"gs://{fleet_bucket}/models/{MODEL}",
        discovery={"policy": "latest"},  # step 300: one evaluation, one export per strategy
        strategies=[{**s, "servable": servable} for s, servable in zip(STRATEGIES, SERVABLES)],
        airflow={"schedule": None, "retries": 1, "retry_delay_seconds": 2, "max_active_tf_tasks": 2},
    )
    config_path = write_config(config, configs / f"{MODEL}.yaml")
    carried = (str(config_path), str(trained_model.eval_data))  # the config's input_fn and warmup read it

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
            "STORAGE_EMULATOR_HOST": gcs_server.endpoint,
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
    workers: list[Worker] = []
    try:
        deployment.start()
        for index in (1, 2):
            name = f"celery-worker-{index}"
            home = root / name / "home"
            host = HostSpec(
                hostname=f"exportflow-worker-{index}-{token}",
                carry=carried,
                private=(*SYSTEM_PRIVATE, SCRATCH),
                make_dirs=(str(deployment.home / "logs"), str(home)),
            )
            celery_node = f"w{index}-{token}@exportflow"
            process = deployment.start_component(
                "celery",
                "worker",
                "--celery-hostname",
                celery_node,
                "--concurrency",
                "1",
                "--queues",
                queue,
                "--pid",
                str(root / name / "worker.pid"),
                "--skip-serve-logs",
                env={"AIRFLOW__CORE__HOSTNAME_CALLABLE": "socket.gethostname", "HOME": str(home)},
                log_name=name,
                launcher=launcher(host.write(root / f"{name}.host.json")),
            )
            workers.append(Worker(name, host.hostname, celery_node, str(deployment.home), process))
        stack = CeleryStack(deployment, fleet_bucket, tuple(workers), carried)
        wait_for(lambda: _workers_ready(stack, redis_broker), 120, "both celery workers to answer a ping")
        deployment.wait_for_dag(DAG_ID)
        yield stack
    finally:
        deployment.stop()


@dataclasses.dataclass(frozen=True)
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
    """One DAG run; SIGKILL the worker that starts a second export (the run's third) as it starts it.

    Three strategies, one checkpoint: the first two exports start together, one per worker (concurrency 1
    each, at most two exports at once); the third is queued when the first of them finishes, and the
    worker that takes it is killed as soon as it runs it, its private disk going with it. What it had
    exported before is then warmed up and published by the other worker, from object storage, and the
    killed export's next try (on the other worker, once the scheduler misses its heartbeat) must succeed.
    """
    api = celery_stack.airflow
    status, body = api.trigger(DAG_ID)
    assert status == 200, body
    run_id = body["dag_run_id"]

    def second_export_running_on_a_worker() -> dict[str, Any] | None:
        tis = api.task_instances(DAG_ID, run_id)
        if any(ti["state"] in FAILED for ti in tis):
            failed = [
                (ti["task_id"], ti["map_index"], ti["state"], ti["hostname"])
                for ti in tis
                if ti["state"] in FAILED
            ]
            raise AssertionError(f"failed before the kill: {failed}\n{celery_stack.failure_context()}")
        exports = [ti for ti in tis if ti["task_id"] == "export"]
        done_on = {ti["hostname"] for ti in exports if ti["state"] == "success"}
        return next((ti for ti in exports if ti["state"] == "running" and ti["hostname"] in done_on), None)

    # Polled often, so the kill lands early in the export: while TensorFlow writes it on the worker's
    # disk, before any of it is staged.
    victim = wait_for(
        second_export_running_on_a_worker, 300, "a worker that finished an export running another", 0.2
    )
    killed_at = datetime.now(UTC)
    kill_like_a_lost_host(celery_stack.worker(victim["hostname"]).process)
    run = api.wait_for_run(DAG_ID, run_id, timeout=300)
    (survivor,) = celery_stack.hostnames - {victim["hostname"]}
    return FailoverRun(
        run, run_id, victim, victim["hostname"], survivor, killed_at, api.task_instances(DAG_ID, run_id)
    )


# --- helpers -------------------------------------------------------------------------------------


def _started(ti: dict[str, Any]) -> datetime | None:
    return datetime.fromisoformat(ti["start_date"]) if ti.get("start_date") else None


def _by_map_index(tis: list[dict[str, Any]], task_id: str) -> dict[int, dict[str, Any]]:
    return {ti["map_index"]: ti for ti in tis if ti["task_id"] == task_id}


def _return_values(api: LiveAirflow, run_id: str) -> dict[tuple[str, int], Any]:
    """Every task's XCom return value in the run, by (task id, map index)."""
    runs = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances"
    status, body = api.request("GET", f"{runs}/~/xcomEntries?xcom_key=return_value&limit=1000")
    assert status == 200, body
    values = {}
    for entry in body["xcom_entries"]:
        status, item = api.request(
            "GET",
            f"{runs}/{entry['task_id']}/xcomEntries/return_value?map_index={entry['map_index']}",
        )
        assert status == 200, item
        values[entry["task_id"], entry["map_index"]] = item["value"]
    return values


def _locations(value: Any) -> Iterator[str]:
    """Every location an artifact names: ``uri`` and ``*_uri`` fields and multi-graph directories."""
    if isinstance(value, list):
        for item in value:
            yield from _locations(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, str) and (key == "uri" or key.endswith("_uri")):
                yield item
            elif key == "graphs" and isinstance(item, dict):
                yield from item.values()
            else:
                yield from _locations(item)


def assert_published_complete(
    client: Any, destination: str, servables: list[str], versions: list[str]
) -> None:
    """Every version holds a full SavedModel whose objects match its manifest's sizes and CRC32C.

    Checked with the GCS client directly, on downloaded bytes, not with exportflow's storage code.
    """
    from components.storage import crc32c_of_bytes

    bucket_name, _, prefix = destination.removeprefix("gs://").partition("/")
    bucket = client.bucket(bucket_name)
    for servable in servables:
        base = f"{prefix}/{servable}/"
        objects = {
            blob.name.removeprefix(base): blob
            for blob in client.list_blobs(bucket_name, prefix=base)
            if not blob.name.removeprefix(base).startswith(".exportflow/")
        }
        found = sorted({name.split("/", 1)[0] for name in objects}, key=int)
        assert found == versions, f"{servable}: {found}"
        for version in versions:
            manifest = json.loads(
                bucket.blob(f"{base}{version}/assets.extra/export_manifest.json").download_as_bytes()
            )
            assert manifest["step"] == int(version)
            listed = {entry["path"]: entry for entry in manifest["files"]}
            stored = {name.removeprefix(f"{version}/") for name in objects if name.startswith(f"{version}/")}
            assert set(listed) == stored - {"assets.extra/export_manifest.json"}, f"{servable}/{version}"
            assert "saved_model.pb" in listed and "variables/variables.index" in listed
            assert any(path.startswith("variables/variables.data-") for path in listed)
            for path, entry in listed.items():
                data = objects[f"{version}/{path}"].download_as_bytes()
                assert len(data) == entry["size"], f"{servable}/{version}/{path}"
                assert crc32c_of_bytes(data) == entry["crc32c"], f"{servable}/{version}/{path}"


# --- tests ---------------------------------------------------------------------------------------


def test_workers_are_hosts_of_their_own_that_share_no_writable_path(celery_stack: CeleryStack) -> None:
    """The isolation the rest relies on: own hostnames, and nothing one worker writes reaches another."""
    here = socket.gethostname()
    private = {*SYSTEM_PRIVATE, SCRATCH}
    devices: dict[str, set[str]] = {}
    for worker in celery_stack.workers:
        pid = worker.process.pid
        assert run_on(pid, "hostname").stdout.strip() == worker.hostname != here
        mounts = writable_mounts(pid)
        assert {m.point for m in mounts} == private, mounts  # everything else is read-only
        assert {m.filesystem for m in mounts} == {"tmpfs"}
        devices[worker.hostname] = {m.device for m in mounts}
        # shared content (code, configs) is there, read-only; the carried files are private copies
        probe = ROOT / f".probe-{worker.hostname}"
        denied = run_on(pid, "touch", str(probe))
        leaked = probe.exists()
        probe.unlink(missing_ok=True)  # the source tree stays clean even when this fails
        assert not leaked and denied.returncode != 0 and "Read-only file system" in denied.stderr, denied
        for path in celery_stack.carried:
            copy = run_on(pid, "sha256sum", path).stdout.split()
            assert copy == [hashlib.sha256(Path(path).read_bytes()).hexdigest(), path]
    first, second = (devices[w.hostname] for w in celery_stack.workers)
    assert not first & second  # tmpfs instances of their own
    assert not (first | second) & {m.device for m in visible_mounts(os.getpid())}  # nor the test's

    for writer in celery_stack.workers:
        probes = [f"{folder}/probe-from-{writer.hostname}" for folder in sorted(private)]
        wrote = run_on(writer.process.pid, "sh", "-c", " && ".join(f"echo x > {p}" for p in probes))
        assert wrote.returncode == 0, wrote.stderr
        assert run_on(writer.process.pid, "cat", *probes).stdout == "x\n" * len(probes)
        assert not any(Path(p).exists() for p in probes)  # not on the test's host
        for other in celery_stack.workers:
            if other is not writer:
                seen = run_on(other.process.pid, "ls", *probes)
                assert seen.returncode != 0 and seen.stdout == "", seen


def test_run_succeeds_with_mapped_exports_spread_over_both_workers(
    celery_stack: CeleryStack, failover_run: FailoverRun
) -> None:
    assert failover_run.run["state"] == "success", celery_stack.failure_context()
    tis = failover_run.task_instances
    assert {ti["state"] for ti in tis} == {"success"}
    exports = [ti for ti in tis if ti["task_id"] == "export"]
    assert sorted(ti["map_index"] for ti in exports) == list(range(len(STRATEGIES)))  # one per strategy
    assert {ti["hostname"] for ti in exports} == celery_stack.hostnames
    assert {ti["task_id"] for ti in tis} == {"discover", "evaluate", "export", "warmup", "publish", "report"}


def test_a_version_exported_on_one_host_is_published_by_the_other_through_object_storage(
    celery_stack: CeleryStack, failover_run: FailoverRun
) -> None:
    """The handover itself: XCom carries staging URIs, and a publish ran where its export did not."""
    tis = failover_run.task_instances
    exports, publishes = _by_map_index(tis, "export"), _by_map_index(tis, "publish")
    assert exports.keys() == publishes.keys() == set(range(len(STRATEGIES)))
    crossed = {i for i in exports if exports[i]["hostname"] != publishes[i]["hostname"]}
    # The killed worker's earlier export was published by the other: the third export was queued when the
    # first export finished, before that version's publish could be (its warmup comes first), and the
    # killed worker held the third export until it died.
    assert crossed, [(i, exports[i]["hostname"], publishes[i]["hostname"]) for i in exports]
    assert failover_run.run["state"] == "success", celery_stack.failure_context()
    values = _return_values(celery_stack.airflow, failover_run.run_id)
    everywhere = [uri for value in values.values() for uri in _locations(value)]
    assert everywhere
    assert [uri for uri in everywhere if not uri.startswith(f"gs://{celery_stack.bucket}/")] == []
    for index in exports:
        exported, warmed, published = (values[task_id, index] for task_id in ("export", "warmup", "publish"))
        assert exported["uri"].startswith(celery_stack.staging), exported
        assert warmed["uri"].startswith(celery_stack.staging), warmed
        assert published["uri"].startswith(f"{celery_stack.destination}/{MODEL}_{exported['strategy']}/300")


def test_task_of_the_killed_worker_is_retried_on_the_other_worker(
    celery_stack: CeleryStack, failover_run: FailoverRun
) -> None:
    api, victim = celery_stack.airflow, failover_run.victim
    assert celery_stack.worker(failover_run.killed_host).process.poll() == -signal.SIGKILL
    status, body = api.request(
        "GET",
        f"/api/v2/dags/{DAG_ID}/dagRuns/{failover_run.run_id}/taskInstances/{victim['task_id']}/{victim['map_index']}/tries",
    )
    assert status == 200, body
    tries = sorted(body["task_instances"], key=lambda t: t["try_number"])
    assert [(t["try_number"], t["hostname"], t["state"]) for t in tries] == [
        (1, failover_run.killed_host, "failed"),
        (2, failover_run.survivor, "success"),
    ], celery_stack.failure_context()
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


def test_published_versions_are_complete_and_staging_is_empty(
    celery_stack: CeleryStack, failover_run: FailoverRun, gcs_server
) -> None:
    assert failover_run.run["state"] == "success", celery_stack.failure_context()
    client = gcs_server.client()
    assert_published_complete(client, celery_stack.destination, SERVABLES, ["300"])
    bucket, _, prefix = celery_stack.staging.removeprefix("gs://").partition("/")
    assert [blob.name for blob in client.list_blobs(bucket, prefix=prefix)] == []


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
            w.hostname: ["celery", "worker", "--celery-hostname", w.celery_node] for w in celery_stack.workers
        },
    }
    with ThreadPoolExecutor(len(commands)) as pool:
        results = dict(
            zip(commands, pool.map(lambda argv: healthcheck.check(argv, env, timeout=240), commands.values()))
        )
    unhealthy = {name for name, (healthy, _) in results.items() if not healthy}
    assert unhealthy == {failover_run.killed_host}, "\n".join(f"{n}: {r}" for n, r in results.items())
    assert "No nodes replied" in results[failover_run.killed_host][1]
