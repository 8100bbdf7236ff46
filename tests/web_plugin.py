"""Fixtures for the web pages: an atlas server with `atlas.web` added, and a real headless Chromium.

`start_web_atlas(**settings)` is `start_atlas` plus `atlas.web.init_app`, over real HTTP in front of
the GitHub emulator. `open_browser(width, height)` drives /usr/bin/chromium through chromedriver
(selenium), each browser with its own profile under the test's tmp_path.

Until atlas's own `Settings` and `SQLiteStateStore` have the web settings and the job output
methods, the fixture uses the small extensions below, which show exactly what they must add.
"""

from __future__ import annotations

import base64
import logging
import shutil
import sqlite3
import stat
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from werkzeug.serving import make_server

from atlas import web
from atlas.app import create_app
from atlas.context import build_context
from atlas.metrics import MeteredVCSClient
from atlas.models import utcnow
from atlas.settings import Group, Settings, load_settings, setting
from atlas.sqlite import SQLiteDatabase
from atlas.state import SQLiteStateStore
from atlas.web.output import JobOutputStore
from atlas.web.site import EXTENSION
from tests.atlas_plugin import WEBHOOK_SECRET, RunningAtlas
from tests.emulator import GitHubEmulator

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
)
INSTALL_CHROMIUM = "install chromium and chromium-driver (apt-get install chromium chromium-driver)"

WEB_SETTINGS = ("web_username", "web_password", "job_log_retention_days")


class SettingsWithWeb(Settings):
    """`Settings` with the three web settings, declared as `atlas/settings.py` should declare them."""

    web_username: str | None = setting(
        None,
        "Username the web pages, /status and /metrics ask for (HTTP basic auth) when --web-password is set too. "
        "/events and /healthz never ask.",
        Group.SERVER,
        metavar="USER",
        example="operator",
    )
    web_password: SecretStr | None = setting(
        None,
        "Password of --web-username; serve atlas over TLS when you set it.",
        Group.SERVER,
        metavar="PASSWORD",
        example="a-long-random-password",
    )
    job_log_retention_days: int = setting(
        30, "Days atlas keeps the output of finished jobs for their pages.", Group.SERVER, metavar="DAYS", ge=1
    )


_JOB_OUTPUT_SCHEMA = """
CREATE TABLE IF NOT EXISTS job_output (
    job_id TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS job_output_by_age ON job_output (updated_at);
"""


class StateStoreWithJobOutput(SQLiteStateStore):
    """`SQLiteStateStore` plus `JobOutputStore`: what `atlas/state.py` should add (table and three methods)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._output_db = SQLiteDatabase(path, _JOB_OUTPUT_SCHEMA)

    def append_job_output(self, job_id: str, text: str) -> None:
        with self._output_db.transaction() as db:
            db.execute(
                "INSERT INTO job_output (job_id, text, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (job_id) DO UPDATE SET text = job_output.text || excluded.text,"
                " updated_at = excluded.updated_at",
                (job_id, text, utcnow().isoformat()),
            )

    def job_output(self, job_id: str) -> str | None:
        row = self._output_db.connection().execute(
            "SELECT text FROM job_output WHERE job_id = ?", (job_id,)
        ).fetchone()
        return str(row[0]) if row else None

    def expire_job_output(self, before: datetime) -> int:
        with self._output_db.transaction() as db:
            cursor: sqlite3.Cursor = db.execute("DELETE FROM job_output WHERE updated_at < ?", (before.isoformat(),))
            return cursor.rowcount


def web_settings(values: dict[str, Any]) -> Settings:
    """Settings from flag-like values, with the web settings whether or not `Settings` has them yet."""
    if all(name in Settings.model_fields for name in WEB_SETTINGS):
        return load_settings(values, env={})
    web_values = {name: values.pop(name) for name in WEB_SETTINGS if name in values}
    return SettingsWithWeb.model_validate({**load_settings(values, env={}).model_dump(), **web_values})


@pytest.fixture
def start_web_atlas(tmp_path: Path, github_emulator: GitHubEmulator) -> Iterator[Callable[..., RunningAtlas]]:
    """Start atlas servers with the web pages; each is stopped when the test ends."""
    servers: list[RunningAtlas] = []
    handlers: list[logging.Handler] = []

    def start(**overrides: Any) -> RunningAtlas:
        values: dict[str, Any] = {
            "data_dir": tmp_path / f"web-atlas-data-{len(servers)}",
            "gh_token": github_emulator.token,
            "gh_api_url": github_emulator.api_url,
            "gh_webhook_secret": WEBHOOK_SECRET,
            "repo_allowlist": "*",
            "gh_user": github_emulator.bot_login,
            "parallel_pool_size": 4,
        }
        values.update(overrides)
        settings = web_settings({k: v for k, v in values.items() if v is not None})
        log_file = tmp_path / f"web-atlas-{len(servers)}.log"
        handler = logging.FileHandler(log_file)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        logging.getLogger("atlas").addHandler(handler)
        logging.getLogger("atlas").setLevel(logging.DEBUG)
        handlers.append(handler)

        settings.data_dir.mkdir(parents=True, exist_ok=True)
        ctx = build_context(settings)
        if not isinstance(ctx.state, JobOutputStore):
            ctx.state = StateStoreWithJobOutput(settings.data_dir / "atlas.db")
        if not isinstance(ctx.vcs, MeteredVCSClient):
            ctx.vcs = MeteredVCSClient(ctx.vcs)
        app = create_app(settings, context=ctx)
        if EXTENSION not in app.extensions:  # create_app does not add the pages yet
            web.init_app(app, ctx, app.config["ATLAS_QUEUE"], settings)  # type: ignore[arg-type, unused-ignore]
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


def chromium_paths() -> tuple[str, str]:
    """The Chromium binary and its chromedriver, or a test failure saying how to install them."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        pytest.fail(f"chromium or chromedriver is not on PATH: {INSTALL_CHROMIUM}", pytrace=False)
    return browser, driver


