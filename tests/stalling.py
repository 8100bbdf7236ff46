"""Hostile clients for the HTTP front: connections that hold on without ever finishing a request.

`StalledConnections` keeps `count` connections open to a server, in three kinds (as a slowloris
attacker would): silent (connect, send nothing), half headers (a header byte now and then, never
the blank line) and trickling bodies (whole headers announcing a large body, then a byte now and
then). A connection the server closes is opened again at once, so the pressure never lets up.
Sources can be spread over several loopback addresses (127.0.0.2, …), as an attacker's would be
over several hosts; the legitimate client then connects from 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import itertools
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field
from enum import StrEnum


class StallKind(StrEnum):
    SILENT = "silent"
    HALF_HEADERS = "half headers"
    TRICKLING_BODY = "trickling body"


HALF_HEADERS = b"POST /events HTTP/1.1\r\nHost: atlas\r\nX-GitHub-Event: pull_request\r\nX-GitHub-Delivery: "
TRICKLE_HEAD = (b"POST /events HTTP/1.1\r\nHost: atlas\r\nContent-Type: application/json\r\n"
                b"X-GitHub-Event: pull_request\r\nContent-Length: 1000000\r\n\r\n{")


SOURCE_PORTS = range(20000, 32000)
"""Below Linux's ephemeral range (32768-60999): hundreds of attacker sockets must not take the free port
another test has just picked for a server it is about to start."""

_next_port = itertools.count()
_port_lock = threading.Lock()


def _bind_below_ephemeral(sock: socket.socket, source: str) -> None:
    for _ in range(len(SOURCE_PORTS)):
        with _port_lock:
            port = SOURCE_PORTS[next(_next_port) % len(SOURCE_PORTS)]
        try:
            sock.bind((source, port))
            return
        except OSError:
            continue
    sock.bind((source, 0))


@dataclass
class _Stall:
    kind: StallKind
    source: str
    sock: socket.socket | None = None
    next_byte_at: float = 0.0


@dataclass
class StalledConnections:
    """`count` stalled connections to host:port, kept open (and reopened) by one background thread."""

    host: str
    port: int
    count: int
    sources: tuple[str, ...] = ("127.0.0.1",)
    trickle_seconds: float = 1.0
    opened: int = 0
    closed_by_server: int = 0
    _stalls: list[_Stall] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> StalledConnections:
        kinds = itertools.cycle(StallKind)
        sources = itertools.cycle(self.sources)
        self._stalls = [_Stall(next(kinds), next(sources)) for _ in range(self.count)]
        for stall in self._stalls:
            self._open(stall)
        self._thread = threading.Thread(target=self._run, name="stalled-connections", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for stall in self._stalls:
            if stall.sock is not None:
                stall.sock.close()

    def open_now(self) -> int:
        """How many of the stalled connections are open at this moment."""
        return sum(1 for stall in self._stalls if stall.sock is not None)

    def _open(self, stall: _Stall) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            _bind_below_ephemeral(sock, stall.source)
            sock.settimeout(5)
            sock.connect((self.host, self.port))
            if stall.kind is StallKind.HALF_HEADERS:
                sock.sendall(HALF_HEADERS)
            elif stall.kind is StallKind.TRICKLING_BODY:
                sock.sendall(TRICKLE_HEAD)
            sock.setblocking(False)
        except OSError:
            sock.close()
            stall.sock = None
            return
        stall.sock = sock
        stall.next_byte_at = time.monotonic() + self.trickle_seconds
        self.opened += 1

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        while not self._stop.is_set():
            registered: dict[int, _Stall] = {}
            for stall in self._stalls:
                if stall.sock is None:
                    self._open(stall)
                if stall.sock is not None:
                    registered[stall.sock.fileno()] = stall
                    selector.register(stall.sock, selectors.EVENT_READ, stall)
            for key, _ in selector.select(timeout=0.2):
                stall = key.data
                # The server answered (a 408, say) or closed: this attacker connects again.
                with contextlib.suppress(OSError):
                    data = stall.sock.recv(65536)
                    if data:
                        continue
                self._drop(selector, stall)
            now = time.monotonic()
            for stall in self._stalls:
                if stall.sock is None or stall.kind is StallKind.SILENT or now < stall.next_byte_at:
                    continue
                try:
                    stall.sock.send(b"x" if stall.kind is StallKind.HALF_HEADERS else b" ")
                    stall.next_byte_at = now + self.trickle_seconds
                except OSError:
                    self._drop(selector, stall)
            for stall in self._stalls:
                if stall.sock is not None:
                    with contextlib.suppress(KeyError, ValueError):
                        selector.unregister(stall.sock)
        selector.close()

    def _drop(self, selector: selectors.BaseSelector, stall: _Stall) -> None:
        if stall.sock is None:
            return
        with contextlib.suppress(KeyError, ValueError):
            selector.unregister(stall.sock)
        stall.sock.close()
        stall.sock = None
        self.closed_by_server += 1
