"""Fixtures that stand up atlas itself: a real server over HTTP in front of the GitHub emulator.

`start_atlas(**settings)` serves `create_app` on a free port with werkzeug's threaded server, so
deliveries cross real HTTP; `fixture_repo` commits a terraform fixture into the emulator with its
state kept in a shared directory outside any clone, as a remote backend would. Servers run
pull-request code as production should: `--sandbox required`, with that state directory reached
through `--sandbox-paths`.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from atlas.app import create_app
from atlas.config.settings import Settings, load_settings
from atlas.http.front import Front, FrontLimits
from atlas.jobs.embedded import EmbeddedQueue
from tests.conftest import require_sandbox
from tests.emulator import EmulatedPull, EmulatedRepo, GitHubEmulator, deliver, webhook_payload

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = REPO_ROOT / "terraform-fixtures"
WEBHOOK_SECRET = "It's a Secret to Everybody"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `condition` until it holds, or fail saying what was awaited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@contextmanager
def served_through_front(app: Any, *, threads: int = 2, limits: FrontLimits | None = None) -> Iterator[int]:
    """`app` served by atlas's HTTP front on a free port of 127.0.0.1 (in this process); yields the port."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    front = Front(app, [listener], threads=threads, limits=limits)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            front.poll(0.05)
        front.stop(2)

    thread = threading.Thread(target=loop, name="atlas-front", daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=10)


@dataclass
class RunningAtlas:
    """One atlas server under test and the handles a test needs to drive and inspect it."""

    url: str
    app: Flask
    settings: Settings
    log_file: Path
    emulator: GitHubEmulator
    secret: str | None
    _server: BaseWSGIServer = field(repr=False)

    def deliver(
        self,
        event: str,
        payload: dict[str, Any] | bytes,
        *,
        delivery_id: str | None = None,
        secret: str | bool | None = True,
        **kwargs: Any,
    ) -> requests.Response:
        """Send a delivery signed with the server's secret (secret=False/None sends it unsigned)."""
        key = self.secret if secret is True else (secret or None)
        return deliver(f"{self.url}/events", event, payload, secret=key, delivery_id=delivery_id, **kwargs)

    def pull_event(self, pull: EmulatedPull, action: str = "opened", **kwargs: Any) -> requests.Response:
        return self.deliver("pull_request", webhook_payload("pull_request", pull, action), **kwargs)

    def wait_idle(self, timeout: float = 120) -> None:
        queue = self.app.config["ATLAS_QUEUE"]
        assert isinstance(queue, EmbeddedQueue)
        assert queue.wait_idle(timeout), f"atlas still busy after {timeout} s"

    def log_text(self) -> str:
        return self.log_file.read_text() if self.log_file.exists() else ""

    def stop(self) -> None:
        self._server.shutdown()
        queue = self.app.config["ATLAS_QUEUE"]
        queue.shutdown(wait=True)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    """Where fixture repositories keep their terraform state: shared by every clone, like S3."""
    path = tmp_path / "tfstate"
    path.mkdir()
    return path


@pytest.fixture
def fixture_repo(github_emulator: GitHubEmulator, state_dir: Path) -> Callable[..., EmulatedRepo]:
    def create(fixture: str, full_name: str = "acme/infra") -> EmulatedRepo:
        return github_emulator.create_repo(
            full_name, source_dir=FIXTURES / fixture, substitutions={"__STATE_DIR__": str(state_dir)}
        )

    return create


@pytest.fixture
def start_atlas(
    tmp_path: Path, github_emulator: GitHubEmulator, state_dir: Path
) -> Iterator[Callable[..., RunningAtlas]]:
    servers: list[RunningAtlas] = []
    handlers: list[logging.Handler] = []
    require_sandbox()

    def start(*, reachable: tuple[Path | str, ...] = (), **overrides: Any) -> RunningAtlas:
        """`reachable` are more host paths for the sandbox (`--sandbox-paths`), as `PATH` or `PATH:ro`."""
        values: dict[str, Any] = {
            "data_dir": tmp_path / f"atlas-data-{len(servers)}",
            "gh_token": github_emulator.token,
            "gh_api_url": github_emulator.api_url,
            "gh_webhook_secret": WEBHOOK_SECRET,
            "repo_allowlist": "*",
            "gh_user": github_emulator.bot_login,
            "parallel_pool_size": 4,
            # Fixed, so links in comments (and the golden files) do not depend on the machine's name.
            "atlas_url": "https://atlas.example.test",
            "sandbox": "required",
            "sandbox_paths": ",".join(map(str, (state_dir, *reachable))),
        }
        values.update(overrides)
        settings = load_settings({k: v for k, v in values.items() if v is not None}, env={})
        # Unredacted on purpose: a leak must show up here, not hide behind the redaction filter.
        log_file = tmp_path / f"atlas-{len(servers)}.log"
        handler = logging.FileHandler(log_file)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        logging.getLogger("atlas").addHandler(handler)
        logging.getLogger("atlas").setLevel(logging.DEBUG)
        handlers.append(handler)
        app = create_app(settings)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        running = RunningAtlas(
            url=f"http://127.0.0.1:{server.server_port}",
            app=app,
            settings=settings,
            log_file=log_file,
            emulator=github_emulator,
            secret=values.get("gh_webhook_secret"),
            _server=server,
        )
        servers.append(running)
        return running

    yield start
    for running in servers:
        running.stop()
    for handler in handlers:
        logging.getLogger("atlas").removeHandler(handler)
        handler.close()


def normalise(text: str, *, data_dir: Path | None = None, extra: dict[str, str] | None = None) -> str:
    """Comment text with what changes from run to run replaced by stable placeholders."""
    for old, new in (extra or {}).items():
        text = text.replace(old, new)
    if data_dir is not None:
        text = text.replace(str(data_dir), "<DATA_DIR>")
    text = re.sub(r"\b[0-9a-f]{40}\b", "<SHA>", text)
    text = re.sub(r"\b[0-9a-f]{7}\b(?=`| )", "<SHORT_SHA>", text)
    text = re.sub(r"\bjob [0-9a-f]{16}\b", "job <JOB_ID>", text)
    text = re.sub(r"/jobs/[0-9a-f]{16}\b", "/jobs/<JOB_ID>", text)
    text = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<PORT>", text)
    text = re.sub(r"\b\d+(\.\d+)?(ms|s)\b", "<DURATION>", text)
    return text


def assert_golden(text: str, path: Path) -> None:
    """Compare with a golden file; ATLAS_UPDATE_GOLDEN=1 rewrites it (review the diff in git)."""
    import os

    if os.environ.get("ATLAS_UPDATE_GOLDEN") == "1" or not path.exists():
        if not path.exists() and os.environ.get("CI"):
            pytest.fail(f"golden file {path} is missing; run the tests with ATLAS_UPDATE_GOLDEN=1 and commit it")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return
    expected = path.read_text()
    assert text == expected, f"comment differs from golden file {path.relative_to(REPO_ROOT)}"
