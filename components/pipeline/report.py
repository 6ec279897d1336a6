"""Human-readable summaries of what a run published, from the ledger."""

from __future__ import annotations

from collections.abc import Collection

from components.config.schema import PipelineConfig
from components.ledger import LedgerState


def retired_publications(config: PipelineConfig, state: LedgerState) -> frozenset[tuple[str, str]]:
    """``(strategy, version)`` of recorded publications that retention has since deleted: their commit
    marker is gone from the destination (the ledger keeps the record; the version is no longer served)."""
    from components.model_storage import destination_storage

    storage = destination_storage(config.destination)
    retired = set()
    for record in state.checkpoints.values():
        for strategy, pushed in record.publications.items():
            if pushed.marker_uri and storage.stat(pushed.marker_uri) is None:
                retired.add((strategy, pushed.version))
    return frozenset(retired)


def publications_table(
    before: LedgerState, after: LedgerState, *, retired: Collection[tuple[str, str]] = ()
) -> str:
    """A table of every published version: ``new`` if this run published it, ``retired`` if retention has
    deleted it since (see :func:`retired_publications`), else ``earlier``."""
    rows = []
    for record in sorted(after.checkpoints.values(), key=lambda r: r.step):
        old = before.record(record.step)
        for strategy, pushed in sorted(record.publications.items()):
            metrics = record.evaluation.metrics if record.evaluation else {}
            shown = ", ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items()))
            exported = record.exports.get(strategy)
            is_new = old is None or strategy not in old.publications
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
        count += len(set(record.publications) - set(old.publications if old else {}))
    return count


def unblessed(after: LedgerState) -> list[str]:
    return [
        f"step {r.step}: {r.evaluation.summary}"
        for r in sorted(after.checkpoints.values(), key=lambda r: r.step)
        if r.evaluation is not None and not r.evaluation.blessed
    ]