@pytest.fixture
def open_browser(tmp_path: Path) -> Iterator[Callable[..., WebDriver]]:
    """Open headless Chromium windows: `open_browser(width=1280, height=900, username=None, password=None)`."""
    browser, driver_path = chromium_paths()
    drivers: list[WebDriver] = []

    def open_window(width: int = 1280, height: int = 900, *, username: str | None = None,
                    password: str | None = None) -> WebDriver:
        options = webdriver.ChromeOptions()
        options.binary_location = browser
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--window-size={width},{height}")
        options.add_argument(f"--user-data-dir={tmp_path / f'chromium-profile-{len(drivers)}'}")
        driver = webdriver.Chrome(service=Service(driver_path), options=options)
        drivers.append(driver)
        driver.set_page_load_timeout(30)
        # Headless windows are at least 500 px wide; a phone's viewport is emulated exactly instead
        # (as a mobile one, so that a page without a viewport meta tag would render 980 px wide).
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600,
        })
        if username is not None:
            # Sent with every request, the page's own and its stylesheet's and event stream's alike.
            credentials = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
            driver.execute_cdp_cmd("Network.enable", {})
            headers = {"Authorization": f"Basic {credentials}"}
            driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": headers})
        return driver

    yield open_window
    for driver in drivers:
        driver.quit()



GATE_SECONDS = 60
"""How long the gated terraform waits at a gate before going on by itself (a test that failed)."""


@dataclass
class GatedTerraform:
    """A terraform whose `plan` prints `plan step 1`, waits at gate 1, prints steps 2 to 4, waits at gate 2.

    A test opens the gates when it has seen what it wants, so it never races terraform's timing.
    """

    path: str
    gates: Path

    def open(self, gate: int) -> None:
        (self.gates / f"gate-{gate}").touch()


@pytest.fixture
def gated_terraform(tmp_path: Path) -> Iterator[GatedTerraform]:
    real = shutil.which("terraform")
    if real is None:
        pytest.fail("terraform is not on PATH: install terraform 1.11", pytrace=False)
    directory = tmp_path / "gated-terraform"
    directory.mkdir()
    wait = "i=0; while [ ! -e {gate} ] && [ $i -lt {ticks} ]; do sleep 0.05; i=$((i+1)); done"
    ticks = GATE_SECONDS * 20
    script = directory / "terraform"
    script.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = plan ]; then\n'
        "  echo 'plan step 1'\n"
        f"  {wait.format(gate=directory / 'gate-1', ticks=ticks)}\n"
        "  echo 'plan step 2'; echo 'plan step 3'; echo 'plan step 4'\n"
        f"  {wait.format(gate=directory / 'gate-2', ticks=ticks)}\n"
        "fi\n"
        f'exec {real} "$@"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    gated = GatedTerraform(path=str(script), gates=directory)
    yield gated
    # Never leave a plan waiting behind a failed test: the server's shutdown waits for its jobs.
    gated.open(1)
    gated.open(2)
