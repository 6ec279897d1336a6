"""Serving status as text for the command line: labels, loaded versions, pins, rollback targets, history."""

from __future__ import annotations

from collections.abc import Iterable

from components.ledger.label_history import LabelMove
from components.serving.control import ServableStatus


def format_move(move: LabelMove) -> str:
    start = "(new)" if move.from_version is None else str(move.from_version)
    run = f" run {move.run_id}" if move.run_id else ""
    reason = f": {move.reason}" if move.reason else ""
    return f"{move.at}  {move.action:<8}  {move.label} {start} -> {move.to_version}  by {move.who}{run}{reason}"


def format_status(statuses: Iterable[ServableStatus], mode: str, config_uri: str, history: int = 10) -> str:
    lines = [f"serving mode: {mode}; model server config: {config_uri}"]
    for status in statuses:
        lines.append(f"{status.servable}:")
        if status.entry is None:
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
