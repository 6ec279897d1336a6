"""The lock that gives one run the exclusive right to change one version, held in a small JSON object.

Publishing, removing (retention) and staging a version each take it first, so two runs never interleave
their writes to the same version. It lives at ``<version>.lease.json`` beside the version's bookkeeping
and expires unless renewed: a killed run's lock goes stale and the next run takes it over by
compare-and-swap (create with ``if_generation_match=0``, replace by generation). On the holder's own host
a lock whose process is gone is stale at once. Stores that ignore preconditions (the GCS emulator) are
still kept apart by looking before creating.

On disk the file keeps the name it always had (``.lease.json``, so existing destinations and staging
areas stay readable); in code it is the *version lock*, not to be confused with discovery's checkpoint
leases (``components/discovery/lease.py``), which pin a checkpoint while a run reads it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import threading
import time
import uuid
from typing import Any, Self

from components.storage import PreconditionFailed, Storage, StorageError
from components.transfer.errors import PublishInProgress

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class LockLook:
    """What a lock file held when it was read — content and generation, or None: absent. Taken alongside
    another read (the commit marker), it saves ``acquire`` its first round trip."""

    found: tuple[bytes, int] | None

    @classmethod
    def of(cls, storage: Storage, uri: str) -> LockLook:
        return cls(storage.read_versioned(uri))


@dataclasses.dataclass
class VersionLock:
    """Exclusive right to change one version, held in ``<version>.lease.json``."""

    storage: Storage
    uri: str
    owner: str
    ttl: float
    purpose: str
    generation: int
    lost: BaseException | None = None
    renewed_at: float = dataclasses.field(default_factory=time.monotonic)  # when the last write that held it began
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    @classmethod
    def acquire(cls, storage: Storage, uri: str, ttl: float, purpose: str, look: LockLook | None = None) -> VersionLock:
        """Take the lock; ``look``, when given, is a fresh read of it that stands for the first look."""
        owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        body = _lock_body(owner, ttl, purpose)
        for attempt in range(5):
            # Look first, then create-if-absent: the precondition closes the race on real GCS; the look
            # keeps a store that ignores preconditions (the emulator) from silently taking a live lock.
            found = look.found if look is not None and attempt == 0 else storage.read_versioned(uri)
            started = time.monotonic()
            if found is None:
                try:
                    info = storage.write_bytes(uri, body, if_generation_match=0)
                    return cls(storage, uri, owner, ttl, purpose, info.generation or 0, renewed_at=started)
                except PreconditionFailed:
                    continue  # created meanwhile: look at it
            data, generation = found
            holder = json_object(data)
            if holder is not None and lock_is_live(holder):
                raise PublishInProgress(
                    f"{uri}: {holder.get('purpose', 'publish')} in progress by {holder.get('owner')} until "
                    f"{holder.get('expires_at')}; retry when it is done"
                )
            log.warning("taking over the stale lock %s (held by %s)", uri, holder.get("owner") if holder else "?")
            try:
                info = storage.write_bytes(uri, body, if_generation_match=generation)
                return cls(storage, uri, owner, ttl, purpose, info.generation or 0, renewed_at=started)
            except PreconditionFailed:
                continue
        raise PublishInProgress(f"{uri}: the lock kept changing hands; retry later")

    @staticmethod
    def clear_stale(storage: Storage, uri: str, look: LockLook | None = None) -> None:
        """Remove the lock at ``uri`` if its holder is gone (never a live one); ``look``: a fresh read of it."""
        found = look.found if look is not None else storage.read_versioned(uri)
        if found is None:
            return
        holder = json_object(found[0])
        if holder is None or not lock_is_live(holder):
            try:
                storage.delete(uri, if_generation_match=found[1])
            except PreconditionFailed:
                pass  # renewed or taken over meanwhile

    def renew(self) -> None:
        with self._lock:
            started = time.monotonic()
            try:
                info = self.storage.write_bytes(
                    self.uri, _lock_body(self.owner, self.ttl, self.purpose), if_generation_match=self.generation
                )
            except PreconditionFailed as exc:
                self.lost = exc
                raise PublishInProgress(f"lock {self.uri} was taken over by another run") from exc
            self.generation = info.generation or 0
            self.renewed_at = started

    def check(self) -> None:
        """Raise if the lock was lost; else renew it (the next steps must run under a fresh lock)."""
        if self.lost is not None:
            raise PublishInProgress(f"lock {self.uri} was lost: {self.lost}")
        self.renew()

    def confirm(self) -> None:
        """Like ``check``, without a round trip while the lock is fresh: renewed (by us, compare-and-swap)
        within the last third of its TTL, it cannot belong to anyone else yet — taking it over needs it
        expired, and it expires a whole TTL after that renewal began."""
        if self.lost is not None:
            raise PublishInProgress(f"lock {self.uri} was lost: {self.lost}")
        with self._lock:
            fresh = time.monotonic() - self.renewed_at < self.ttl / 3
        if not fresh:
            self.renew()

    def release(self) -> None:
        with self._lock:
            try:
                self.storage.delete(self.uri, if_generation_match=self.generation)
            except PreconditionFailed:
                log.warning("lock %s changed hands before release; leaving it", self.uri)

    def heartbeat(self) -> _Heartbeat:
        return _Heartbeat(self)


class _Heartbeat:
    """Renews the lock every third of its TTL in a daemon thread while the ``with`` block runs."""

    def __init__(self, lock: VersionLock) -> None:
        self.lock = lock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="publish-lock", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.lock.ttl / 3):
            try:
                self.lock.renew()
            except (PublishInProgress, StorageError) as exc:
                self.lock.lost = exc
                log.warning("could not renew lock %s: %s", self.lock.uri, exc)
                return


def _lock_body(owner: str, ttl: float, purpose: str) -> bytes:
    now = time.time()
    host, pid, _ = owner.split(":", 2)
    return json.dumps(
        {
            "owner": owner,
            "host": host,
            "pid": int(pid),
            "purpose": purpose,
            "renewed_at": now,
            "expires_at": now + ttl,
        },
        sort_keys=True,
    ).encode()


def json_object(data: bytes) -> dict[str, Any] | None:
    """``data`` parsed as a JSON object, or None."""
    try:
        value = json.loads(data)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def lock_is_live(lock: dict[str, Any], now: float | None = None) -> bool:
    """Live: not expired, and — when held on this host — its process still exists."""
    now = time.time() if now is None else now
    if float(lock.get("expires_at", 0)) <= now:
        return False
    if lock.get("host") == socket.gethostname():
        try:
            os.kill(int(lock.get("pid", 0)), 0)
        except ProcessLookupError:
            return False
        except (PermissionError, ValueError, OverflowError):
            return True
    return True
