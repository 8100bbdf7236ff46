"""`POST /api/plan` and `/api/apply` in Atlantis's request shape: token checks, JSON answers, real runs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from atlas.commands.interrupted import report_interrupted
from atlas.models import ApiPath, ApiRun, CommandName, Job, JobStatus
from tests.atlas_plugin import RunningAtlas, wait_for
from tests.commands_world import DEVELOPER, REPO, app_change, bot_comments, lock_holders, open_and_plan
from tests.emulator import EmulatedRepo, GitHubEmulator
from tests.scale_world import SlowTerraform

Start = Callable[..., RunningAtlas]
SECRET = "api-secret-for-tests"
PLAN_APP = {"Repository": REPO, "Ref": "main", "Type": "Github",
            "Paths": [{"Directory": "app", "Workspace": "default"}], "PR": 0}


@pytest.fixture(autouse=True)
def repo(fixture_repo: Callable[..., EmulatedRepo]) -> EmulatedRepo:
    return fixture_repo("multi-project")


def call(atlas: RunningAtlas, command: str, body: Any, token: str | None = SECRET,
         header: str = "X-Atlas-Token", prefer: str | None = None) -> requests.Response:
    headers = {header: token} if token is not None else {}
    if prefer is not None:
        headers["Prefer"] = prefer
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return requests.post(f"{atlas.url}/api/{command}", data=data, timeout=120,
                         headers={"Content-Type": "application/json", **headers})


def job_state(atlas: RunningAtlas, path: str, token: str | None = SECRET) -> requests.Response:
    headers = {"X-Atlas-Token": token} if token is not None else {}
    return requests.get(f"{atlas.url}{path}", headers=headers, timeout=30)


def finished_job(atlas: RunningAtlas, path: str) -> dict[str, Any]:
    """`GET path` once the job it names has finished."""
    answers: list[dict[str, Any]] = []

    def finished() -> bool:
        answers.append(job_state(atlas, path).json())
        return answers[-1]["Status"] not in ("queued", "running")

    wait_for(finished, 120, f"the job at {path} finishing")
    return answers[-1]


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


def test_respond_async_answers_202_and_the_job_answers_the_same_result_once_done(start_atlas: Start) -> None:
    atlas = start_atlas(api_secret=SECRET)
    accepted = call(atlas, "plan", PLAN_APP, prefer="respond-async")
    assert accepted.status_code == 202, accepted.text
    assert accepted.headers["Preference-Applied"] == "respond-async"
    job_id = accepted.json()["JobID"]
    assert accepted.headers["Location"] == f"/api/jobs/{job_id}"
    assert accepted.json()["StatusURL"] == f"https://atlas.example.test/api/jobs/{job_id}"

    done = finished_job(atlas, f"/api/jobs/{job_id}")
    assert (done["Status"], done["ResultStatus"], done["Command"], done["Repository"]) == (
        "succeeded", 200, "plan", REPO)
    assert done["StartedAt"] and done["FinishedAt"]
    [project] = done["Result"]["ProjectResults"]
    assert (project["Directory"], project["Status"], project["Summary"]["Add"]) == ("app", "succeeded", 1)
    waited = call(atlas, "plan", PLAN_APP)  # the default still waits, and answers in the same shape
    assert waited.status_code == 200 and set(waited.json()) == set(done["Result"])


def test_a_run_that_fails_in_its_job_keeps_its_reason_for_the_job_state(start_atlas: Start) -> None:
    atlas = start_atlas(api_secret=SECRET)
    accepted = call(atlas, "plan", {"Repository": REPO, "Ref": "main", "Projects": ["nope"]}, prefer="respond-async")
    assert accepted.status_code == 202
    done = finished_job(atlas, accepted.headers["Location"])
    assert (done["Status"], done["ResultStatus"]) == ("failed", 400)
    assert "no project named 'nope'" in done["Result"]["Error"]


def test_job_states_are_behind_the_token_and_unknown_ids_get_404(start_atlas: Start) -> None:
    atlas = start_atlas(api_secret=SECRET)
    location = call(atlas, "plan", PLAN_APP, prefer="respond-async").headers["Location"]
    assert job_state(atlas, location, token=None).status_code == 401
    assert job_state(atlas, location, token="wrong").status_code == 401
    for unknown in ("0123456789abcdef", "not-a-job-id"):
        answer = job_state(atlas, f"/api/jobs/{unknown}")
        assert answer.status_code == 404 and unknown in answer.json()["Error"]
    assert job_state(start_atlas(), location).status_code == 404  # no API without --api-secret
    finished_job(atlas, location)


def test_an_api_plan_of_a_pull_request_waits_for_the_command_it_runs(
    start_atlas: Start, github_emulator: GitHubEmulator, tmp_path: Path,
) -> None:
    slow = SlowTerraform.create(tmp_path / "slow-terraform", seconds=5)
    atlas = start_atlas(api_secret=SECRET, terraform_bin=str(slow.binary), reachable=(slow.binary.parent,))
    pull = github_emulator.open_pull(REPO, "more-replicas", app_change(3), author=DEVELOPER)
    assert atlas.pull_event(pull).status_code == 202
    wait_for(slow.started.exists, 60, "the autoplan's slow plan starting")

    answer = call(atlas, "plan", {**PLAN_APP, "Ref": "more-replicas", "PR": pull.number})
    assert answer.status_code == 200, answer.text
    assert answer.json()["Success"] is True and answer.json()["PR"] == pull.number
    api_job = job_state(atlas, f"/api/jobs/{answer.json()['JobURL'].rsplit('/', 1)[1]}").json()
    [autoplan] = [record for record in atlas.app.config["ATLAS_CONTEXT"].state.jobs(limit=20)
                  if record.job.command == "autoplan"]
    assert autoplan.finished_at is not None
    assert autoplan.finished_at.isoformat() <= api_job["StartedAt"], "the API plan ran beside the autoplan"
    assert lock_holders(atlas) == {"app/default": pull.number}


def test_an_interrupted_api_run_answers_that_it_can_be_sent_again_and_says_nothing_on_the_pull_request(
    start_atlas: Start, github_emulator: GitHubEmulator,
) -> None:
    atlas = start_atlas(api_secret=SECRET)
    pull = open_and_plan(atlas, github_emulator, "holder", app_change(3))
    ctx = atlas.app.config["ATLAS_CONTEXT"]
    job = Job(command=CommandName.PLAN, pull=ctx.vcs.get_pull(ctx.vcs.get_repo(REPO), pull.number), requested_by="api",
              api=ApiRun(ref="holder", paths=(ApiPath(dir="app"),)))
    ctx.state.save_job(job, JobStatus.RUNNING)
    said = bot_comments(github_emulator, pull)

    report_interrupted(ctx, job, "The atlas worker running this command stopped")
    state = job_state(atlas, f"/api/jobs/{job.id}").json()
    assert (state["Status"], state["ResultStatus"]) == ("interrupted", 503)
    assert "send the request again" in state["Result"]["Error"]
    assert bot_comments(github_emulator, pull) == said
