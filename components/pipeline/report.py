"""The report stage (what a run published, as announcements for rollout) and human-readable summaries."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Collection, Sequence
from typing import Any

from components.artifacts import PushedModelArtifact
from components.config.schema import PipelineConfig
from components.ledger import LedgerState
from components.pipeline.options import RunOptions
from components.pipeline.stages import ledger_of

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Announcement:
    """One version this run newly published, as the asset event rollout DAGs receive announces it."""

    version: str
    step: int
    strategy: str
    uri: str
    manifest_uri: str
    metrics: dict[str, float]

    def extra(self) -> dict[str, Any]:
        """The asset event's ``extra``."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class RunPublished:
    """What the run's publish stages returned, and the versions among them to announce."""

    pushed: tuple[PushedModelArtifact, ...]
    announcements: tuple[Announcement, ...]


def report_stage(
    config: PipelineConfig, pushed: Sequence[PushedModelArtifact], options: RunOptions
) -> RunPublished:
    """Log every version the run's publish stages returned; announce the ones it newly published.

    Reads the ledger (for each new version's metrics) only when there is something to announce; writes
    nothing and holds no lease. A dry run or a version already published announces nothing."""
    for p in pushed:
        state = "dry run" if options.dry_run else "already published" if p.already_published else "published"
        log.info("%s version %s (step %d) → %s: %s", p.strategy, p.version, p.step, p.uri, state)
    if not pushed:
        log.info("this run published nothing")
    new = [p for p in pushed if not p.already_published and not options.dry_run]
    announcements = []
    if new:
        ledger = ledger_of(config).load()
        for p in new:
            record = ledger.record(p.step)
            metrics = dict(record.evaluation.metrics) if record and record.evaluation else {}
            announcements.append(Announcement(p.version, p.step, p.strategy, p.uri, p.manifest_uri, metrics))
    return RunPublished(tuple(pushed), tuple(announcements))


def retired_publications(config: PipelineConfig, state: LedgerState) -> frozenset[tuple[str, str]]:
    """``(strategy, version)`` of recorded publications that retention has since deleted: their commit
    marker is gone from the destination (the ledger keeps the record; the version is no longer served)."""
    from components.model_storage import destination_storage

    storage = destination_storage(config.destination)
    retired = set()
    for record in state.checkpoints.values():
        for pushed in record.publication_history():
            if pushed.marker_uri and storage.stat(pushed.marker_uri) is None:
                retired.add((pushed.strategy, pushed.version))
    return frozenset(retired)


def publications_table(
    before: LedgerState, after: LedgerState, *, retired: Collection[tuple[str, str]] = ()
) -> str:
    """A table of every published version: ``new`` if this run published it, ``retired`` if retention has
    deleted it since (see :func:`retired_publications`), else ``earlier``."""
    rows = []
    for record in sorted(after.checkpoints.values(), key=lambda r: r.step):
        old = before.record(record.step)
        known = len(old.publication_history()) if old else 0  # the history is append-only: later ones are new
        # every publication (a forced republish adds one under a fresh version; the old one stays listed)
        history = list(enumerate(record.publication_history()))
        for index, pushed in sorted(history, key=lambda item: item[1].strategy):
            strategy = pushed.strategy
            metrics = record.evaluation.metrics if record.evaluation else {}
            shown = ", ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items()))
            exported = record.exports.get(strategy)
            is_new = index >= known
            rows.append(
                [
                    str(record.step),
                    shown or "-",
                    strategy,
                    pushed.version,
                    pushed.uri,
                    str(pushed.files),
                    str(exported.warmup_records if exported else 0),
                    "retired" if (strategy, pushed.version) in retired else ("new" if is_new else "earlier"),
                ]
            )
    header = ["step", "metrics", "strategy", "version", "destination", "files", "warmup", "run"]
    if not rows:
        return "nothing is published yet"
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def new_publications(before: LedgerState, after: LedgerState) -> int:
    count = 0
    for record in after.checkpoints.values():
        old = before.record(record.step)
        known = len(old.publication_history()) if old else 0  # the history is append-only: later ones are new
        count += max(0, len(record.publication_history()) - known)
    return count


def unblessed(after: LedgerState) -> list[str]:
    return [
        f"step {r.step}: {r.evaluation.summary}"
        for r in sorted(after.checkpoints.values(), key=lambda r: r.step)
        if r.evaluation is not None and not r.evaluation.blessed
    ]
