"""What a CeleryExecutor deployment needs around Airflow, on loopback: a metadata database, a broker, workers.

PostgreSQL and Redis are expected to run already (``.ci/run`` starts them and creates the maintenance
database). Each user gets a fresh database / an empty Redis database number, removed afterwards, so two
runs of a test side by side cannot see each other's tasks.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
from collections.abc import Iterator

# The maintenance database .ci/run creates; each deployment creates (and drops) its own beside it.
POSTGRES_URL = os.environ.get(
    "EXPORTFLOW_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/exportflow_test"
)
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


def fresh_postgres_database() -> Iterator[str]:
    """Generator for a fixture: a new, empty PostgreSQL database's SQLAlchemy URL; dropped afterwards."""
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


def empty_redis_database() -> Iterator[str]:
    """Generator for a fixture: a broker URL on an empty Redis database number, flushed afterwards."""
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


def workers_answer_ping(broker_url: str, celery_names: list[str]) -> bool:
    """Do all these Celery nodes answer a broadcast ping through ``broker_url``?"""
    from celery import Celery

    app = Celery(broker=broker_url)
    try:
        replies = app.control.ping(destination=celery_names, timeout=2.0)
    finally:
        app.close()
    return {name for reply in replies for name in reply} == set(celery_names)


def kill_like_a_lost_host(process: subprocess.Popen) -> None:
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
