"""Ledger updates for each stage's outcome, and the baseline read back for blessing."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from components.artifacts import EvaluationArtifact, ExportArtifact, PushedModelArtifact
from components.config.schema import ThresholdConfig
from components.ledger.ledger import Ledger
from components.ledger.schema import CheckpointRecord, LedgerState


def _record_for(state: LedgerState, step: int, uri: str) -> CheckpointRecord:
    return state.record(step) or CheckpointRecord(step=step, uri=uri)


def record_evaluation(ledger: Ledger, evaluation: EvaluationArtifact) -> LedgerState:
    checkpoint = evaluation.checkpoint

    def change(state: LedgerState) -> LedgerState:
        record = _record_for(state, checkpoint.step, checkpoint.uri)
        return state.with_record(dataclasses.replace(record, evaluation=evaluation))

    return ledger.update(change)


def record_export(ledger: Ledger, export: ExportArtifact) -> LedgerState:
    def change(state: LedgerState) -> LedgerState:
        record = _record_for(state, export.step, export.checkpoint_uri)
        exports = {**record.exports, export.strategy: export}
        return state.with_record(dataclasses.replace(record, exports=exports))

    return ledger.update(change)


def record_publication(ledger: Ledger, pushed: PushedModelArtifact, checkpoint_uri: str) -> LedgerState:
    def change(state: LedgerState) -> LedgerState:
        record = _record_for(state, pushed.step, checkpoint_uri)
        publications = {**record.publications, pushed.strategy: pushed}
        return state.with_record(dataclasses.replace(record, publications=publications))

    return ledger.update(change)


def baseline_metrics(state: LedgerState, thresholds: Sequence[ThresholdConfig]) -> dict[str, float] | None:
    """Metrics of the best published checkpoint, judged by the first change threshold's metric."""
    rule = next((t for t in thresholds if t.change is not None), None)
    published = [
        r for r in state.checkpoints.values() if r.publications and r.evaluation and r.evaluation.metrics
    ]
    if rule is None or not published:
        return None
    candidates = [r for r in published if rule.metric in r.evaluation.metrics]
    if not candidates:
        return None
    sign = 1.0 if rule.change.direction == "higher_is_better" else -1.0
    best = max(candidates, key=lambda r: sign * r.evaluation.metrics[rule.metric])
    return dict(best.evaluation.metrics)
