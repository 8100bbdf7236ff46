"""Local receivers for atlas's notifications, over real HTTP on 127.0.0.1.

`WebhookReceiver` records every request and answers with a programmed sequence of statuses (then
200); it can hold requests until released. `SlackReceiver` answers Slack's Web API method
`chat.postMessage` as Slack does: a form or JSON body, the bot token as `Authorization: Bearer`,
and a JSON reply `{"ok": true, "channel": ..., "ts": ..., "message": {...}}`, or `{"ok": false,
"error": ...}` (`invalid_auth` for a wrong token; programmed errors such as `ratelimited`, sent
with HTTP 429 and `Retry-After` as Slack sends it).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    """Header names in lower case."""
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class WebhookReceiver:
    """An HTTP endpoint that records requests; `statuses` are answered in order, then 200."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.requests: list[ReceivedRequest] = []
        self.hold = threading.Event()
        self.hold.set()
        self.holding = threading.Event()
        """Set while a request waits for `hold`."""
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                request = ReceivedRequest(
                    "POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body
                )
                if not receiver.hold.is_set():
                    receiver.holding.set()
                    receiver.hold.wait(30)
                status, headers, reply = receiver.answer(request)
                with receiver._lock:
                    receiver.requests.append(request)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answer(self, request: ReceivedRequest) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            status = self.statuses.pop(0) if self.statuses else 200
        if 300 <= status < 400:
            return status, {"Location": f"{self.url}/elsewhere"}, b"{}"
        return status, {}, b'{"received": true}' if status < 300 else b'{"error": "programmed failure"}'

    def received(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self.requests)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.hold.set()
        self.server.shutdown()
        self.server.server_close()


class SlackReceiver(WebhookReceiver):
    """Slack's Web API, as much of it as `chat.postMessage` needs; `errors` are answered in order, then ok."""

    def __init__(self, token: str, errors: list[str] | None = None) -> None:
        super().__init__()
        self.token = token
        self.errors = list(errors or [])
        self.messages: list[dict[str, Any]] = []
        """The arguments of each message Slack accepted, decoded from form or JSON."""

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def answer(self, request: ReceivedRequest) -> tuple[int, dict[str, str], bytes]:
        if request.path != "/api/chat.postMessage":
            return 404, {}, json.dumps({"ok": False, "error": "unknown_method"}).encode()
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return 200, {}, json.dumps({"ok": False, "error": "invalid_auth"}).encode()
        arguments = _arguments(request)
        with self._lock:
            error = self.errors.pop(0) if self.errors else None
        if error == "ratelimited":
            return 429, {"Retry-After": "1"}, json.dumps({"ok": False, "error": "ratelimited"}).encode()
        if error is not None:
            return 200, {}, json.dumps({"ok": False, "error": error}).encode()
        if not arguments.get("channel"):
            return 200, {}, json.dumps({"ok": False, "error": "channel_not_found"}).encode()
        with self._lock:
            self.messages.append(arguments)
        ts = f"{time.time():.6f}"
        reply = {
            "ok": True,
            "channel": arguments["channel"],
            "ts": ts,
            "message": {
                "type": "message",
                "subtype": "bot_message",
                "bot_id": "B0ATLAS",
                "text": arguments.get("text", ""),
                "attachments": arguments.get("attachments", []),
                "ts": ts,
            },
        }
        return 200, {}, json.dumps(reply).encode()


def _arguments(request: ReceivedRequest) -> dict[str, Any]:
    """A Web API call's arguments: Slack takes them as JSON or as a form, whose `attachments` is JSON text."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        decoded: dict[str, Any] = json.loads(request.body or b"{}")
        return decoded
    form = {key: values[0] for key, values in parse_qs(request.body.decode()).items()}
    arguments: dict[str, Any] = dict(form)
    for key in ("attachments", "blocks"):
        if key in form:
            arguments[key] = json.loads(form[key])
    return arguments


@contextmanager
def running(receiver: WebhookReceiver) -> Iterator[WebhookReceiver]:
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()
