"""The HTTP front: reads every request whole, with deadlines, before a thread sees it.

atlas faces the internet (GitHub must reach `/events`), so a client that connects and then sends
nothing, half its headers or a body one byte at a time must cost a socket, not a request thread.
waitress's channels do the reading on one event loop and hand only complete requests to the
thread pool; `GuardedServer` and `GuardedChannel` add what waitress lacks for a hostile network:

- deadlines: a request's headers must arrive within `header_timeout` of its first byte and the
  whole request within `request_timeout` (a 408 that says which); an idle keep-alive connection,
  or one that never sends a byte, is closed after `idle_timeout`; a response the client does not
  read for `send_timeout` is abandoned, so a slow reader cannot keep a thread writing;
- a bound on open connections per client address and in all: past it, the connection of that
  client (or of anyone) that has waited longest (at least a second) without a complete request
  is closed to make room, and only when none has is the new one refused (429 or 503);
- keep-alive limits: at most `max_keepalive_requests` requests per connection.

`FrontWorker` runs this inside gunicorn's worker processes, so gunicorn still forks, watches and
restarts the web processes and shuts them down gracefully.
"""

from __future__ import annotations

import logging
import os
import resource
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from gunicorn.workers.base import Worker  # type: ignore[import-untyped]
from waitress import wasyncore  # type: ignore[import-untyped]
from waitress.adjustments import Adjustments  # type: ignore[import-untyped]
from waitress.channel import HTTPChannel  # type: ignore[import-untyped]
from waitress.server import TcpWSGIServer  # type: ignore[import-untyped]
from waitress.task import ThreadedTaskDispatcher  # type: ignore[import-untyped]
from waitress.utilities import Error  # type: ignore[import-untyped]

log = logging.getLogger(__name__)

WSGIApp = Callable[..., Iterable[bytes]]

FORWARDED_ALLOW_IPS_ENV = "FORWARDED_ALLOW_IPS"
"""Names the proxies whose X-Forwarded-For/-Proto atlas believes (comma-separated; `*` for any)."""

DEFAULT_FORWARDED_ALLOW_IPS = "127.0.0.1,::1"
"""Without the variable, only a proxy on this host is believed."""

EVICTION_GRACE_SECONDS = 1.0
"""How long a connection must have waited without a complete request before it may be closed for a new one."""

FD_MARGIN = 128
"""File descriptors kept free of connections: the job queue, git, terraform and the stores need them."""


@dataclass(frozen=True)
class FrontLimits:
    """How long and how much a client may take; the defaults suit GitHub and a few browsers."""

    header_timeout: float = 10.0
    """Seconds from a request's first byte to the end of its headers."""
    request_timeout: float = 30.0
    """Seconds from a request's first byte to the end of its body (GitHub sends 25 MB in far less)."""
    idle_timeout: int = 5
    """Seconds a connection may sit without sending a byte: kept alive, or never used."""
    send_timeout: float = 30.0
    """Seconds a response may wait for the client to read any of it."""
    max_connections: int = 1000
    """Open connections in one web process."""
    max_connections_per_client: int = 256
    """Open connections from one client address."""
    max_keepalive_requests: int = 100
    """Requests on one connection before atlas closes it."""
    max_header_bytes: int = 64 * 1024
    """Request line and headers; GitHub's deliveries send about 1 KiB."""
    max_body_bytes: int = 26 * 1024 * 1024
    """Above the app's own 25 MiB limit, so that the app answers the 413 with its own reason."""


class RequestTimeout(Error):  # type: ignore[misc]
    code = 408
    reason = "Request Timeout"


class GuardedChannel(HTTPChannel):  # type: ignore[misc]
    """One client connection: waitress's buffering channel that knows when its request began."""

    server: GuardedServer
    request: Any
    requests: list[Any]

    def __init__(self, server: GuardedServer, sock: socket.socket, addr: Any, adj: Adjustments,
                 map: dict[int, Any] | None = None) -> None:
        self.request_started: float | None = None
        self._timed_request: object = None
        self.served = 0
        super().__init__(server, sock, addr, adj, map)

    @property
    def client(self) -> str:
        return str(self.addr[0]) if isinstance(self.addr, tuple) and self.addr else str(self.addr)

    @property
    def waiting(self) -> bool:
        """No request of this connection is being served: it is idle or still sending one."""
        return not self.requests and not self.will_close

    def waiting_since(self) -> float:
        return self.request_started if self.request_started is not None else float(self.last_activity)

    def received(self, data: bytes) -> bool:
        result = bool(super().received(data))
        if self.request is None:
            self.request_started = None
        elif self.request is not self._timed_request:
            self.request_started = time.time()
        self._timed_request = self.request
        return result

    def service(self) -> None:
        self.served += 1
        if self.served >= self.server.limits.max_keepalive_requests and self.requests:
            # waitress then answers with `Connection: close` and closes once the answer is sent.
            self.requests[0].headers["CONNECTION"] = "close"
        super().service()

    def check_deadlines(self, now: float) -> None:
        """Answer a request that is too slow in coming with 408; drop a reader that stopped reading."""
        limits = self.server.limits
        request = self.request
        if request is not None and self.request_started is not None and not self.requests:
            elapsed = now - self.request_started
            if not request.headers_finished and elapsed > limits.header_timeout:
                self._time_out(f"the request headers did not arrive within {limits.header_timeout:g} s")
            elif request.headers_finished and elapsed > limits.request_timeout:
                self._time_out(f"the request body did not arrive within {limits.request_timeout:g} s")
        elif self.requests and self.total_outbufs_len and now - self.last_activity > limits.send_timeout:
            # The request thread may be waiting for the buffer to drain; let it go.
            self.connected = False
            self.will_close = True
            with self.outbuf_lock:
                self.outbuf_lock.notify_all()

    def _time_out(self, reason: str) -> None:
        with self.requests_lock:
            request = self.request
            if request is None or self.requests:
                return
            request.error = RequestTimeout(reason)
            if not request.headers_finished:
                request.version = "1.1"  # unknown before the request line is parsed
            request.completed = True
            self.request = None
            self.request_started = None
            self.requests.append(request)
        self.server.add_task(self)

    def evict(self) -> None:
        """Close now, to make room for a new connection."""
        self.will_close = True
        self.handle_close()


