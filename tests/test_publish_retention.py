"""Retention at the destination: the decision table, then the real thing on local disk and GCS, and the CLI."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from components.layout import BOOKKEEPING
from components.publish.executor import publish
from components.publish.layout import lock_uri
from components.publish.marker import CommitMarker
from components.publish.retention import (
    RetentionPolicy,
    VersionView,
    decide,
    mark_current,
    prune_published_versions,
)
from components.ranking import RankingRule
from components.serving.protection import retire_old_versions
from components.storage import storage_for
from tests.support.example_pipeline import example_config_dict, write_config
from tests.support.publishing import (
    assert_nothing_partial_is_loadable,
    loadable_versions,
    make_config,
    make_export,
    params_for,
    relative_objects,
    version_view,
)

ROOT = Path(__file__).resolve().parent.parent


def actions(decisions) -> dict[str, str]:
    return {d.version: d.action for d in decisions}


def test_keeps_the_newest_the_best_the_pinned_and_the_current() -> None:
    views = {v: version_view(v, auc) for v, auc in [("100", 0.9), ("200", 0.6), ("300", 0.5), ("400", 0.7), ("500", 0.7)]}
    policy = RetentionPolicy(keep=2, pinned=frozenset({"200"}), best=RankingRule("auc", "higher_is_better"))
    decisions = decide(views, policy, current="300")
    assert actions(decisions) == {"500": "keep", "400": "keep", "300": "keep", "200": "keep", "100": "keep"}
    reasons = {d.version: d.reason for d in decisions}
    assert "best by auc" in reasons["100"] and "pinned" in reasons["200"] and "current" in reasons["300"]
    assert "2 newest" in reasons["500"]
    assert actions(decide(views, RetentionPolicy(keep=2), current=None)) == {
        "500": "keep", "400": "keep", "300": "delete", "200": "delete", "100": "delete"
    }


def test_lower_is_better_best_and_versions_in_every_other_state() -> None:
    live = {"owner": "host:1:x", "purpose": "publish"}
    views = {
        "100": version_view("100", auc=0.1),
        "200": version_view("200", auc=0.3),
        "300": version_view("300", auc=0.2),
        "400": VersionView("400", (None,), (), None, live),  # another run is publishing it
        "500": VersionView("500", (None,), (None,), None),  # loadable, no marker
        "600": VersionView("600", (None,), (), None),  # abandoned partial upload
        "700": VersionView("700", (None,), (), CommitMarker.from_dict({"graphs": [{"name": None}]})),  # marked, graph file gone
        "800": VersionView("800", ("entry", "ps_0"), ("ps_0",), CommitMarker.from_dict({"graphs": [{"name": "entry"}, {"name": "ps_0"}]})),
    }
    decisions = actions(decide(views, RetentionPolicy(keep=1, best=RankingRule("auc", "lower_is_better")), None))
    assert decisions == {
        "800": "delete", "700": "delete", "600": "delete", "500": "keep", "400": "skip",
        "300": "keep", "200": "delete", "100": "keep",
    }


@pytest.fixture(params=["local", "gcs"])
def destination(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "local":
        return str(tmp_path / "published")
    return f"gs://{request.getfixturevalue('gcs_bucket')}/models"


def publish_steps(destination: str, tmp_path: Path, steps: list[int]) -> None:
    config = make_config(destination, tmp_path)
    for step in steps:
        publish(params_for(config), make_export(tmp_path / "staging", step=step, seed=step))


def test_retention_deletes_what_policy_allows_and_nothing_else(destination: str, tmp_path: Path) -> None:
    publish_steps(destination, tmp_path, [100, 200, 300, 400, 500, 600])
    storage = storage_for(destination)
    base = storage.join(destination, "example")
    mark_current(storage, destination, "example", "200")
    # 700 is being published by a live process on this host; 800 was abandoned half-way
    storage.write_bytes(storage.join(base, "700", "variables", "variables.index"), b"x", if_generation_match=0)
    lease = {"owner": f"{socket.gethostname()}:{os.getppid()}:t", "host": socket.gethostname(),
             "pid": os.getppid(), "purpose": "publish", "expires_at": time.time() + 600}
    storage.write_bytes(lock_uri(storage, base, "700"), json.dumps(lease).encode(), if_generation_match=0)
    storage.write_bytes(storage.join(base, "800", "assets", "vocab.txt"), b"y", if_generation_match=0)
    policy = RetentionPolicy(keep=2, pinned=frozenset({"100"}), best=RankingRule("auc", "lower_is_better"))

    dry = prune_published_versions(storage, destination, "example", policy, dry_run=True)
    assert set(dry.doomed) == {"300", "400", "800"} and dry.deleted == ()
    assert loadable_versions(storage, base) == ["100", "200", "300", "400", "500", "600"]

    report = prune_published_versions(storage, destination, "example", policy)

    assert sorted(report.deleted) == ["300", "400", "800"]
    assert loadable_versions(storage, base) == ["100", "200", "500", "600"]
    left = relative_objects(storage, base)
    assert not any(p.startswith(("300/", "400/", "800/")) for p in left)
    assert f"{BOOKKEEPING}/300.published.json" not in left and f"{BOOKKEEPING}/100.published.json" in left
    assert "700/variables/variables.index" in left and f"{BOOKKEEPING}/700.lease.json" in left  # untouched
    assert not any(p.endswith(".lease.json") and not p.startswith(f"{BOOKKEEPING}/700") for p in left)
    assert_nothing_partial_is_loadable(storage, base)


def test_a_multi_graph_set_goes_as_a_whole(tmp_path: Path) -> None:
    destination = str(tmp_path / "published")
    config = make_config(destination, tmp_path)
    for step in (100, 200):
        publish(params_for(config), make_export(tmp_path / "staging", step=step, seed=step, graphs=("entry", "ps_0")))
    storage = storage_for(destination)
    report = prune_published_versions(storage, destination, "example", RetentionPolicy(keep=1))
    assert report.deleted == ("100",)
    assert loadable_versions(storage, storage.join(destination, "example")) == ["entry/200", "ps_0/200"]
    assert not Path(destination, "example", "entry", "100").exists() and not Path(destination, "example", "ps_0", "100").exists()


def test_stale_leases_of_killed_runs_are_cleared(tmp_path: Path) -> None:
    destination = str(tmp_path / "published")
    publish_steps(destination, tmp_path, [100])
    storage = storage_for(destination)
    base = storage.join(destination, "example")
    child = subprocess.Popen(["true"])
    child.wait()
    lease = {"owner": f"{socket.gethostname()}:{child.pid}:t", "host": socket.gethostname(), "pid": child.pid,
             "purpose": "publish", "expires_at": time.time() + 600}
    storage.write_bytes(lock_uri(storage, base, "100"), json.dumps(lease).encode(), if_generation_match=0)
    prune_published_versions(storage, destination, "example", RetentionPolicy(keep=5))
    assert storage.stat(lock_uri(storage, base, "100")) is None
    assert loadable_versions(storage, base) == ["100"]


def test_publish_stage_retention_after_publish_is_never_fatal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = make_config(str(tmp_path / "published"), tmp_path, keep=1)
    publish_steps(config.destination.uri, tmp_path, [100, 200])
    report = retire_old_versions(config, "example")
    assert report is not None and report.deleted == ("100",)
    broken = make_config("gs://bucket/models", tmp_path, credentials_path=str(tmp_path / "missing-key.json"))
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    assert retire_old_versions(broken, "example") is None  # logged, not raised


def test_cli_dry_run_lists_what_would_go_and_keeps_it(tmp_path: Path) -> None:
    destination = tmp_path / "published"
    publish_steps(str(destination), tmp_path, [100, 200, 300])
    config = example_config_dict(tmp_path / "model", destination, merge={"destination": {"keep": 1, "pinned": [100]}})
    path = write_config(config, tmp_path / "config.yaml")
    command = [sys.executable, "-W", "ignore", "-m", "components.cli", "retention", "--config", str(path)]
    dry = subprocess.run([*command, "--dry-run"], capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    assert dry.returncode == 0, dry.stderr
    lines = {line.split()[0]: line for line in dry.stdout.splitlines()[1:]}
    assert "would delete" in lines["200"] and "keep" in lines["300"] and "pinned" in lines["100"]
    assert sorted(p.name for p in (destination / "example").iterdir() if p.name.isdigit()) == ["100", "200", "300"]
    real = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    assert real.returncode == 0, real.stderr
    assert "deleted" in real.stdout
    assert sorted(p.name for p in (destination / "example").iterdir() if p.name.isdigit()) == ["100", "300"]
