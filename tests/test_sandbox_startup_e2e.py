"""What an operator is told about the sandbox: the start-up line, the refusal, the warnings on /status and the pages.

Real `atlas server` processes; a host without bubblewrap is one whose PATH has no `bwrap`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests
from selenium.webdriver.common.by import By

from tests.atlas_plugin import REPO_ROOT

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.scale_world import ScaleWorld

pytest_plugins = ["tests.scale_world"]


def path_without_bubblewrap(directory: Path) -> str:
    """A PATH with git and terraform (what a server needs) but no bwrap."""
    directory.mkdir(parents=True, exist_ok=True)
    for tool in ("git", "terraform", "sh"):
        found = shutil.which(tool)
        assert found, f"{tool} is not on PATH"
        (directory / tool).symlink_to(found)
    return str(directory)


def test_the_start_up_line_says_which_isolation_is_in_force(embedded_world: ScaleWorld) -> None:
    server = embedded_world.start_server()

    started = next(line for line in server.log_text().splitlines() if "starting server" in line)
    assert "sandbox=required" in started
    assert 'isolation="bubblewrap ' in started and "writable: the job's working copy only" in started
    assert "SECURITY" not in server.log_text()


def test_required_without_bubblewrap_refuses_to_start_and_says_what_to_install(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("ATLAS_")}
    env.update(PATH=path_without_bubblewrap(tmp_path / "bin"), PYTHONPATH=str(REPO_ROOT), HOME=str(tmp_path),
               ATLAS_GH_TOKEN="ghp_startup0123456789", ATLAS_GH_WEBHOOK_SECRET="startup-secret")

    done = subprocess.run([sys.executable, "-m", "atlas", "server", "--data-dir", str(tmp_path / "data"),
                           "--sandbox", "required"], env=env, capture_output=True, text=True, timeout=60)

    assert done.returncode == 2
    assert done.stderr.startswith("atlas: error: --sandbox required, but bubblewrap (bwrap) is not installed: "
                                  "install bubblewrap (Debian and Ubuntu: apt-get install bubblewrap")
    assert "ghp_startup" not in done.stderr


def test_auto_without_bubblewrap_warns_in_the_log_on_status_and_on_every_page(
    embedded_world: ScaleWorld, open_browser: Callable[..., Any],
) -> None:
    server = embedded_world.start_server(
        sandbox="auto", env={"PATH": path_without_bubblewrap(embedded_world.root / "bin")})

    log = server.log_text()
    assert "WARNING atlas.startup SECURITY: pull-request code runs WITHOUT a sandbox because bubblewrap (bwrap) is " \
           "not installed" in log
    assert 'isolation="none (--sandbox auto, and bubblewrap (bwrap) is not installed' in log
    status = requests.get(f"{server.url}/status", timeout=10).json()["sandbox"]
    assert (status["mode"], status["confined"]) == ("auto", False)
    assert "WITHOUT a sandbox" in status["warning"] and "--sandbox off" in status["warning"]

    browser = open_browser()
    for page in ("/", "/drift", "/audit"):
        browser.get(f"{server.url}{page}")
        banner = browser.find_element(By.CSS_SELECTOR, ".security-warning")
        assert banner.is_displayed() and "WITHOUT a sandbox" in banner.text, page


def test_off_is_said_plainly_without_a_warning(embedded_world: ScaleWorld, open_browser: Callable[..., Any]) -> None:
    server = embedded_world.start_server(sandbox="off")

    assert 'isolation="none (--sandbox off)' in server.log_text()
    assert "SECURITY" not in server.log_text()
    status = requests.get(f"{server.url}/status", timeout=10).json()["sandbox"]
    assert (status["mode"], status["confined"], status["warning"]) == ("off", False, None)
    browser = open_browser()
    browser.get(f"{server.url}/")
    assert browser.find_elements(By.CSS_SELECTOR, ".security-warning") == []
