"""The HTTP front against hostile clients: stalled connections cost a socket, never GitHub's deliveries.

The server is the real `atlas server` process (gunicorn with atlas's front) over real sockets; the
attackers are `tests.stalling.StalledConnections`. `Front` itself is also driven in-process, with
short deadlines, to show each refusal a slow client gets.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from atlas.http.front import FrontLimits
from tests.atlas_plugin import WEBHOOK_SECRET, free_port, served_through_front, wait_for
from tests.emulator import EmulatedRepo, GitHubEmulator, deliver, webhook_payload
from tests.stalling import StalledConnections


@contextmanager
def atlas_server_process(tmp_path: Path, emulator: GitHubEmulator) -> Iterator[str]:
    """`atlas server` on a free port, answering /healthz; yields its URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATLAS_")}
    env.update(ATLAS_GH_TOKEN=emulator.token, ATLAS_GH_WEBHOOK_SECRET=WEBHOOK_SECRET)
    log_path = tmp_path / "server.log"
    with log_path.open("w") as log_file:
        server = subprocess.Popen(
            [sys.executable, "-m", "atlas", "server", "--port", str(port), "--data-dir", str(tmp_path / "data"),
             "--gh-api-url", emulator.api_url, "--gh-user", emulator.bot_login, "--repo-allowlist", "*",
             "--log-level", "warning"],
            env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert server.poll() is None, f"atlas server exited:\n{log_path.read_text()}"
        try:
            return requests.get(f"{url}/healthz", timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    try:
        wait_for(healthy, 30, "atlas server")
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


@pytest.mark.parametrize("attackers", [1, 10], ids=["stalls-from-the-deliveries-address", "stalls-from-10-addresses"])
def test_every_delivery_is_answered_within_2_s_while_200_connections_stall(
    tmp_path: Path, github_emulator: GitHubEmulator, fixture_repo: Callable[..., EmulatedRepo], attackers: int
) -> None:
    fixture_repo("multi-project")
    pull = github_emulator.open_pull("acme/infra", "short-lived", {"README.md": "bye\n"})
    # Each is queued as a job of its own; closing a pull request without plans writes nothing to GitHub,
    # so GitHub's write budget does not keep the server busy long after.
    payloads = [webhook_payload("pull_request", pull, "closed")] * 50
    with atlas_server_process(tmp_path, github_emulator) as url:
        port = int(url.rsplit(":", 1)[1])
        sources = ("127.0.0.1",) if attackers == 1 else tuple(f"127.0.0.{2 + i}" for i in range(attackers))

        def one(payload: dict[str, Any]) -> tuple[int, float]:
            started = time.monotonic()
            response = deliver(f"{url}/events", "pull_request", payload, secret=WEBHOOK_SECRET,
                               delivery_id=str(uuid.uuid4()), timeout=30)
            return response.status_code, time.monotonic() - started

        with StalledConnections("127.0.0.1", port, 200, sources=sources) as stalls:
            wait_for(lambda: stalls.open_now() == 200, 30, "200 stalled connections")
            with ThreadPoolExecutor(50) as pool:
                answers = list(pool.map(one, payloads))
            health = requests.get(f"{url}/healthz", timeout=2)
            still_stalled = stalls.open_now()

    assert [status for status, _ in answers] == [202] * 50
    slowest = max(seconds for _, seconds in answers)
    assert slowest < 2.0, f"the slowest delivery took {slowest:.2f} s"
    assert health.status_code == 200
    assert still_stalled >= 150, "the stalled connections were held, not merely refused"


# --- Front in-process, with short deadlines ---------------------------------------------------


def hello_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body) + 3))])
    return [b"ok " + body]


def read_answer(sock: socket.socket, timeout: float = 10) -> bytes:
    sock.settimeout(timeout)
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def test_headers_that_do_not_arrive_in_time_get_408_saying_so() -> None:
    with served_through_front(hello_app, limits=FrontLimits(header_timeout=1, request_timeout=2)) as port, \
            socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"POST /events HTTP/1.1\r\nHost: atlas\r\n")
        answer = read_answer(sock)
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout")
    assert b"the request headers did not arrive within 1 s" in answer


def test_a_body_that_trickles_in_gets_408_saying_so() -> None:
    with served_through_front(hello_app, limits=FrontLimits(header_timeout=1, request_timeout=2)) as port, \
            socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"POST /events HTTP/1.1\r\nHost: atlas\r\nContent-Length: 1000\r\n\r\n")
        started = time.monotonic()
        answer = b""
        sock.settimeout(0.3)
        while time.monotonic() - started < 10 and not answer:
            sock.sendall(b"x")
            try:
                answer = sock.recv(65536)
            except TimeoutError:
                continue
        answer += read_answer(sock)
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout"), answer
    assert b"the request body did not arrive within 2 s" in answer


def test_a_connection_that_sends_nothing_is_closed_after_the_idle_timeout() -> None:
    with served_through_front(hello_app, limits=FrontLimits(idle_timeout=1)) as port, \
            socket.create_connection(("127.0.0.1", port)) as sock:
        started = time.monotonic()
        assert read_answer(sock) == b""
    assert 0.5 < time.monotonic() - started < 5


def test_a_client_over_its_connection_bound_loses_its_longest_waiting_connection() -> None:
    with served_through_front(hello_app, limits=FrontLimits(max_connections_per_client=3)) as port:
        stalled = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        time.sleep(1.5)  # older than the grace a fresh connection gets
        try:
            response = requests.post(f"http://127.0.0.1:{port}/", data=b"hello", timeout=5)
            assert (response.status_code, response.text) == (200, "ok hello")
            assert read_answer(stalled[0], timeout=5) == b"", "the oldest stalled connection was closed"
        finally:
            for sock in stalled:
                sock.close()


def test_a_client_whose_connections_are_all_busy_is_refused_with_429() -> None:
    with served_through_front(hello_app, limits=FrontLimits(max_connections_per_client=2)) as port:
        fresh = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
        time.sleep(0.2)
        try:
            with socket.create_connection(("127.0.0.1", port)) as third:
                answer = read_answer(third)
        finally:
            for sock in fresh:
                sock.close()
    assert answer.startswith(b"HTTP/1.1 429 Too Many Requests")
    assert b"too many connections from 127.0.0.1" in answer


def test_keep_alive_ends_after_the_request_limit() -> None:
    with served_through_front(hello_app, limits=FrontLimits(max_keepalive_requests=2)) as port, \
            requests.Session() as session:
        first = session.post(f"http://127.0.0.1:{port}/", data=b"1", timeout=5)
        second = session.post(f"http://127.0.0.1:{port}/", data=b"2", timeout=5)
    assert first.headers.get("Connection", "").lower() != "close"
    assert second.headers["Connection"].lower() == "close"
