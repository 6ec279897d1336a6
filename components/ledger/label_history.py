"""Serving label history and pins: an append-only record of every label move, beside the ledger.

Kept in its own file, ``<destination>/.exportflow/<model>/serving.json``, so the checkpoint ledger's
schema (and every reader of it) is unchanged::

    {
      "schema_version": 1,
      "model": "example",
      "moves": [                                   # append-only, oldest first
        {"servable": "example", "label": "stable", "from_version": 3, "to_version": 5 | null,
         "action": "promote" | "rollback" | "remove", "who": "alice", "at": "<ISO 8601 UTC>",
         "run_id": "<DAG run id>" | null, "reason": "<free text>"}
      ],
      "pins": {"example": [3]}                     # versions kept loaded without a label
    }

Updates are compare-and-swap on the file's generation (local disk: temp + rename under a lock; GCS:
``if_generation_match``) and re-applied when another writer won, so no move is ever lost.
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
from collections.abc import Callable
from typing import Literal

from components.artifacts import from_jsonable, to_jsonable
from components.layout import BOOKKEEPING
from components.ledger.errors import LedgerConflict, LedgerError
from components.ledger.ledger import utc_now
from components.storage import PreconditionFailed, Storage, StorageError

HISTORY_FILE = "serving.json"
HISTORY_SCHEMA = 1
_MAX_ATTEMPTS = 10


@dataclasses.dataclass(frozen=True)
class LabelMove:
    """One completed label move (a removal is a move to no version)."""

    servable: str
    label: str
    from_version: int | None  # None: the label is new
    to_version: int | None  # None: the label was removed (action "remove")
    action: Literal["promote", "rollback", "remove"]
    who: str
    at: str
    run_id: str | None = None
    reason: str = ""


@dataclasses.dataclass(frozen=True)
class ServingHistory:
    model: str
    moves: tuple[LabelMove, ...] = ()
    pins: dict[str, tuple[int, ...]] = dataclasses.field(default_factory=dict)
    schema_version: int = HISTORY_SCHEMA

    def moves_of(self, servable: str, label: str) -> list[LabelMove]:
        return [m for m in self.moves if m.servable == servable and m.label == label]

    def labels_of(self, servable: str) -> list[str]:
        return sorted({m.label for m in self.moves if m.servable == servable})

    def pinned(self, servable: str) -> tuple[int, ...]:
        return self.pins.get(servable, ())

    def label_stack(self, servable: str, label: str) -> list[int]:
        """The label's versions, a promotion pushing and a rollback popping: ``[-1]`` is where it
        points, ``[-2]`` where a rollback takes it. A removal empties it: a label added again starts
        with no rollback target."""
        stack: list[int] = []
        for move in self.moves_of(servable, label):
            if move.to_version is None:
                stack.clear()
            elif move.action == "rollback" and len(stack) >= 2 and stack[-2] == move.to_version:
                stack.pop()
            else:
                stack.append(move.to_version)
        return stack

    def rollback_target(self, servable: str, label: str) -> int | None:
        stack = self.label_stack(servable, label)
        return stack[-2] if len(stack) >= 2 else None

    def with_move(self, move: LabelMove) -> ServingHistory:
        return dataclasses.replace(self, moves=(*self.moves, move))

    def with_pins(self, servable: str, versions: set[int]) -> ServingHistory:
        pins = {k: v for k, v in self.pins.items() if k != servable}
        if versions:
            pins[servable] = tuple(sorted(versions))
        return dataclasses.replace(self, pins=pins)


def history_uri(storage: Storage, destination: str, model: str) -> str:
    return storage.join(destination, BOOKKEEPING, model, HISTORY_FILE)


class LabelHistory:
    """The serving history of one model at one destination."""

    def __init__(self, storage: Storage, destination: str, model: str) -> None:
        self.model = model
        self.uri = history_uri(storage, destination, model)
        self._storage = storage

    def load(self) -> ServingHistory:
        return self._read()[0]

    def update(self, change: Callable[[ServingHistory], ServingHistory]) -> ServingHistory:
        """Apply ``change`` (a pure function of the history) to the newest history and store it."""
        for attempt in range(_MAX_ATTEMPTS):
            state, generation = self._read()
            new = change(state)
            if new == state and generation:
                return state
            data = json.dumps(to_jsonable(new), indent=1, sort_keys=True).encode()
            try:
                self._storage.write_bytes(self.uri, data, if_generation_match=generation)
            except PreconditionFailed:
                time.sleep(random.uniform(0, min(1.0, 0.02 * 2**attempt)))  # back-off, then re-read
                continue
            except StorageError as exc:
                raise LedgerError(f"cannot write the serving history {self.uri}: {exc}") from exc
            return new
        raise LedgerConflict(f"serving history {self.uri} kept changing during {_MAX_ATTEMPTS} attempts")

    def record_move(
        self,
        *,
        servable: str,
        label: str,
        from_version: int | None,
        to_version: int | None,
        action: Literal["promote", "rollback", "remove"],
        who: str,
        run_id: str | None,
        reason: str,
    ) -> LabelMove:
        move = LabelMove(servable, label, from_version, to_version, action, who, utc_now(), run_id, reason)
        self.update(lambda state: state.with_move(move))
        return move

    def _read(self) -> tuple[ServingHistory, int]:
        try:
            found = self._storage.read_versioned(self.uri)
        except StorageError as exc:
            raise LedgerError(f"cannot read the serving history {self.uri}: {exc}") from exc
        if found is None:
            return ServingHistory(self.model), 0
        data, generation = found
        try:
            raw = json.loads(data)
            if raw.get("schema_version") != HISTORY_SCHEMA:
                raise LedgerError(
                    f"serving history {self.uri} has schema version {raw.get('schema_version')!r}; "
                    f"this exportflow reads {HISTORY_SCHEMA}"
                )
            return from_jsonable(ServingHistory, raw), generation
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise LedgerError(f"serving history {self.uri} is not valid: {exc}") from exc
