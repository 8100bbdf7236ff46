"""`GET /status`: what the server is doing, as JSON for people and scripts."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
import requests

from atlas import __version__
from atlas.models import JobStatus
from tests.atlas_plugin import RunningAtlas
from tests.commands_world import DEVELOPER, REPO, app_change, open_and_plan
from tests.emulator import EmulatedRepo, GitHubEmulator

if TYPE_CHECKING:
    from tests.web_plugin import GatedTerraform

pytest_plugins = ["tests.web_plugin"]

Start = Callable[..., RunningAtlas]


@pytest.fixture
def repo(fixture_repo: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator) -> EmulatedRepo:
    created = fixture_repo("multi-project")
    github_emulator.set_permission(REPO, DEVELOPER, "write")
    return created


def status(atlas: RunningAtlas) -> dict[str, Any]:
    response = requests.get(f"{atlas.url}/status", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert isinstance(body, dict)
    return body


@pytest.mark.usefixtures("repo")
def test_status_of_an_idle_server_counts_its_locks(start_web_atlas: Start, github_emulator: GitHubEmulator) -> None:
    atlas = start_web_atlas()
    open_and_plan(atlas, github_emulator, "first", app_change(3))
    body = status(atlas)
    sandbox = body.pop("sandbox")
    # The embedded queue's job threads: max(4, --parallel-pool-size), which start_atlas sets to 4.
    assert body == {"version": __version__, "queue": "embedded", "queue_depth": 0, "running_jobs": [],
                    "workers": 4, "workers_busy": 0, "web_processes": 1, "locks": 1}
    assert (sandbox["mode"], sandbox["confined"], sandbox["warning"]) == ("required", True, None)
    assert sandbox["isolation"].startswith("bubblewrap ")


@pytest.mark.usefixtures("repo")
def test_status_lists_the_running_job_and_what_waits_behind_it(
    start_web_atlas: Start, gated_terraform: GatedTerraform, github_emulator: GitHubEmulator,
) -> None:
    atlas = start_web_atlas(terraform_bin=gated_terraform.path, reachable=(f"{gated_terraform.gates}:ro",))
    pull = github_emulator.open_pull(REPO, "slow", app_change(3), author=DEVELOPER)
    assert atlas.pull_event(pull).status_code == 202
    assert atlas.pull_event(pull, "synchronize").status_code == 202  # waits behind the first plan
    state = atlas.app.config["ATLAS_STATE"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not state.jobs(statuses=(JobStatus.RUNNING,)):
        time.sleep(0.05)

    body = status(atlas)
    [running] = body["running_jobs"]
    assert set(running) == {"id", "command", "pull", "started_at"}
    assert (running["command"], running["pull"]) == ("autoplan", f"{REPO}#{pull.number}")
    assert running["id"] == state.jobs(statuses=(JobStatus.RUNNING,))[0].job.id
    assert body["queue_depth"] == 1
    assert body["workers_busy"] == 1
    gated_terraform.open(1)
    gated_terraform.open(2)
    atlas.wait_idle()
    assert status(atlas)["running_jobs"] == []
