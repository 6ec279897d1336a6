"""Ledger updates for each stage's outcome, and what blessing and strategies read back from it.

Every ``record_*`` is one atomic ``Ledger.update`` whose change is a pure function of the state, so it
can be re-applied when a concurrent run wrote first.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from components.artifacts import CheckpointArtifact, EvaluationArtifact, ExportArtifact, PushedModelArtifact
from components.config.schema import ThresholdConfig
from components.ledger.ledger import Ledger, utc_now
from components.ledger.schema import BestRecord, CheckpointRecord, LedgerState
from components.ranking import DEFAULT_RANKING, RankingRule, change_rule

# The stage modules' name for ``components.ranking.change_rule`` (record_publication's None is the default rule).
ranking_rule = change_rule


@dataclasses.dataclass(frozen=True)
class Baseline:
    """The best checkpoint already published: what change thresholds compare against."""

    step: int
    metrics: dict[str, float]


def _record_for(state: LedgerState, step: int, uri: str) -> CheckpointRecord:
    """The step's record, or a new one first seen now (a checkpoint enters the ledger with its first
    outcome, so a checkpoint that fails before any outcome leaves the ledger as it was)."""
    return state.record(step) or CheckpointRecord(step=step, uri=uri, first_seen=utc_now())


def _changed(state: LedgerState, old: CheckpointRecord, new: CheckpointRecord) -> LedgerState:
    if new == old and state.record(new.step) is not None:
        return state
    return state.with_record(dataclasses.replace(new, updated_at=utc_now()))


def record_evaluation(ledger: Ledger, evaluation: EvaluationArtifact) -> LedgerState:
    checkpoint = evaluation.checkpoint

    def change(state: LedgerState) -> LedgerState:
        record = _record_for(state, checkpoint.step, checkpoint.uri)
        return _changed(state, record, dataclasses.replace(record, evaluation=evaluation))

    return ledger.update(change)


def record_export(ledger: Ledger, export: ExportArtifact) -> LedgerState:
    def change(state: LedgerState) -> LedgerState:
        record = _record_for(state, export.step, export.checkpoint_uri)
        exports = {**record.exports, export.strategy: export}
        return _changed(state, record, dataclasses.replace(record, exports=exports))

    return ledger.update(change)


def record_declined(ledger: Ledger, checkpoint: CheckpointArtifact, strategy: str, reason: str) -> LedgerState:
    """Note that ``strategy`` chose not to export this blessed checkpoint, so discovery moves on."""

    def change(state: LedgerState) -> LedgerState:
        record = _record_for(state, checkpoint.step, checkpoint.uri)
        return _changed(state, record, dataclasses.replace(record, declined={**record.declined, strategy: reason}))

    return ledger.update(change)


def record_publication(
    ledger: Ledger, pushed: PushedModelArtifact, checkpoint_uri: str, rule: RankingRule | None = None
) -> LedgerState:
    """Record a publication (a new history entry: ``CheckpointRecord.with_publication``) and refresh the
    strategy's best-so-far (by ``rule``, default lower loss:
    ``components.ranking``'s rule without a change threshold)."""

    def change(state: LedgerState) -> LedgerState:
        record = _record_for(state, pushed.step, checkpoint_uri)
        state = _changed(state, record, record.with_publication(pushed))
        best = best_record(state, rule or DEFAULT_RANKING, pushed.strategy)
        if best is not None and best != state.best.get(pushed.strategy):
            state = dataclasses.replace(state, best={**state.best, pushed.strategy: best})
        return state

    return ledger.update(change)


def stamp_publication(
    pushed: PushedModelArtifact, record: CheckpointRecord | None, run_id: str | None
) -> PushedModelArtifact:
    """``pushed`` stamped with when and by which run it was published, before ``record_publication``; a
    rerun that found the version already published (``record``, the checkpoint's ledger record, has
    it) keeps the first stamp."""
    earlier = record.publications.get(pushed.strategy) if record else None
    if pushed.already_published and earlier and earlier.version == pushed.version and earlier.published_at:
        return dataclasses.replace(pushed, published_at=earlier.published_at, run_id=earlier.run_id)
    return dataclasses.replace(pushed, published_at=utc_now(), run_id=run_id)


def best_published(
    state: LedgerState, rule: RankingRule, strategy: str | None = None
) -> CheckpointRecord | None:
    """The best checkpoint published (by ``strategy``, or by any) under ``rule`` (``components.ranking``);
    when none has the rule's metric, the latest published step."""
    published = [
        r
        for r in state.checkpoints.values()
        if (r.publications if strategy is None else strategy in r.publications)
    ]
    if not published:
        return None
    best = rule.best((r, r.step, _metrics(r)) for r in published)
    return best if best is not None else max(published, key=lambda r: r.step)


def best_record(state: LedgerState, rule: RankingRule, strategy: str) -> BestRecord | None:
    record = best_published(state, rule, strategy)
    if record is None:
        return None
    value = rule.value(_metrics(record))
    earlier = state.best.get(strategy)
    candidate = BestRecord(
        step=record.step,
        version=record.publications[strategy].version,
        metric=rule.metric if value is not None else None,
        direction=rule.direction if value is not None else None,
        value=value,
        at=utc_now(),
    )
    if earlier is not None and earlier == candidate:
        return earlier  # unchanged: keep when it became best
    return candidate


def baseline(state: LedgerState, thresholds: Sequence[ThresholdConfig]) -> Baseline | None:
    """The best published checkpoint by the first change threshold (None without one or without any)."""
    rule = change_rule(thresholds)
    if rule is None:
        return None
    record = best_published(state, rule)
    if record is None or rule.value(_metrics(record)) is None:
        return None
    return Baseline(step=record.step, metrics=dict(record.evaluation.metrics))


def _metrics(record: CheckpointRecord) -> dict[str, float] | None:
    return None if record.evaluation is None else record.evaluation.metrics

