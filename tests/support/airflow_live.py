"""A live Airflow deployment on loopback for tests: the same processes ``airflow standalone`` runs.

Scheduler, dag-processor, triggerer and api-server start as separate processes against a temporary
AIRFLOW_HOME (SQLite + LocalExecutor by default, or any SQLAlchemy URL and executor, e.g. PostgreSQL +
CeleryExecutor), with our dags and plugins folders. The REST API v2 is driven with a JWT from
``/auth/token`` exactly as a user's script would. Waiting is always on an observable condition
(an HTTP answer, a run state) with a deadline, never a fixed sleep.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")
ADMIN_USER = "admin"
ADMIN_PASSWORD = "exportflow-test-password"


def wait_for(condition: Callable[[], T | None], timeout: float, what: str, interval: float = 0.5) -> T:
    """Poll ``condition`` until it returns a truthy value or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)  # polling interval of a condition check, not synchronisation by sleeping


def airflow_home_from(template: Path, home: Path) -> Path:
    """``home`` holding a fresh copy of the migrated SQLite database ``template`` (the session's
    ``migrated_airflow_db``), as ``airflow db migrate`` would leave it; returns ``home``."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, home / "airflow.db")
    return home


@dataclasses.dataclass
class LiveAirflow:
    """Start with ``start()``, stop with ``stop()``; or use ``live_airflow(...)`` as a context manager."""

    home: Path
    port: int
    configs_dir: Path
    sql_alchemy_conn: str | None = None
    # A migrated SQLite metadata database to copy into ``home`` instead of running ``airflow db migrate``.
    database_template: Path | None = None
    executor: str = "LocalExecutor"
    extra_env: dict[str, str] = dataclasses.field(default_factory=dict)
    components: tuple[str, ...] = ("api-server", "scheduler", "dag-processor", "triggerer")
    processes: dict[str, subprocess.Popen] = dataclasses.field(default_factory=dict)
    _token: str | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        from components.airflow_env import embedded_airflow_env

        env = embedded_airflow_env(
            self.home,
            self.configs_dir,
            AIRFLOW__CORE__EXECUTOR=self.executor,
            AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=f"{ADMIN_USER}:admin",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(self.home / "passwords.json"),
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{self.base_url}/execution/",
            AIRFLOW__API__PORT=str(self.port),
            AIRFLOW__API__HOST="127.0.0.1",
            AIRFLOW__API__BASE_URL=self.base_url,
            AIRFLOW__API_AUTH__JWT_SECRET="exportflow-test-jwt-secret-not-for-production-0123456789",
            AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5",
            AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL="5",
            AIRFLOW__TRIGGERER__CAPACITY="50",
        )
        if self.sql_alchemy_conn:
            env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = self.sql_alchemy_conn
        env.update(self.extra_env)
        return env

    def airflow(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "airflow", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
            stdin=subprocess.DEVNULL,
        )

    def start(self) -> LiveAirflow:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "logs").mkdir(exist_ok=True)
        (self.home / "passwords.json").write_text(json.dumps({ADMIN_USER: ADMIN_PASSWORD}))
        if self.database_template is not None and self.sql_alchemy_conn is None:
            airflow_home_from(self.database_template, self.home)
        else:
            self.airflow("db", "migrate")
        for name in self.components:
            self.start_component(name)
        wait_for(self._healthy, 180, "the api-server to answer /api/v2/monitor/health")
        return self

    def start_component(
        self,
        name: str,
        *args: str,
        env: dict[str, str] | None = None,
        log_name: str | None = None,
        launcher: Sequence[str] = (),
    ) -> subprocess.Popen:
        """Start ``airflow <name> <args>``, behind ``launcher`` (a command prefix that execs it) if given."""
        log = open(self.home / "logs" / f"{log_name or name}.out", "ab")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(
            [*launcher, sys.executable, "-m", "airflow", name, *args],
            env={**self.env, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.processes[log_name or name] = process
        return process

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
        self.processes.clear()

    def log_tail(self, name: str, lines: int = 60) -> str:
        path = self.home / "logs" / f"{name}.out"
        return "".join(path.read_text(errors="replace").splitlines(True)[-lines:]) if path.exists() else ""

    # --- REST API v2 -------------------------------------------------------------------------------

    def _healthy(self) -> bool:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"airflow {name} exited with {process.returncode}:\n{self.log_tail(name)}")
        try:
            with urllib.request.urlopen(f"{self.base_url}/api/v2/monitor/health", timeout=5) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def token(self, username: str = ADMIN_USER, password: str = ADMIN_PASSWORD) -> str:
        if self._token is None or username != ADMIN_USER:
            status, body = self.request(
                "POST", "/auth/token", {"username": username, "password": password}, auth=False
            )
            if status != 201:
                raise RuntimeError(f"/auth/token answered {status}: {body}")
            if username != ADMIN_USER:
                return body["access_token"]
            self._token = body["access_token"]
        return self._token

    def request(
        self, method: str, path: str, payload: Any = None, auth: bool = True, token: str | None = None
    ) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {token or self.token()}"
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(f"{self.base_url}{path}", data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                raw = response.read()
                status = response.status
        except urllib.error.HTTPError as error:
            raw, status = error.read(), error.code
        try:
            return status, json.loads(raw) if raw else None
        except json.JSONDecodeError:
            return status, raw.decode(errors="replace")

    def wait_for_dag(self, dag_id: str, timeout: float = 180) -> dict[str, Any]:
        def parsed() -> dict[str, Any] | None:
            status, body = self.request("GET", f"/api/v2/dags/{dag_id}")
            return body if status == 200 else None

        return wait_for(parsed, timeout, f"DAG {dag_id} to be parsed")

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> tuple[int, Any]:
        return self.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf or {}})

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 600) -> dict[str, Any]:
        def finished() -> dict[str, Any] | None:
            status, body = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
            if status == 200 and body["state"] in ("success", "failed"):
                return body
            return None

        return wait_for(finished, timeout, f"run {run_id} of {dag_id} to finish", interval=1.0)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        status, body = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=1000")
        if status != 200:
            raise RuntimeError(f"taskInstances answered {status}: {body}")
        return body["task_instances"]


def live_airflow(**kwargs: Any) -> Iterator[LiveAirflow]:
    """Generator for a pytest fixture: ``yield from live_airflow(home=..., port=..., configs_dir=...)``."""
    deployment = LiveAirflow(**kwargs)
    try:
        yield deployment.start()
    finally:
        deployment.stop()


@dataclasses.dataclass
class SharedAirflow:
    """One live deployment (api-server, scheduler, dag-processor, triggerer) shared by every test module that
    needs the whole of it: booting one costs a database migration and four process start-ups.

    Modules add to it instead of starting their own: configs under distinct model names to ``configs_dir``
    (so DAG ids, ledgers and destinations never collide) and test-only DAG files to ``dags_dir``, which holds
    our DAG files too. The dag-processor picks either up within its refresh interval; ``wait_for_dag`` waits
    for that. ``training_dir`` is ``EXPORTFLOW_EXAMPLE_TRAINING_DIR``: the example training DAG's workspace.
    """

    airflow: LiveAirflow
    dags_dir: Path
    training_dir: Path

    @property
    def configs_dir(self) -> Path:
        return self.airflow.configs_dir

    @classmethod
    def create(cls, root: Path, port: int, database_template: Path | None = None) -> SharedAirflow:
        dags_dir, configs_dir, training_dir = root / "dags", root / "configs", root / "example-training"
        for folder in (dags_dir, configs_dir, training_dir):
            folder.mkdir(parents=True)
        for dag_file in sorted((ROOT / "dags").glob("*.py")):
            (dags_dir / dag_file.name).symlink_to(dag_file)
        airflow = LiveAirflow(
            home=root / "airflow",
            port=port,
            configs_dir=configs_dir,
            database_template=database_template,
            extra_env={
                "AIRFLOW__CORE__DAGS_FOLDER": str(dags_dir),
                "EXPORTFLOW_EXAMPLE_TRAINING_DIR": str(training_dir),
            },
        )
        return cls(airflow, dags_dir, training_dir)
