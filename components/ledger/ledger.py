"""Read and update the ledger atomically: compare-and-swap on the storage generation, retried on conflict.

On local disk the swap is a locked rename; on GCS it is ``if_generation_match`` (which real GCS enforces;
the emulator does not). Either way two concurrent runs cannot silently overwrite each other's records.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from components.artifacts import from_jsonable, to_jsonable
from components.ledger.errors import LedgerConflict, LedgerError
from components.ledger.schema import SCHEMA_VERSION, LedgerState
from components.storage import PreconditionFailed, Storage, StorageError, storage_for

log = logging.getLogger(__name__)
_MAX_ATTEMPTS = 8


def ledger_uri(destination: str, model: str) -> str:
    return storage_for(destination).join(destination, ".exportflow", model, "ledger.json")


class Ledger:
    """The ledger of one model at one destination."""

    def __init__(self, destination: str, model: str, storage: Storage | None = None) -> None:
        self.model = model
        self.uri = ledger_uri(destination, model)
        self._storage = storage or storage_for(destination)

    def load(self) -> LedgerState:
        return self._read()[0]

    def update(self, change: Callable[[LedgerState], LedgerState]) -> LedgerState:
        """Apply ``change`` to the newest state and store it; re-read and re-apply when another run won."""
        for _attempt in range(_MAX_ATTEMPTS):
            state, generation = self._read()
            new_state = change(state)
            if new_state == state:
                return state
            data = json.dumps(to_jsonable(new_state), indent=1, sort_keys=True).encode()
            try:
                self._storage.write_bytes(self.uri, data, if_generation_match=generation)
            except PreconditionFailed:
                log.info("ledger %s changed under us; re-reading", self.uri)
                continue
            except StorageError as exc:
                raise LedgerError(f"cannot write the ledger {self.uri}: {exc}") from exc
            return new_state
        raise LedgerConflict(f"ledger {self.uri} kept changing during {_MAX_ATTEMPTS} attempts")

    def _read(self) -> tuple[LedgerState, int]:
        try:
            found = self._storage.read_versioned(self.uri)
        except StorageError as exc:
            raise LedgerError(f"cannot read the ledger {self.uri}: {exc}") from exc
        if found is None:
            return LedgerState(model=self.model), 0
        data, generation = found
        try:
            raw = json.loads(data)
            if raw.get("schema_version") != SCHEMA_VERSION:
                raise LedgerError(
                    f"ledger {self.uri} has schema version {raw.get('schema_version')!r}; "
                    f"this exportflow reads version {SCHEMA_VERSION}"
                )
            state = from_jsonable(LedgerState, raw)
        except (ValueError, TypeError, KeyError) as exc:
            raise LedgerError(f"ledger {self.uri} is not valid: {exc}") from exc
        return state, generation
