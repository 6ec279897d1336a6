"""The ledger: its documented schema (version 1 still read), atomic updates under concurrent runs on
local disk (real processes) and on GCS (generation preconditions, retried), best-so-far and baseline."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from components.artifacts import CheckpointArtifact, EvaluationArtifact, PushedModelArtifact
from components.config.schema import ChangeThreshold, ThresholdConfig
from components.ledger import Ledger
from components.ledger.errors import LedgerConflict, LedgerError
from components.ledger.records import (
    baseline,
    record_evaluation,
    record_publication,
    stamp_publication,
)
from components.ledger.schema import SCHEMA_VERSION, LedgerState
from components.ranking import RankingRule
from components.storage import PreconditionFailed, storage_for

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def evaluation(step: int, blessed: bool = True, **metrics: float) -> EvaluationArtifact:
    checkpoint = CheckpointArtifact(uri=f"/models/example/model.ckpt-{step}", model_name="example", step=step)
    return EvaluationArtifact(uri=checkpoint.uri, checkpoint=checkpoint, metrics=metrics, blessed=blessed)


def pushed(step: int, strategy: str = "all_modes") -> PushedModelArtifact:
    return PushedModelArtifact(
        uri=f"/published/example/{step}",
        model_name="example",
        strategy=strategy,
        destination="/published",
        version=str(step),
        step=step,
        manifest_uri=f"/published/example/{step}/assets.extra/export_manifest.json",
    )


V1_LEDGER = {
    "schema_version": 1,
    "model": "example",
    "checkpoints": {
        "100": {
            "step": 100,
            "uri": "/models/example/model.ckpt-100",
            "evaluation": {
                "uri": "/models/example/model.ckpt-100",
                "checkpoint": {
                    "uri": "/models/example/model.ckpt-100",
                    "model_name": "example",
                    "step": 100,
                    "files": [],
                    "pinned_uri": None,
                },
                "metrics": {"auc": 0.7},
                "blessed": False,
                "reasons": [{"metric": "auc", "passed": False, "reason": "auc=0.7 < lower bound 0.8"}],
                "source": "evaluate",
            },
            "exports": {},
            "publications": {},
        }
    },
}


def test_version_1_is_read_and_upgraded_on_the_next_write(tmp_path: Path) -> None:
    ledger = Ledger(str(tmp_path), "example")
    Path(ledger.uri).parent.mkdir(parents=True)
    Path(ledger.uri).write_text(json.dumps(V1_LEDGER))
    state = ledger.load()
    assert state.schema_version == 1 and state.best == {}
    record = state.record(100)
    assert record.first_seen is None and record.evaluation.config_digest is None
    assert record.evaluation.reasons[0].kind == "" and state.handled_steps("any-digest") == {100}

    record_evaluation(ledger, evaluation(200, auc=0.9))
    raw = json.loads(Path(ledger.uri).read_text())
    assert raw["schema_version"] == SCHEMA_VERSION == 3 and raw["updated_at"]
    assert raw["checkpoints"]["100"]["evaluation"]["metrics"] == {"auc": 0.7}  # kept as it was
    assert raw["checkpoints"]["200"]["first_seen"] and raw["checkpoints"]["200"]["updated_at"]
    assert set(raw) == {"schema_version", "model", "checkpoints", "best", "updated_at"}


def test_a_newer_schema_is_refused_not_misread(tmp_path: Path) -> None:
    ledger = Ledger(str(tmp_path), "example")
    Path(ledger.uri).parent.mkdir(parents=True)
    Path(ledger.uri).write_text(json.dumps({**V1_LEDGER, "schema_version": 4}))
    with pytest.raises(LedgerError, match="schema version 4; this exportflow reads versions 1, 2, 3"):
        ledger.load()


def test_an_unchanged_state_writes_nothing(tmp_path: Path) -> None:
    ledger = Ledger(str(tmp_path), "example")
    record_evaluation(ledger, evaluation(100, auc=0.9))
    before = os.stat(ledger.uri)
    record_evaluation(ledger, evaluation(100, auc=0.9))  # a retried task records the same outcome
    after = os.stat(ledger.uri)
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)


WRITER = textwrap.dedent(
    """
    import sys
    from components.artifacts import CheckpointArtifact, EvaluationArtifact
    from components.ledger import Ledger
    from components.ledger.records import record_evaluation

    destination, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    ledger = Ledger(destination, "example")
    sys.stdin.read(1)  # blocks until the test releases both writers at once
    for step in range(first, first + count):
        checkpoint = CheckpointArtifact(uri=f"/m/model.ckpt-{step}", model_name="example", step=step)
        record_evaluation(ledger, EvaluationArtifact(uri=checkpoint.uri, checkpoint=checkpoint, metrics={"auc": 0.5}, blessed=True))
    """
)


def test_two_concurrent_runs_lose_no_update_on_local_disk(tmp_path: Path) -> None:
    """Two processes update the same ledger.json at once: lock + temp file + rename keeps every record."""
    destination = str(tmp_path / "published")
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, destination, str(first), "40"], env=env, stdin=subprocess.PIPE)
        for first in (1000, 2000)
    ]
    for writer in writers:  # the start signal: one byte each, sent back to back
        writer.stdin.write(b"g")  # type: ignore[union-attr]
        writer.stdin.close()  # type: ignore[union-attr]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    state = Ledger(destination, "example").load()
    assert sorted(state.checkpoints) == sorted(str(s) for s in [*range(1000, 1040), *range(2000, 2040)])
    leftovers = [
        n for n in os.listdir(os.path.dirname(Ledger(destination, "example").uri)) if n.startswith(".tmp-")
    ]
    assert leftovers == []


def test_threads_of_one_process_take_turns_too(tmp_path: Path) -> None:
    ledger = Ledger(str(tmp_path), "example")

    def write(first: int) -> None:
        for step in range(first, first + 15):
            record_evaluation(ledger, evaluation(step, auc=0.5))

    threads = [threading.Thread(target=write, args=(first,)) for first in (0, 100, 200, 300)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ledger.load().checkpoints) == 60


class InterleavingGCS:
    """The real GCS back-end (emulator) behind our Storage seam, plus a concurrent writer.

    The GCS emulator does NOT enforce generation preconditions (a stale ``if_generation_match`` write
    succeeds there), so it cannot prove that real GCS rejects the loser. What this proves is our side:
    every ledger write carries the generation it read, and a 412 (raised here as real GCS would) makes
    the update re-read and re-apply instead of overwriting the other run's record.
    """

    def __init__(self, other_run) -> None:
        self.real = storage_for("gs://bucket/x")
        self.other_run = other_run
        self.writes: list[int | None] = []
        self.conflicts = 0

    def __getattr__(self, name):
        return getattr(self.real, name)

    def write_bytes(self, uri, data, *, if_generation_match=None):
        self.writes.append(if_generation_match)
        if self.other_run is not None:
            run, self.other_run = self.other_run, None
            run()  # another run writes between our read and our write
        current = self.real.read_versioned(uri)
        if if_generation_match is not None and (current[1] if current else 0) != if_generation_match:
            self.conflicts += 1
            raise PreconditionFailed(f"{uri}: precondition failed (another writer got there first)")
        return self.real.write_bytes(uri, data, if_generation_match=if_generation_match)


def test_gcs_updates_carry_the_generation_read_and_retry_on_conflict(gcs_bucket: str) -> None:
    destination = f"gs://{gcs_bucket}/published"
    record_evaluation(Ledger(destination, "example"), evaluation(100, auc=0.7))
    other = Ledger(destination, "example")
    seam = InterleavingGCS(lambda: record_evaluation(other, evaluation(200, auc=0.8)))
    ours = Ledger(destination, "example", storage=seam)
    generation_before = storage_for(destination).read_versioned(ours.uri)[1]

    record_evaluation(ours, evaluation(300, auc=0.9))
    assert seam.conflicts == 1
    assert seam.writes[0] == generation_before and seam.writes[1] != generation_before  # re-read, re-applied
    assert sorted(Ledger(destination, "example").load().checkpoints) == ["100", "200", "300"]


def test_gcs_conflicts_that_never_end_are_a_retryable_error(gcs_bucket: str) -> None:
    class AlwaysLosing(InterleavingGCS):
        def write_bytes(self, uri, data, *, if_generation_match=None):
            raise PreconditionFailed(uri)

    ledger = Ledger(f"gs://{gcs_bucket}/published", "example", storage=AlwaysLosing(None))
    with pytest.raises(LedgerConflict, match="kept changing") as err:
        record_evaluation(ledger, evaluation(1, auc=0.5))
    assert err.value.retryable


def test_best_so_far_per_strategy_and_the_baseline(tmp_path: Path) -> None:
    ledger = Ledger(str(tmp_path), "example")
    auc = RankingRule("auc", "higher_is_better")
    for step, value in [(100, 0.80), (200, 0.85), (300, 0.83)]:
        record_evaluation(ledger, evaluation(step, auc=value, loss=1 - value))
    record_publication(ledger, pushed(100), "/m/100", auc)
    record_publication(ledger, pushed(200), "/m/200", auc)
    state = record_publication(ledger, pushed(300), "/m/300", auc)  # published later, but worse
    best = state.best["all_modes"]
    assert (best.step, best.version, best.metric, best.direction, best.value) == (
        200,
        "200",
        "auc",
        "higher_is_better",
        0.85,
    )
    became_best_at = best.at

    state = record_publication(
        ledger, pushed(100, "serving"), "/m/100"
    )  # no rule: lower loss (BestExporter's)
    assert (state.best["serving"].step, state.best["serving"].metric) == (100, "loss")
    state = record_publication(ledger, pushed(300, "all_modes"), "/m/300", auc)  # re-recorded: best unchanged
    assert state.best["all_modes"].at == became_best_at

    thresholds = [ThresholdConfig("auc", change=ChangeThreshold("higher_is_better", absolute=-0.01))]
    found = baseline(state, thresholds)
    assert found.step == 200 and found.metrics["auc"] == 0.85
    lower = [ThresholdConfig("auc", change=ChangeThreshold("lower_is_better"))]
    assert baseline(state, lower).step == 100
    assert baseline(state, [ThresholdConfig("auc", lower=0.5)]) is None  # no change threshold: no baseline
    assert baseline(LedgerState(model="example"), thresholds) is None  # nothing published yet


def test_publication_history_is_append_only_and_a_forced_republish_adds_an_entry(tmp_path: Path) -> None:
    ledger = Ledger(str(tmp_path), "example")
    first = dataclasses.replace(pushed(300), published_at="2026-01-01T00:00:00+00:00", run_id="run-1")
    record_publication(ledger, first, "/m/300")
    rerun = dataclasses.replace(pushed(300), already_published=True, run_id="run-2")
    record_publication(ledger, rerun, "/m/300")  # a rerun that found it published adds nothing
    forced = dataclasses.replace(pushed(300), version="401", uri="/published/example/401", run_id="run-3")
    state = record_publication(ledger, forced, "/m/300")

    record = state.record(300)
    assert [(p.version, p.run_id) for p in record.history] == [("300", "run-1"), ("401", "run-3")]
    assert record.publications["all_modes"].version == "401"  # the newest: what ranking and labels use
    assert record.superseded() == {("all_modes", "300"): "401"}
    assert state.best["all_modes"].version == "401"
    raw = json.loads(Path(ledger.uri).read_text())["checkpoints"]["300"]["history"]
    assert [(e["version"], e["published_at"]) for e in raw] == [("300", "2026-01-01T00:00:00+00:00"), ("401", None)]


def test_a_publication_is_stamped_with_its_run_and_a_rerun_that_finds_it_published_keeps_the_first_stamp(
    tmp_path: Path,
) -> None:
    ledger = Ledger(str(tmp_path), "example")
    first = stamp_publication(pushed(300), None, "run-1")
    assert first.run_id == "run-1" and first.published_at is not None
    record_publication(ledger, first, "/m/300")
    record = ledger.load().record(300)

    rerun = stamp_publication(dataclasses.replace(pushed(300), already_published=True), record, "run-2")
    assert (rerun.published_at, rerun.run_id) == (first.published_at, "run-1")
    # a forced republish under another number is a publication of its own
    forced = stamp_publication(dataclasses.replace(pushed(300), version="401"), record, "run-3")
    assert forced.run_id == "run-3"
    # a rerun that moved bytes (not already published) is stamped afresh
    assert stamp_publication(pushed(300), record, "run-4").run_id == "run-4"


def test_a_version_2_record_keeps_its_publication_as_the_first_history_entry(tmp_path: Path) -> None:
    ledger = Ledger(str(tmp_path), "example")
    record_publication(ledger, pushed(300), "/m/300")
    raw = json.loads(Path(ledger.uri).read_text())
    raw["schema_version"] = 2
    del raw["checkpoints"]["300"]["history"]
    Path(ledger.uri).write_text(json.dumps(raw))
    assert [p.version for p in ledger.load().record(300).publication_history()] == ["300"]

    forced = dataclasses.replace(pushed(300), version="301")
    state = record_publication(ledger, forced, "/m/300")
    assert [p.version for p in state.record(300).history] == ["300", "301"]
