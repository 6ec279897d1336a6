"""A small TCP proxy on loopback that injects network faults between a client and a server.

Point ``STORAGE_EMULATOR_HOST`` at the proxy and the GCS client talks to the emulator through it. For
every accepted connection the proxy reads the request head (method, path, headers) and asks ``plan``
what to do with it:

* ``None`` — forward both ways untouched;
* ``Reset(after_bytes)`` — forward that many request bytes (head included) to the server, then reset
  both connections (RST): an upload cut off mid-body. The server never gets a complete request;
* ``Stall(seconds)`` — forward nothing, hold the connection that long (or until the proxy stops), then
  reset it: the client has to time out;
* ``DropResponse()`` — forward the request, let the server answer, swallow the answer and reset the
  client: the server did the work but the client never hears of it;
* ``Respond(status)`` — answer with that HTTP status and a JSON error body without forwarding (a 503
  from an overloaded front end, a 403 from IAM);
* ``Delay(seconds)`` — wait, then forward normally: a crude model of a round trip to a far server (the
  server is idle meanwhile, so concurrent requests overlap their delays).

A stall never holds a half-forwarded request, so a single-threaded server behind the proxy (the
emulator) is never blocked by it. Bounded: at most ``max_connections`` at once (more wait in the
listen backlog), every socket has a timeout, and ``stop()`` ends everything.
"""

from __future__ import annotations

import dataclasses
import json
import select
import socket
import struct
import threading
from collections.abc import Callable
from typing import Self

_HEAD_LIMIT = 64 * 1024
_BUFFER = 256 * 1024


@dataclasses.dataclass(frozen=True)
class Reset:
    after_bytes: int


@dataclasses.dataclass(frozen=True)
class Stall:
    seconds: float


@dataclasses.dataclass(frozen=True)
class DropResponse:
    pass


@dataclasses.dataclass(frozen=True)
class Respond:
    status: int


@dataclasses.dataclass(frozen=True)
class Delay:
    seconds: float


Fault = Reset | Stall | DropResponse | Respond | Delay
Plan = Callable[[int, bytes], Fault | None]


@dataclasses.dataclass(frozen=True)
class Applied:
    connection: int
    fault: Fault
    request_line: str


class FaultProxy:
    def __init__(
        self,
        upstream: tuple[str, int],
        plan: Plan,
        *,
        max_connections: int = 32,
        socket_timeout: float = 30.0,
    ) -> None:
        if upstream[0] not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the fault proxy only forwards to loopback")
        self.upstream, self.plan = upstream, plan
        self.applied: list[Applied] = []
        self.connections = 0
        self._timeout = socket_timeout
        self._slots = threading.BoundedSemaphore(max_connections)
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self._listener.settimeout(0.2)
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept_loop, name="fault-proxy", daemon=True)

    @property
    def address(self) -> str:
        host, port = self._listener.getsockname()[:2]
        return f"{host}:{port}"

    def __enter__(self) -> Self:
        self._acceptor.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stopping.set()
        self._acceptor.join()
        for thread in list(self._threads):
            thread.join(timeout=self._timeout)
        self._listener.close()

    def faults_of(self, kind: type) -> list[Applied]:
        with self._lock:
            return [a for a in self.applied if isinstance(a.fault, kind)]

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            if not self._slots.acquire(timeout=0.2):
                continue
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                self._slots.release()
                continue
            except OSError:
                self._slots.release()
                return
            with self._lock:
                self.connections += 1
                number = self.connections
            thread = threading.Thread(target=self._serve, args=(client, number), daemon=True)
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
            thread.start()

    def _serve(self, client: socket.socket, number: int) -> None:
        upstream: socket.socket | None = None
        try:
            client.settimeout(self._timeout)
            head = _read_head(client)
            fault = self.plan(number, head) if head else None
            if fault is not None and not isinstance(fault, Delay):
                with self._lock:
                    self.applied.append(Applied(number, fault, head.split(b"\r\n", 1)[0].decode("latin-1")))
            if isinstance(fault, Stall):
                self._stopping.wait(fault.seconds)
                _reset(client)
                return
            if isinstance(fault, Respond):
                _drain_request(client, head)
                body = json.dumps({"error": {"code": fault.status, "message": f"injected {fault.status}"}}).encode()
                client.sendall(
                    f"HTTP/1.1 {fault.status} Injected\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body
                )
                return
            if isinstance(fault, Delay):
                self._stopping.wait(fault.seconds)
            upstream = socket.create_connection(self.upstream, timeout=self._timeout)
            limit = fault.after_bytes if isinstance(fault, Reset) else None
            if limit is not None and len(head) >= limit:
                upstream.sendall(head[:limit])
                _reset(upstream)
                _reset(client)
                return
            upstream.sendall(head)
            self._pump(client, upstream, limit - len(head) if limit is not None else None, isinstance(fault, DropResponse))
        except OSError:
            pass
        finally:
            for sock in (client, upstream):
                if sock is not None:
                    try:
                        sock.close()
                    except OSError:
                        pass
            self._slots.release()

    def _pump(self, client: socket.socket, upstream: socket.socket, budget: int | None, drop: bool) -> None:
        """Copy bytes both ways until both sides close; reset both when the request budget runs out."""
        open_ends = {client: upstream, upstream: client}
        while open_ends and not self._stopping.is_set():
            readable, _, _ = select.select(list(open_ends), [], [], 0.2)
            for source in readable:
                data = source.recv(_BUFFER)
                target = open_ends[source]
                if not data:
                    if source is upstream and drop:
                        _reset(client)
                        return
                    del open_ends[source]
                    try:
                        target.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    continue
                if source is client and budget is not None:
                    if len(data) >= budget:
                        upstream.sendall(data[:budget])
                        _reset(upstream)
                        _reset(client)
                        return
                    budget -= len(data)
                if source is upstream and drop:
                    continue  # the server's answer never reaches the client
                target.sendall(data)


def _read_head(sock: socket.socket) -> bytes:
    head = b""
    while b"\r\n\r\n" not in head and len(head) < _HEAD_LIMIT:
        chunk = sock.recv(_BUFFER)
        if not chunk:
            break
        head += chunk
    return head


def _drain_request(sock: socket.socket, head: bytes) -> None:
    """Read the rest of the request body (by Content-Length) so the client sees an answer, not a reset."""
    header_end = head.find(b"\r\n\r\n")
    length = 0
    for line in head[:header_end].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    left = length - (len(head) - header_end - 4)
    while left > 0:
        chunk = sock.recv(min(left, _BUFFER))
        if not chunk:
            return
        left -= len(chunk)


def _reset(sock: socket.socket) -> None:
    """Close with RST instead of FIN (SO_LINGER with a zero timeout)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    except OSError:
        pass


def main() -> None:
    """``python -m tests.support.faultproxy HOST:PORT --delay-ms N``: a delaying proxy in its own process
    (for benchmarks); prints its address, serves until stdin closes."""
    import argparse
    import sys

    parser = argparse.ArgumentParser()
    parser.add_argument("upstream")
    parser.add_argument("--delay-ms", type=float, default=0.0)
    args = parser.parse_args()
    host, port = args.upstream.rsplit(":", 1)
    delay = Delay(args.delay_ms / 1000)
    with FaultProxy((host, int(port)), lambda _n, _head: delay, max_connections=64) as proxy:
        print(proxy.address, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