class GuardedServer(TcpWSGIServer):  # type: ignore[misc]
    """Accepts connections on one listening socket within the per-client and total bounds."""

    channel_class = GuardedChannel

    def __init__(self, app: WSGIApp, sock: socket.socket, limits: FrontLimits, adj: Adjustments,
                 map: dict[int, Any], dispatcher: ThreadedTaskDispatcher) -> None:
        self.limits = limits
        sockinfo = (sock.family, sock.type, sock.proto, sock.getsockname())
        super().__init__(app, map, True, sock, dispatcher=dispatcher, adj=adj, bind_socket=False,
                         sockinfo=sockinfo)

    def channels(self) -> list[GuardedChannel]:
        return [channel for channel in self.active_channels.values() if isinstance(channel, GuardedChannel)]

    def maintenance(self, now: float) -> None:
        super().maintenance(now)
        for channel in self.channels():
            channel.check_deadlines(now)

    def handle_accept(self) -> None:
        try:
            accepted = self.accept()
        except OSError:
            return
        if accepted is None:
            return
        conn, addr = accepted
        client = str(addr[0]) if isinstance(addr, tuple) and addr else str(addr)
        channels = self.channels()
        mine = [channel for channel in channels if channel.client == client]
        if len(mine) >= self.limits.max_connections_per_client and not _make_room(mine):
            _refuse(conn, 429, f"too many connections from {client}; close some and retry")
            return
        if len(channels) >= self.limits.max_connections and not _make_room(channels):
            _refuse(conn, 503, "the server has too many open connections; retry shortly")
            return
        try:
            self.set_socket_options(conn)
        except OSError:
            conn.close()
            return
        self.channel_class(self, conn, addr, self.adj, map=self._map)


def _make_room(channels: Sequence[GuardedChannel]) -> bool:
    """Close the connection that has waited longest without a complete request; False if none waits.

    Only one that has waited `EVICTION_GRACE_SECONDS`: a connection opened a moment ago is a client
    about to send, not a stalled one.
    """
    cutoff = time.time() - EVICTION_GRACE_SECONDS
    waiting = [channel for channel in channels if channel.waiting and channel.waiting_since() <= cutoff]
    if not waiting:
        return False
    oldest = min(waiting, key=GuardedChannel.waiting_since)
    log.info("closing a waiting connection from %s to make room for a new one", oldest.client)
    oldest.evict()
    return True


