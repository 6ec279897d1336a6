"""Transfer progress: bytes, objects, rate and ETA — as log lines, and as a bar when a terminal watches.

``Progress`` is shared by the transfer threads. Every few seconds it logs a line on
``components.publish.transfer`` (what Airflow's task log shows). Much more often it emits a record
carrying a ``ProgressSnapshot`` on the ``components.publish.progress`` logger, which nobody listens to
unless ``install_progress_bar`` (the CLI does, when stderr is a terminal) adds a handler that draws one
line in place.

Bytes are counted by how they arrived: *uploaded* through this process, *copied by the store*
(server-side, no bytes through us) or *linked* (a hard link on local disk). All three count towards the
total, and the line names each, so a republish that links or copies everything reads "1.2 GiB of
1.2 GiB ... 1.2 GiB linked" instead of "0.0 MiB of 0.0 MiB".
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from typing import TextIO

# Named for publish, whose transfers are the ones reported (staging reports none); operators find the lines
# in Airflow's task log under these names, so they stayed when the module moved here.
log = logging.getLogger("components.publish.transfer")
bar_log = logging.getLogger("components.publish.progress")
bar_log.propagate = False  # only a progress bar handler shows these


@dataclasses.dataclass(frozen=True)
class ProgressSnapshot:
    label: str
    bytes_uploaded: int
    bytes_total: int
    objects_done: int
    objects_total: int
    elapsed: float
    finished: bool = False
    bytes_copied: int = 0  # duplicated server-side by the store
    bytes_linked: int = 0  # hard-linked

    @property
    def bytes_done(self) -> int:
        return self.bytes_uploaded + self.bytes_copied + self.bytes_linked

    @property
    def rate(self) -> float:
        """Bytes per second made at the destination so far, however they got there."""
        return self.bytes_done / self.elapsed if self.elapsed > 0 else 0.0

    def how(self) -> str:
        """How the bytes arrived, e.g. ``0.2 MiB uploaded, 1.0 MiB copied by the store, 0.0 MiB linked``."""
        return (
            f"{_mib(self.bytes_uploaded)} uploaded, {_mib(self.bytes_copied)} copied by the store, "
            f"{_mib(self.bytes_linked)} linked"
        )

    @property
    def eta(self) -> float | None:
        left = self.bytes_total - self.bytes_done
        if left <= 0:
            return 0.0
        return left / self.rate if self.rate > 0 else None

    def describe(self) -> str:
        percent = 100.0 * self.bytes_done / self.bytes_total if self.bytes_total else 100.0
        eta = "-" if self.eta is None else _duration(self.eta)
        return (
            f"{self.label}: {_mib(self.bytes_done)} of {_mib(self.bytes_total)} ({percent:.0f}%): {self.how()}; "
            f"{self.objects_done}/{self.objects_total} objects, {_mib(self.rate)}/s, ETA {eta}"
        )


class Progress:
    """Thread-safe counters for one publish; logs at most every ``log_every`` seconds."""

    def __init__(
        self,
        label: str,
        bytes_total: int,
        objects_total: int,
        *,
        log_every: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label, self.bytes_total, self.objects_total = label, bytes_total, objects_total
        self._clock, self._log_every = clock, log_every
        self._lock = threading.Lock()
        self._start = clock()
        self._uploaded = self._copied = self._linked = self._objects = 0
        self._last_log = self._last_bar = self._start

    def add_bytes(self, count: int) -> None:
        """``count`` more bytes uploaded through this process (called while an upload runs)."""
        with self._lock:
            self._uploaded += count
        self._report()

    def object_done(self, method: str = "uploaded", size: int = 0) -> None:
        """One object finished. A copy or a link moved no bytes through ``add_bytes``: its ``size`` is
        counted here, under its ``method`` (``copied`` or ``linked``)."""
        with self._lock:
            self._objects += 1
            if method == "copied":
                self._copied += size
            elif method == "linked":
                self._linked += size
        self._report()

    def snapshot(self, finished: bool = False) -> ProgressSnapshot:
        with self._lock:
            return ProgressSnapshot(
                self.label,
                self._uploaded,
                self.bytes_total,
                self._objects,
                self.objects_total,
                self._clock() - self._start,
                finished,
                bytes_copied=self._copied,
                bytes_linked=self._linked,
            )

    def finish(self) -> ProgressSnapshot:
        snapshot = self.snapshot(finished=True)
        log.info("%s", snapshot.describe())
        bar_log.info("%s", snapshot.label, extra={"progress": snapshot})
        return snapshot

    def _report(self) -> None:
        now = self._clock()
        with self._lock:
            log_now = now - self._last_log >= self._log_every
            bar_now = now - self._last_bar >= 0.1
            if log_now:
                self._last_log = now
            if bar_now:
                self._last_bar = now
        if log_now:
            log.info("%s", self.snapshot().describe())
        if bar_now:
            bar_log.info("%s", self.label, extra={"progress": self.snapshot()})


class ProgressBar(logging.Handler):
    """Draws ``[#####.....] 40% 412.0 MiB/1.0 GiB 85.2 MiB/s ETA 7s (3/8 objects; 12.0 MiB linked)`` on one
    terminal line; the bytes the store copied or linked are named when there are any."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        super().__init__(logging.INFO)
        self.stream, self.width = stream, width

    def emit(self, record: logging.LogRecord) -> None:
        snapshot: ProgressSnapshot | None = getattr(record, "progress", None)
        if snapshot is None:
            return
        fraction = snapshot.bytes_done / snapshot.bytes_total if snapshot.bytes_total else 1.0
        filled = round(self.width * min(fraction, 1.0))
        eta = "-" if snapshot.eta is None else _duration(snapshot.eta)
        line = (
            f"\r[{'#' * filled}{'.' * (self.width - filled)}] {fraction * 100:3.0f}% "
            f"{_mib(snapshot.bytes_done)}/{_mib(snapshot.bytes_total)} {_mib(snapshot.rate)}/s ETA {eta} "
            f"({snapshot.objects_done}/{snapshot.objects_total} objects{_by_store(snapshot)})"
        )
        try:
            self.stream.write(line + ("\n" if snapshot.finished else ""))
            self.stream.flush()
        except (OSError, ValueError):
            self.handleError(record)


def install_progress_bar(stream: TextIO) -> ProgressBar:
    """Show publish progress as a bar on ``stream`` (a terminal)."""
    handler = ProgressBar(stream)
    bar_log.addHandler(handler)
    bar_log.setLevel(logging.INFO)
    return handler


def _by_store(snapshot: ProgressSnapshot) -> str:
    parts = [f"{_mib(snapshot.bytes_copied)} copied by the store"] if snapshot.bytes_copied else []
    parts += [f"{_mib(snapshot.bytes_linked)} linked"] if snapshot.bytes_linked else []
    return "; " + ", ".join(parts) if parts else ""


def _mib(count: float) -> str:
    if count >= 1024**3:
        return f"{count / 1024**3:.2f} GiB"
    return f"{count / 1024**2:.1f} MiB"


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
