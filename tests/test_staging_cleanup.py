"""Abandoned staging is removed only when nothing live claims it; never by a pid checked on another host.

Local disk: temp folders carry their host (``.tmp-<label>-<pid>@<host>``). Object stores: a version folder
without ``.staged.json`` is claimed by its lease, judged like the publish version lock (``lock_is_live``).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from components.config import ConfigError, parse_config
from components.staging.area import StagingArea
from components.staging.cache import ScratchCache
from components.staging.cleanup import prune_strategy, reap_abandoned
from components.storage import storage_for
from components.version_folders import prune_export_versions, temp_dir_name
from tests.support.example_pipeline import example_config_dict

OTHER_HOST = "worker-on-another-host"


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_local_temp_folder_of_another_host_is_kept_until_it_expires(tmp_path: Path) -> None:
    live_looking = os.getpid()  # a pid that exists here, but names a process on the other host
    theirs = tmp_path / f".tmp-300-{live_looking}@{OTHER_HOST}"
    theirs_old = tmp_path / f".tmp-200-{live_looking}@{OTHER_HOST}"
    crashed_here = tmp_path / f".tmp-100-{dead_pid()}@{socket.gethostname()}"
    ours = tmp_path / temp_dir_name("400")
    for folder in (theirs, theirs_old, crashed_here, ours):
        folder.mkdir()
    now = time.time()
    os.utime(theirs_old, (now - 7200, now - 7200))
    os.utime(ours, (now - 7200, now - 7200))  # old, but this very process is writing it

    result = prune_export_versions(str(tmp_path), stale_after=3600, now=now)

    assert sorted(result.removed_temp_dirs) == sorted([crashed_here.name, theirs_old.name])
    assert sorted(os.listdir(tmp_path)) == sorted([theirs.name, ours.name])


def lease_body(host: str, pid: int, expires_in: float) -> bytes:
    now = time.time()
    return json.dumps(
        {"owner": f"{host}:{pid}:0123456789ab", "host": host, "pid": pid, "purpose": "stage",
         "renewed_at": now, "expires_at": now + expires_in}
    ).encode()


@pytest.fixture
def area(gcs_bucket: str, tmp_path: Path) -> StagingArea:
    root = f"gs://{gcs_bucket}/staging"
    return StagingArea(root, str(tmp_path / "scratch"), storage_for(root), ScratchCache(str(tmp_path / "cache")))


def half_staged(area: StagingArea, version: str, lease: bytes | None) -> None:
    area.storage.write_bytes(area.storage.join(area.version_uri("s", version), "variables/variables.index"), b"x")
    if lease is not None:
        area.storage.write_bytes(area.lock_uri("s", version), lease)


def test_object_store_staging_is_reaped_only_when_its_lease_is_not_live(area: StagingArea) -> None:
    half_staged(area, "100", lease_body(OTHER_HOST, os.getpid(), 600))  # other host, live-looking pid
    half_staged(area, "200", lease_body(socket.gethostname(), dead_pid(), 600))  # this host, process gone
    half_staged(area, "300", lease_body(OTHER_HOST, os.getpid(), -1))  # other host, expired
    half_staged(area, "400", None)  # no lease: nobody is writing it
    half_staged(area, "500", None)
    area.storage.write_bytes(area.staged_marker("s", "500"), b'{"version": "500", "files": []}')  # complete

    assert sorted(reap_abandoned(area, "s"), key=int) == ["200", "300", "400"]

    left = sorted({info.uri.split("/")[-3] for info in area.storage.list(area.strategy_uri("s")) if "/variables/" in info.uri})
    assert left == ["100", "500"]
    assert area.storage.stat(area.lock_uri("s", "100")) is not None  # the live lease is untouched
    assert area.storage.stat(area.lock_uri("s", "200")) is None


def test_prune_removes_published_and_keeps_the_newest_unpublished(area: StagingArea) -> None:
    for version in ("100", "200", "300", "400"):
        half_staged(area, version, None)
        area.storage.write_bytes(area.staged_marker("s", version), json.dumps({"version": version, "files": []}).encode())

    removed = prune_strategy(area, "s", keep=1, protect={"400", "200"}, published={"100"})

    assert sorted(removed, key=int) == ["100", "300"]
    assert area.read_staged("s", "100") is None and area.read_staged("s", "200") is not None


def test_staging_and_its_old_spelling_together_are_refused(trained_model, tmp_path: Path) -> None:
    data = example_config_dict(trained_model, tmp_path / "published", staging=str(tmp_path / "a"), staging_dir=str(tmp_path / "b"))
    with pytest.raises(ConfigError, match="set staging .* or its old spelling staging_dir"):
        parse_config(data, base_dir=tmp_path)


def test_staging_with_an_unknown_scheme_is_refused_with_the_known_ones(trained_model, tmp_path: Path) -> None:
    data = example_config_dict(trained_model, tmp_path / "published", staging="s3x://bucket/staging")
    with pytest.raises(ConfigError, match=r"staging.*no storage back-end for scheme 's3x'.*'gs'"):
        parse_config(data, base_dir=tmp_path)
