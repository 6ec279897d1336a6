"""Human-readable summaries of what a run published, from the ledger."""

from __future__ import annotations

from components.ledger import LedgerState


def publications_table(before: LedgerState, after: LedgerState) -> str:
    """A table of every published version; versions this run published are marked ``new``."""
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
                    "new" if is_new else "earlier",
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
