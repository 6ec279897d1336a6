"""Read and update the ledger atomically, safe under concurrent runs.

``Ledger.update(change)`` is read → ``change(state)`` → write, and never loses another run's write:

* local disk: the whole read-modify-write runs under an exclusive ``flock`` on ``ledger.json.lock``
  beside the ledger, and the write is a temp file + ``os.replace`` (``LocalStorage.write_bytes``), so a
  reader sees the old or the new file, never a torn one, and two writers take turns;
* GCS (no locks): the write carries ``if_generation_match`` of the generation read; when another run
  wrote in between, GCS answers 412 and the update is re-read and re-applied (``change`` must be a pure
  function of the state), with a jittered back-off, up to ``_MAX_ATTEMPTS`` times. Real GCS enforces the
  precondition; the GCS emulator used in tests does not.

``change`` returning an equal state writes nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import fcntl
import json
import logging
import os
import random
import time
from collections.abc import Callable, Iterator

from components.artifacts import from_jsonable, to_jsonable
from components.layout import BOOKKEEPING, LEDGER_FILE
from components.ledger.errors import LedgerConflict, LedgerError, LedgerUnavailable
from components.ledger.schema import READABLE_VERSIONS, SCHEMA_VERSION, LedgerState
from components.storage import (
    PreconditionFailed,
    Storage,
    StorageError,
    TransientStorageError,
    scheme_of,
    storage_for,
)

log = logging.getLogger(__name__)
_MAX_ATTEMPTS = 10


def ledger_uri(destination: str, model: str) -> str:
    return storage_for(destination).join(destination, BOOKKEEPING, model, LEDGER_FILE)


def utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


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
        for attempt in range(_MAX_ATTEMPTS):
            with self._exclusive():
                state, generation = self._read()
                new_state = change(state)
                if new_state == state:
                    return state
                new_state = dataclasses.replace(
                    new_state, schema_version=SCHEMA_VERSION, updated_at=utc_now()
                )
                data = json.dumps(to_jsonable(new_state), indent=1, sort_keys=True).encode()
                try:
                    self._storage.write_bytes(self.uri, data, if_generation_match=generation)
                except PreconditionFailed:
                    log.info("ledger %s changed under us (attempt %d); re-reading", self.uri, attempt + 1)
                except TransientStorageError as exc:
                    raise LedgerUnavailable(f"cannot write the ledger {self.uri}: {exc}") from exc
                except StorageError as exc:
                    raise LedgerError(f"cannot write the ledger {self.uri}: {exc}") from exc
                else:
                    return new_state
            time.sleep(random.uniform(0, min(2.0, 0.05 * 2**attempt)))
        raise LedgerConflict(f"ledger {self.uri} kept changing during {_MAX_ATTEMPTS} attempts")

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """An exclusive lock for the read-modify-write on local disk; nothing on object stores."""
        if scheme_of(self.uri) != "file":
            yield
            return
        path = self.uri.removeprefix("file://")
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            handle = open(f"{path}.lock", "a")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise LedgerError(f"cannot lock the ledger {self.uri}: {exc.strerror or exc}") from exc
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _read(self) -> tuple[LedgerState, int]:
        try:
            found = self._storage.read_versioned(self.uri)
        except TransientStorageError as exc:
            raise LedgerUnavailable(f"cannot read the ledger {self.uri}: {exc}") from exc
        except StorageError as exc:
            raise LedgerError(f"cannot read the ledger {self.uri}: {exc}") from exc
        if found is None:
            return LedgerState(model=self.model), 0
        data, generation = found
        try:
            raw = json.loads(data)
            version = raw.get("schema_version")
            if version not in READABLE_VERSIONS:
                raise LedgerError(
                    f"ledger {self.uri} has schema version {version!r}; this exportflow reads versions "
                    f"{', '.join(map(str, READABLE_VERSIONS))} (a newer exportflow wrote it?)"
                )
            state = from_jsonable(LedgerState, raw)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise LedgerError(f"ledger {self.uri} is not valid: {exc}") from exc
        return state, generation