def _refuse(conn: socket.socket, status: int, reason: str) -> None:
    phrase = {429: "Too Many Requests", 503: "Service Unavailable"}[status]
    body = (reason + "\n").encode()
    head = (f"HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    log.warning("refused a connection: %s", reason)
    try:
        conn.setblocking(False)
        conn.send(head + body)
        conn.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    finally:
        conn.close()


def connection_capacity(wanted: int) -> int:
    """`wanted`, or fewer when the process may not open that many files (raising its soft limit first)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, wanted + FD_MARGIN)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (OSError, ValueError):
            pass
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft - FD_MARGIN))


class Front:
    """The guarded servers of one process over its listening sockets, sharing one thread pool."""

    def __init__(self, app: WSGIApp, sockets: Sequence[socket.socket], *, threads: int,
                 limits: FrontLimits | None = None) -> None:
        limits = limits or FrontLimits()
        self.limits = FrontLimits(**{**limits.__dict__,
                                     "max_connections": connection_capacity(limits.max_connections)})
        self.map: dict[int, Any] = {}
        adj = Adjustments(
            threads=threads,
            ident="atlas",
            # atlas enforces its own, lower bound (`_make_room`); this only keeps waitress from
            # stopping accepting, which would leave new connections stuck behind stalled ones.
            connection_limit=self.limits.max_connections + 16,
            channel_timeout=self.limits.idle_timeout,
            cleanup_interval=1,
            max_request_header_size=self.limits.max_header_bytes,
            max_request_body_size=self.limits.max_body_bytes,
            asyncore_use_poll=True,
            # Proxy headers are judged by `ForwardedHeaders`, from the configured proxies only.
            clear_untrusted_proxy_headers=False,
        )
        # waitress warns of every request that waits for a thread; under load that is every request.
        logging.getLogger("waitress.queue").setLevel(logging.ERROR)
        self.dispatcher = ThreadedTaskDispatcher()
        self.dispatcher.set_thread_count(threads)
        self.servers = [GuardedServer(app, sock, self.limits, adj, self.map, self.dispatcher) for sock in sockets]

    def poll(self, timeout: float) -> None:
        """Serve for up to `timeout` seconds (one turn of the event loop)."""
        wasyncore.loop(timeout=timeout, map=self.map, use_poll=True, count=1)

    def busy(self) -> bool:
        return any(channel.requests for server in self.servers for channel in server.channels())

    def stop(self, graceful_timeout: float, heartbeat: Callable[[], None] = lambda: None) -> None:
        """Stop accepting, let requests in progress finish (up to `graceful_timeout`), then close."""
        for server in self.servers:
            server.accepting = False
            wasyncore.dispatcher.close(server)  # the listening socket only; the trigger still wakes the loop
        deadline = time.monotonic() + graceful_timeout
        while self.busy() and time.monotonic() < deadline:
            self.poll(0.2)
            heartbeat()
        self.dispatcher.shutdown(cancel_pending=True, timeout=5)
        wasyncore.close_all(self.map)


class ForwardedHeaders:
    """Believe X-Forwarded-For and -Proto only from the configured proxies; drop them from anyone else.

    Without a proxy in front, a client could otherwise claim to be another address or to have come
    over TLS (which decides whether cookies are marked secure).
    """

    HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST", "HTTP_X_FORWARDED_PORT",
               "HTTP_FORWARDED", "HTTP_X_FORWARDED_BY", "HTTP_X_FORWARDED_SSL")

    def __init__(self, app: WSGIApp, trusted: str) -> None:
        self.app = app
        self.trusted = {item.strip() for item in trusted.split(",") if item.strip()}

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        peer = str(environ.get("REMOTE_ADDR", ""))
        if "*" in self.trusted or peer in self.trusted:
            proto = str(environ.get("HTTP_X_FORWARDED_PROTO", "")).split(",")[0].strip().lower()
            if proto in ("http", "https"):
                environ["wsgi.url_scheme"] = proto
            forwarded_for = [part.strip() for part in str(environ.get("HTTP_X_FORWARDED_FOR", "")).split(",")]
            if forwarded_for and forwarded_for[-1]:
                # The last entry is the one the trusted proxy wrote itself.
                environ["REMOTE_ADDR"] = forwarded_for[-1]
        else:
            for name in self.HEADERS:
                environ.pop(name, None)
        return self.app(environ, start_response)


class AccessLog:
    """One line per request on `logger`, with fields: method, path, status, remote, duration, bytes."""

    def __init__(self, app: WSGIApp, logger: logging.Logger) -> None:
        self.app = app
        self.logger = logger

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.monotonic()
        status = ["-"]

        def recording_start_response(code: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status[0] = code.split(None, 1)[0]
            return start_response(code, headers, exc_info)

        body = self.app(environ, recording_start_response)
        return _Logged(body, lambda sent: self.logger.info(
            "%s %s %s", environ.get("REQUEST_METHOD", "-"), environ.get("PATH_INFO", "-"), status[0],
            extra={"remote": environ.get("REMOTE_ADDR", "-"),
                   "duration_ms": round((time.monotonic() - started) * 1000), "bytes": sent},
        ))


class _Logged:
    """A response body that reports how much of it was sent once the server closes it."""

    def __init__(self, body: Iterable[bytes], report: Callable[[int], None]) -> None:
        self.body = body
        self.report = report
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.body:
            self.sent += len(chunk)
            yield chunk

    def close(self) -> None:
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            self.report(self.sent)


class FrontWorker(Worker):  # type: ignore[misc]
    """A gunicorn worker process whose requests are read by `Front` and served by its thread pool."""

    limits = FrontLimits()

    def run(self) -> None:
        trusted = os.environ.get(FORWARDED_ALLOW_IPS_ENV, DEFAULT_FORWARDED_ALLOW_IPS)
        app = AccessLog(ForwardedHeaders(self.wsgi, trusted), self.log.access_log)
        front = Front(app, [listener.sock for listener in self.sockets], threads=self.cfg.threads,
                      limits=self.limits)
        parent = self.ppid
        try:
            while self.alive:
                front.poll(1.0)
                self.notify()
                if os.getppid() != parent:
                    self.log.info("Parent changed, shutting down: %s", self)
                    break
        finally:
            front.stop(self.cfg.graceful_timeout, heartbeat=self.notify)
