"""`POST /api/plan` and `/api/apply` in Atlantis's request shape: token checks, JSON answers, real runs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.atlas_plugin import RunningAtlas
from tests.commands_world import REPO, app_change, lock_holders, open_and_plan
from tests.emulator import EmulatedRepo, GitHubEmulator

Start = Callable[..., RunningAtlas]
SECRET = "api-secret-for-tests"
PLAN_APP = {"Repository": REPO, "Ref": "main", "Type": "Github",
            "Paths": [{"Directory": "app", "Workspace": "default"}], "PR": 0}


@pytest.fixture(autouse=True)
def repo(fixture_repo: Callable[..., EmulatedRepo]) -> EmulatedRepo:
    return fixture_repo("multi-project")


def call(atlas: RunningAtlas, command: str, body: Any, token: str | None = SECRET,
         header: str = "X-Atlas-Token") -> requests.Response:
    headers = {header: token} if token is not None else {}
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return requests.post(f"{atlas.url}/api/{command}", data=data, timeout=120,
                         headers={"Content-Type": "application/json", **headers})


def test_the_api_does_not_exist_without_a_secret(start_atlas: Start) -> None:
    response = call(start_atlas(), "plan", PLAN_APP)
    assert response.status_code == 404
    assert "--api-secret" in response.json()["Error"]


@pytest.mark.parametrize("token", [None, "wrong"])
def test_a_missing_or_wrong_token_gets_401(start_atlas: Start, token: str | None) -> None:
    response = call(start_atlas(api_secret=SECRET), "plan", PLAN_APP, token=token)
    assert response.status_code == 401


@pytest.mark.parametrize("body,reason", [
    ("not json", "JSON object"),
    ({"Ref": "main", "Paths": [{"Directory": "app"}]}, "Repository"),
    ({"Repository": "acme", "Ref": "main", "Paths": [{"Directory": "app"}]}, "Repository"),
    ({"Repository": REPO, "Ref": "main"}, "Paths"),
    ({"Repository": REPO, "Ref": "main", "Type": "Gitlab", "Paths": [{"Directory": "app"}]}, "not supported"),
    ({"Repository": REPO, "Ref": "main", "Paths": [{"Directory": "../etc"}]}, "leaves the repository"),
    ({"Repository": REPO, "Ref": "main", "Projects": ["nope"]}, "no project named"),
])
def test_a_bad_body_gets_400_with_the_reason(start_atlas: Start, body: Any, reason: str) -> None:
    response = call(start_atlas(api_secret=SECRET), "plan", body)
    assert response.status_code == 400, response.text
    assert reason in response.json()["Error"]


def test_an_unknown_ref_or_repository_gets_a_4xx_with_the_reason(start_atlas: Start) -> None:
    atlas = start_atlas(api_secret=SECRET)
    response = call(atlas, "plan", {**PLAN_APP, "Ref": "no-such-branch"})
    assert response.status_code == 400 and "no-such-branch" in response.json()["Error"]
    response = call(atlas, "plan", {**PLAN_APP, "Repository": "acme/missing"})
    assert response.status_code == 404 and "acme/missing" in response.json()["Error"]


def test_a_repository_outside_the_allowlist_gets_403(start_atlas: Start) -> None:
    response = call(start_atlas(api_secret=SECRET, repo_allowlist="github.com/other/*"), "plan", PLAN_APP)
    assert response.status_code == 403


def test_plan_then_apply_a_ref_through_the_api(start_atlas: Start, state_dir: Path) -> None:
    atlas = start_atlas(api_secret=SECRET)
    planned = call(atlas, "plan", PLAN_APP, header="X-Atlantis-Token")  # Atlantis scripts work unchanged
    assert planned.status_code == 200, planned.text
    answer = planned.json()
    assert answer["Success"] is True and answer["Ref"] == "main" and len(answer["Sha"]) == 40
    [project] = answer["ProjectResults"]
    assert (project["Directory"], project["Workspace"], project["Status"]) == ("app", "default", "succeeded")
    assert project["Summary"] == {"Add": 1, "Change": 0, "Destroy": 0, "Import": 0}
    assert "terraform_data.service will be created" in project["Output"]
    assert answer["JobURL"].endswith("/jobs/" + answer["JobURL"].rsplit("/", 1)[1])

    applied = call(atlas, "apply", PLAN_APP).json()
    assert applied["Success"] is True
    assert applied["ProjectResults"][0]["Summary"]["Add"] == 1
    assert (state_dir / "multi-project/app.tfstate").exists()

    audit = requests.get(f"{atlas.url}/api/audit", params={"repo": REPO}, headers={"X-Atlas-Token": SECRET},
                         timeout=10).json()["entries"]
    assert [(e["action"], e["trigger"], e["outcome"]) for e in audit[:2]] == [
        ("apply", "api", "succeeded"), ("plan", "api", "succeeded")]


def test_apply_without_a_plan_reports_it_per_project(start_atlas: Start) -> None:
    answer = call(start_atlas(api_secret=SECRET), "apply", PLAN_APP).json()
    assert answer["Success"] is False
    assert "POST /api/plan first" in answer["ProjectResults"][0]["Error"]


def test_apply_refuses_a_project_a_pull_request_holds(start_atlas: Start, github_emulator: GitHubEmulator) -> None:
    atlas = start_atlas(api_secret=SECRET)
    pull = open_and_plan(atlas, github_emulator, "holder", app_change(3))
    assert lock_holders(atlas) == {"app/default": pull.number}
    call(atlas, "plan", PLAN_APP)
    answer = call(atlas, "apply", PLAN_APP).json()
    assert answer["ProjectResults"][0]["Status"] == "locked"
    assert f"#{pull.number}" in answer["ProjectResults"][0]["Error"]
