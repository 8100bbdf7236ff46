"""Fixtures for the web pages: an atlas server with `atlas.web` added, and a real headless Chromium.

`start_web_atlas(**settings)` is `start_atlas`: a real atlas server over HTTP in front of the GitHub
emulator. `open_browser(width, height)` drives /usr/bin/chromium through chromedriver (selenium),
each browser with its own profile under the test's tmp_path.
"""

from __future__ import annotations

import base64
import shutil
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver

from tests.atlas_plugin import RunningAtlas

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

@pytest.fixture
def start_web_atlas(start_atlas: Callable[..., RunningAtlas]) -> Callable[..., RunningAtlas]:
    """`start_atlas` (every atlas server serves the pages) on a plain-http --atlas-url, since the
    pages' cookies are `Secure` behind an https one and the test browser speaks http."""

    def start(**overrides: Any) -> RunningAtlas:
        return start_atlas(**{"atlas_url": "http://127.0.0.1", **overrides})

    return start


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
