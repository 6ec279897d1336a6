"""Serving status as text for the command line: labels, loaded versions, pins, rollback targets, history."""

from __future__ import annotations

from collections.abc import Iterable

from components.ledger.label_history import LabelMove
from components.serving.control import ServableStatus


def format_move(move: LabelMove) -> str:
    start = "(new)" if move.from_version is None else str(move.from_version)
    end = "(removed)" if move.to_version is None else str(move.to_version)
    run = f" run {move.run_id}" if move.run_id else ""
    reason = f": {move.reason}" if move.reason else ""
    return f"{move.at}  {move.action:<8}  {move.label} {start} -> {end}  by {move.who}{run}{reason}"


def format_status(statuses: Iterable[ServableStatus], mode: str, config_uri: str, history: int = 10) -> str:
    """``mode`` latest: no model server config is written, so each servable says which version TF
    Serving's default policy serves (the highest published number; after a forced republish, not the
    checkpoint's step)."""
    if mode == "latest":
        lines = ["serving mode: latest (no model server config: TF Serving serves each servable's highest version)"]
    else:
        lines = [f"serving mode: {mode}; model server config: {config_uri}"]
    for status in statuses:
        lines.append(f"{status.servable}:")
        if mode == "latest":
            lines.append(_latest(status.published))
        elif status.entry is None:
            lines.append("  not in the model server config")
        else:
            loaded = ", ".join(map(str, status.entry.versions)) or "none"
            lines.append(f"  loaded versions: {loaded}" if status.entry.policy == "specific" else f"  policy: {status.entry.policy or 'latest'}")
            for label, version in sorted(status.entry.labels.items()):
                back = status.rollback_targets.get(label)
                lines.append(f"  {label:<10} -> {version}" + (f"  (rollback: {back})" if back is not None else ""))
        if status.pins:
            lines.append(f"  pinned: {', '.join(map(str, status.pins))}")
        for move in status.moves[-history:]:
            lines.append(f"  {format_move(move)}")
    return "\n".join(lines)


def _latest(published: tuple[int, ...], shown: int = 10) -> str:
    if not published:
        return "  no published version"
    listed = ", ".join(map(str, published[:shown])) + (", ..." if len(published) > shown else "")
    return f"  serving: {published[0]} (highest published version; published: {listed})"
