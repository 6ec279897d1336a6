"""Container health check for every exportflow/Airflow component, from one image.

Usage: ``healthcheck.py [COMMAND...]``. With no arguments the command is read from PID 1 (the image's
``dumb-init -- /entrypoint <command>``), so the Dockerfile's single HEALTHCHECK fits the api-server,
scheduler, dag-processor, triggerer and celery workers alike. Exit 0 when healthy, 1 with a reason.
Standard library only: it runs every 30 s in each container and must stay cheap.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence

CELERY_APP = "airflow.providers.celery.executors.celery_executor.app"
JOB_TYPES = {"dag-processor": "DagProcessorJob", "triggerer": "TriggererJob"}
ONE_OFF = {"db", "users", "tasks", "dags", "version", "info", "config", "bash", "python", "celery-flower"}


def component_of(argv: Sequence[str]) -> tuple[str, list[str]]:
    """The Airflow command in a container's argv (after dumb-init, --, /entrypoint, airflow) and its args."""
    args = list(argv)
    while args and (args[0] in ("--", "airflow") or args[0].startswith("/") or args[0].endswith("dumb-init")):
        args.pop(0)
    if not args:
        return "none", []
    if args[0] == "celery" and len(args) > 1:
        return f"celery {args[1]}", args[2:]
    return args[0], args[1:]


def celery_node_name(args: Sequence[str], hostname: str | None = None) -> str:
    """The node name a worker registers: ``--celery-hostname`` (with %h, %n, %d expanded) or celery@host."""
    host = hostname or socket.gethostname()
    name = "celery@%h"
    for flag in ("--celery-hostname", "-H"):
        if flag in args and args.index(flag) + 1 < len(args):
            name = args[args.index(flag) + 1]
    short, _, domain = host.partition(".")
    return name.replace("%h", host).replace("%n", short).replace("%d", domain)


def _http_ok(url: str) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            body = response.read()
            status = response.status
    except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
        return False, f"{url}: {exc}"
    if status != 200:
        return False, f"{url} answered {status}"
    if url.endswith("/monitor/health"):
        unhealthy = [
            k for k, v in json.loads(body).items() if isinstance(v, dict) and v.get("status") == "unhealthy"
        ]
        if unhealthy:
            return False, f"{url}: unhealthy: {', '.join(unhealthy)}"
    return True, f"{url} answered 200"


def _command_ok(command: list[str], env: Mapping[str, str], timeout: float) -> tuple[bool, str]:
    try:
        done = subprocess.run(
            command,
            check=False,
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return False, f"{' '.join(command)} timed out"
    output = (done.stdout + done.stderr).strip().splitlines()
    return (
        done.returncode == 0,
        f"{' '.join(command)} exited {done.returncode}: {output[-1] if output else ''}",
    )


def check(argv: Sequence[str], env: Mapping[str, str] | None = None, timeout: float = 60) -> tuple[bool, str]:
    """Is the component that ``argv`` starts healthy? Returns (healthy, reason).

    ``timeout`` bounds the CLI checks (they import Airflow); Docker's own HEALTHCHECK timeout is shorter.
    """
    env = dict(os.environ if env is None else env)
    component, args = component_of(argv)
    if component == "api-server":
        port = env.get("AIRFLOW__API__PORT", "8080")
        return _http_ok(f"http://127.0.0.1:{port}/api/v2/monitor/health")
    if component == "scheduler":
        port = env.get("AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT", "8974")
        return _http_ok(f"http://127.0.0.1:{port}/health")
    if component in JOB_TYPES:
        airflow = [
            sys.executable,
            "-m",
            "airflow",
            "jobs",
            "check",
            "--job-type",
            JOB_TYPES[component],
            "--local",
        ]
        return _command_ok(airflow, env, timeout)
    if component == "celery worker":
        ping = [sys.executable, "-m", "celery", "--app", CELERY_APP, "inspect", "ping", "--timeout", "5"]
        return _command_ok(
            [*ping, "--destination", celery_node_name(args, env.get("HOSTNAME"))], env, timeout
        )
    if component in ONE_OFF or component == "none":
        return True, f"{component}: nothing long-running to check"
    return False, f"unknown component {component!r}: pass the container's command as arguments"


def _pid1_argv() -> list[str]:
    with open("/proc/1/cmdline", "rb") as cmdline:
        return [part.decode() for part in cmdline.read().split(b"\0") if part]


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    healthy, reason = check(args or _pid1_argv())
    print(("healthy: " if healthy else "unhealthy: ") + reason)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
