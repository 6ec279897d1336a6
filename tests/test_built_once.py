"""tests/support/built_once.py: a session artifact is built once for all workers, and a failed build is
never taken as done."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import pytest

from tests.support.built_once import BUILT_MARK, built_once


class FakeFactory:
    """The one method of pytest's TempPathFactory that built_once reads."""

    def __init__(self, base: Path) -> None:
        self.base = base

    def getbasetemp(self) -> Path:
        return self.base


def _build_in_worker(base: str, worker: str, building: Any, other_calling: Any) -> None:
    import os

    os.environ["PYTEST_XDIST_WORKER"] = worker
    if worker == "gw1":
        other_calling.set()

    def build(folder: Path) -> None:
        building.set()
        other_calling.wait(60)  # the other worker calls built_once while this build holds the lock
        (folder / "builds").mkdir()
        (folder / "builds" / worker).touch()

    built_once(FakeFactory(Path(base) / f"popen-{worker}"), "artifact", build)  # type: ignore[arg-type]


def test_two_workers_share_one_build(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    building, other_calling = context.Event(), context.Event()
    first = context.Process(target=_build_in_worker, args=(str(tmp_path), "gw0", building, other_calling))
    first.start()
    assert building.wait(60)
    second = context.Process(target=_build_in_worker, args=(str(tmp_path), "gw1", building, other_calling))
    second.start()
    for process in (first, second):
        process.join(60)
        assert process.exitcode == 0
    assert [p.name for p in (tmp_path / "artifact" / "builds").iterdir()] == ["gw0"]  # built by one, once
    assert (tmp_path / "artifact" / BUILT_MARK).exists()


def test_a_build_that_raised_is_started_again_from_an_empty_folder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    factory = FakeFactory(tmp_path)

    def broken(folder: Path) -> None:
        (folder / "half-written").touch()
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        built_once(factory, "artifact", broken)  # type: ignore[arg-type]
    calls = []
    folder = built_once(factory, "artifact", lambda folder: calls.append(sorted(p.name for p in folder.iterdir())))
    assert calls == [[]]  # the half-written file was cleared before the second build
    assert folder == tmp_path / "artifact" and (folder / BUILT_MARK).exists()
    built_once(factory, "artifact", lambda folder: calls.append("again"))
    assert calls == [[]]  # done: not built a third time
