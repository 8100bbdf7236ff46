"""Check runs through PyGithub against the emulator, and the check events that ask atlas to run."""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from github import Auth, Github

from atlas.github.app_auth import AppCredentials, GitHubApp
from atlas.github.checks import (
    ANNOTATIONS_PER_REQUEST,
    APPLY_ACTION,
    OUTPUT_MAX_CHARS,
    Annotation,
    AnnotationLevel,
    CheckAction,
    CheckConclusion,
    CheckEventError,
    CheckOutput,
    CheckRequest,
    CheckRuns,
    CheckStatus,
    IgnoredCheckEvent,
    ProjectCheck,
    annotations_from_diagnostics,
    diagnostics_from_json_lines,
    fenced,
    fit_text,
    parse_check_event,
)
from atlas.vcs import VCSError
from tests.conftest import require_binary
from tests.emulator import EmulatedPull, GitHubEmulator
from tests.emulator.app import DATA_DIR, GitHubAppEmulator

REPO = "acme/infra"
JOB_URL = "https://atlas.example.com/jobs/42"
PLAN_CHECK = ProjectCheck("plan", "envs/prod", "default")


@pytest.fixture
def world(github_emulator: GitHubEmulator) -> Iterator[tuple[GitHubAppEmulator, GitHubApp, EmulatedPull]]:
    github_emulator.create_repo(REPO, files={"envs/prod/main.tf": 'resource "terraform_data" "x" {}\n'})
    pull = github_emulator.open_pull(REPO, "change", {"envs/prod/main.tf": 'resource "terraform_data" "y" {}\n'})
    app_emulator = GitHubAppEmulator(github_emulator)
    app_emulator.install("acme")
    app = GitHubApp(AppCredentials(app_emulator.app_id, app_emulator.private_key_pem), github_emulator.api_url)
    yield app_emulator, app, pull
    app.close()


@pytest.fixture
def checks(world: tuple[GitHubAppEmulator, GitHubApp, EmulatedPull]) -> Iterator[CheckRuns]:
    _, app, _ = world
    installation = app.installation_id(REPO)
    client = app.github(installation, retry=None)
    yield CheckRuns(client, call=lambda action: app.call(installation, action))
    client.close()


def only_run(app_emulator: GitHubAppEmulator) -> dict[str, Any]:
    runs = app_emulator.check_runs(REPO)
    assert len(runs) == 1
    return runs[0]


# Creating and updating


def test_a_check_run_goes_from_queued_to_in_progress_to_completed(
    world: tuple[GitHubAppEmulator, GitHubApp, EmulatedPull], checks: CheckRuns
) -> None:
    app_emulator, _, pull = world
    created = checks.create(REPO, PLAN_CHECK, pull.head_sha)
    assert created.name == "atlas/plan: envs/prod/default"
    assert created.status is CheckStatus.QUEUED and created.conclusion is None
    assert created.project == PLAN_CHECK
    assert only_run(app_emulator)["status"] == "queued"

    checks.start(REPO, created.id, details_url=JOB_URL)
    assert only_run(app_emulator)["status"] == "in_progress"
    assert only_run(app_emulator)["details_url"] == JOB_URL

    output = CheckOutput("Plan: 1 to add, 0 to change, 0 to destroy.", "1 to add", "```diff\n+ terraform_data.y\n```")
    done = checks.complete(REPO, created.id, CheckConclusion.SUCCESS, output, actions=[APPLY_ACTION])
    assert done.status is CheckStatus.COMPLETED and done.conclusion is CheckConclusion.SUCCESS
    stored = only_run(app_emulator)
    assert stored["output"] == {"title": output.title, "summary": "1 to add", "text": output.text}
    assert stored["actions"] == [{"label": "Apply", "description": APPLY_ACTION.description, "identifier": "apply"}]

    read = checks.get(REPO, created.id)
    assert read.summary == "1 to add" and read.conclusion is CheckConclusion.SUCCESS
    listed = checks.for_ref(REPO, pull.head_sha)
    assert [run.id for run in listed] == [created.id]
    assert checks.for_ref(REPO, "change", check_name="atlas/plan: envs/prod/default")[0].id == created.id
    assert checks.for_ref(REPO, pull.head_sha, check_name="atlas/apply: envs/prod/default") == []


def test_completing_without_actions_removes_the_apply_button(
    world: tuple[GitHubAppEmulator, GitHubApp, EmulatedPull], checks: CheckRuns
) -> None:
    app_emulator, _, pull = world
    run = checks.create(REPO, PLAN_CHECK, pull.head_sha, output=CheckOutput("Planned", "ok"), actions=[APPLY_ACTION])
    checks.complete(REPO, run.id, CheckConclusion.NEUTRAL, CheckOutput("Applied", "applied"))
    assert only_run(app_emulator)["actions"] == []


def test_project_names_and_workspaces_name_the_run_like_the_commit_status() -> None:
    assert ProjectCheck("apply", "modules/vpc", "staging").name == "atlas/apply: modules/vpc/staging"
    assert ProjectCheck("plan", "x", "default", "network").name == "atlas/plan: network"
    odd = ProjectCheck("policy_check", "a&b=c/d:e f", "ws?1", "n&m")
    assert ProjectCheck.from_external_id(odd.external_id) == odd
    assert ProjectCheck.from_external_id("lgtm|26764") is None
    assert ProjectCheck.from_external_id("") is None
    with pytest.raises(ValueError, match="not 'destroy'"):
        ProjectCheck("destroy", ".")


def test_action_buttons_are_held_to_githubs_limits() -> None:
    with pytest.raises(ValueError, match="identifier must be 1 to 20"):
        CheckAction("Apply", "Apply it", "apply-this-plan-right-now")
    with pytest.raises(ValueError, match="description must be 1 to 40"):
        CheckAction("Apply", "x" * 41, "apply")
    assert len(APPLY_ACTION.identifier) <= 20 and len(APPLY_ACTION.description) <= 40


def test_more_than_three_actions_are_refused_before_asking_github(
    world: tuple[GitHubAppEmulator, GitHubApp, EmulatedPull], checks: CheckRuns
) -> None:
    _, _, pull = world
    with pytest.raises(ValueError, match="at most 3 actions"):
        checks.create(REPO, PLAN_CHECK, pull.head_sha, actions=[CheckAction(f"A{i}", "d", f"a{i}") for i in range(4)])


def test_a_personal_token_cannot_write_check_runs(
    world: tuple[GitHubAppEmulator, GitHubApp, EmulatedPull], github_emulator: GitHubEmulator
) -> None:
    _, _, pull = world
    client = Github(base_url=github_emulator.api_url, auth=Auth.Token(github_emulator.token), retry=None)
    with pytest.raises(VCSError, match="403 You must authenticate via a GitHub App"):
        CheckRuns(client).create(REPO, PLAN_CHECK, pull.head_sha)
    client.close()


def test_an_unknown_head_sha_is_githubs_422_with_its_reason(
    world: tuple[GitHubAppEmulator, GitHubApp, EmulatedPull], checks: CheckRuns
) -> None:
    with pytest.raises(VCSError, match="422 Validation Failed .No commit found for SHA: " + "0" * 40):
        checks.create(REPO, PLAN_CHECK, "0" * 40)


def test_a_refused_token_is_replaced_and_the_check_run_still_written(
    world: tuple[GitHubAppEmulator, GitHubApp, EmulatedPull], checks: CheckRuns
) -> None:
    app_emulator, app, pull = world
    run = checks.create(REPO, PLAN_CHECK, pull.head_sha)
    app_emulator.revoke(app.token(app.installation_id(REPO)))
    checks.start(REPO, run.id, details_url=JOB_URL)
    assert only_run(app_emulator)["status"] == "in_progress"
    assert len(app_emulator.minted) == 2


# Output within GitHub's limits


def test_long_text_is_cut_at_a_line_with_a_pointer_to_the_job_page() -> None:
    text = "\n".join(f"line {i:06d} " + "x" * 60 for i in range(5000))
    cut = fit_text(text, job_url=JOB_URL)
    assert len(cut) <= OUTPUT_MAX_CHARS
    kept, _, pointer = cut.partition("\n\n… ")
    assert text.startswith(kept + "\n")
    dropped = 5000 - (kept.count("\n") + 1)
    assert pointer == f"{dropped} more lines not shown: the full output is on the job page, {JOB_URL}"
    assert fit_text("short\ntext") == "short\ntext"
    one_line = fit_text("y" * 100_000)
    assert len(one_line) <= OUTPUT_MAX_CHARS and one_line.startswith("y" * 1000)


def test_a_long_plan_stays_a_closed_code_block_within_the_limit(
    world: tuple[GitHubAppEmulator, GitHubApp, EmulatedPull], checks: CheckRuns
) -> None:
    app_emulator, _, pull = world
    plan = "\n".join(f'  + resource "terraform_data" "r{i}" {{ input = "```{i}" }}' for i in range(3000))
    text = fenced(plan, job_url=JOB_URL)
    assert len(text) <= OUTPUT_MAX_CHARS
    assert text.startswith("````diff\n")
    _, _, pointer = text.rpartition("\n````")
    assert pointer.startswith("\n\n… ") and JOB_URL in pointer
    assert fenced("+ a\n") == "```diff\n+ a\n```"

    long_summary = "s" * (OUTPUT_MAX_CHARS + 10)
    run = checks.create(REPO, PLAN_CHECK, pull.head_sha)
    checks.complete(REPO, run.id, CheckConclusion.SUCCESS, CheckOutput("Plan", long_summary, text))
    stored = only_run(app_emulator)["output"]
    assert stored["text"] == text
    assert len(stored["summary"]) <= OUTPUT_MAX_CHARS


def test_github_refuses_text_over_its_limit(
    world: tuple[GitHubAppEmulator, GitHubApp, EmulatedPull], github_emulator: GitHubEmulator
) -> None:
    _, app, pull = world
    token = app.token(app.installation_id(REPO))
    answer = requests.post(
        f"{github_emulator.api_url}/repos/{REPO}/check-runs",
        headers={"Authorization": f"token {token}"},
        json={"name": "n", "head_sha": pull.head_sha,
              "output": {"title": "t", "summary": "s", "text": "x" * (OUTPUT_MAX_CHARS + 1)}},
        timeout=10,
    )
    assert answer.status_code == 422
    assert "65535" in answer.json()["errors"][0]["message"]


def test_annotations_are_sent_fifty_at_a_time_and_all_arrive(
    world: tuple[GitHubAppEmulator, GitHubApp, EmulatedPull], checks: CheckRuns, github_emulator: GitHubEmulator
) -> None:
    app_emulator, _, pull = world
    annotations = tuple(
        Annotation("envs/prod/main.tf", i, i, AnnotationLevel.WARNING, f"warning {i}") for i in range(1, 121)
    )
    run = checks.create(REPO, PLAN_CHECK, pull.head_sha)
    output = CheckOutput("Plan failed", "3 errors", annotations=annotations)
    checks.complete(REPO, run.id, CheckConclusion.FAILURE, output)
    stored = only_run(app_emulator)
    assert [a["message"] for a in stored["annotations"]] == [f"warning {i}" for i in range(1, 121)]
    patches = [r for r in github_emulator.requests if r.method == "PATCH" and f"/check-runs/{run.id}" in r.path]
    assert len(patches) == -(-120 // ANNOTATIONS_PER_REQUEST)
    assert all(r.status == 200 for r in patches)
    assert stored["conclusion"] == "failure"


def test_terraform_diagnostics_become_annotations_on_the_file_and_line(tmp_path: Path) -> None:
    terraform = require_binary("terraform", "install terraform 1.5 or newer")
    project = tmp_path / "envs" / "prod"
    project.mkdir(parents=True)
    (project / "main.tf").write_text('resource "terraform_data" "x" {\n  input = var.missing\n}\n')
    env = {"PATH": "/usr/bin:/bin:/usr/local/bin", "TF_IN_AUTOMATION": "1", "HOME": str(tmp_path)}
    subprocess.run([terraform, "init", "-backend=false", "-input=false"], cwd=project, env=env, check=True,
                   capture_output=True, timeout=120)
    validated = subprocess.run([terraform, "validate", "-json"], cwd=project, env=env, capture_output=True,
                               text=True, timeout=120, check=False)
    annotations = annotations_from_diagnostics(diagnostics_from_json_lines([validated.stdout]), "envs/prod")
    assert len(annotations) == 1
    found = annotations[0]
    assert found.path == "envs/prod/main.tf"
    assert found.start_line == 2 and found.level is AnnotationLevel.FAILURE
    assert "Reference to undeclared input variable" in found.message
    assert found.as_api()["start_column"] == found.start_column


def test_diagnostics_outside_the_repository_or_without_a_place_are_left_out() -> None:
    lines = [
        json.dumps({"type": "diagnostic", "diagnostic": {"severity": "warning", "summary": "no range"}}),
        json.dumps({"type": "diagnostic", "diagnostic": {
            "severity": "error", "summary": "outside",
            "range": {"filename": "../../../etc/x.tf", "start": {"line": 1}}}}),
        json.dumps({"type": "diagnostic", "diagnostic": {
            "severity": "warning", "summary": "module", "detail": "d",
            "range": {"filename": "../modules/vpc/main.tf", "start": {"line": 3, "column": 1}, "end": {"line": 4}}}}),
        "not json",
    ]
    annotations = annotations_from_diagnostics(diagnostics_from_json_lines(lines), "envs/prod")
    assert [(a.path, a.start_line, a.end_line, a.level) for a in annotations] == [
        ("envs/modules/vpc/main.tf", 3, 4, AnnotationLevel.WARNING)
    ]
    assert "start_column" not in annotations[0].as_api()


# Check events


def recorded_webhook(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA_DIR / "webhooks" / f"{name}.json").read_text())
    return data


def test_a_recorded_check_suite_rerequest_replans_its_pull_requests() -> None:
    parsed = parse_check_event("check_suite", recorded_webhook("check_suite.rerequested"), app_id=29310)
    assert parsed == CheckRequest(
        command="plan",
        repo_full_name="Codertocat/Hello-World",
        head_sha="ec26c3e57ca3a959ca5aad62de7213c562f8c821",
        head_branch="changes",
        pull_numbers=(2,),
        sender="octocoders-linter[bot]",
        installation_id=957387,
        project=None,
        check_run_id=None,
        trigger="check_suite rerequested",
    )


def test_recorded_events_of_other_apps_or_runs_are_ignored_with_a_reason() -> None:
    requested = recorded_webhook("check_run.requested_action")
    assert parse_check_event("check_run", requested, app_id=1) == IgnoredCheckEvent(
        "the check_run belongs to another GitHub App (25811)"
    )
    assert parse_check_event("check_run", requested, app_id=25811) == IgnoredCheckEvent(
        "check run 'API Review' was not created by atlas"
    )
    rerun = recorded_webhook("check_run.rerequested")
    assert isinstance(parse_check_event("check_run", rerun, app_id=2), IgnoredCheckEvent)
    created = {**rerun, "action": "created"}
    nothing = IgnoredCheckEvent("check_run created asks atlas for nothing")
    assert parse_check_event("check_run", created, app_id=2) == nothing
    suite = {**recorded_webhook("check_suite.rerequested"), "action": "completed"}
    assert isinstance(parse_check_event("check_suite", suite, app_id=29310), IgnoredCheckEvent)


def test_pressing_apply_on_a_successful_plan_asks_for_that_projects_apply(
    world: tuple[GitHubAppEmulator, GitHubApp, EmulatedPull], checks: CheckRuns
) -> None:
    app_emulator, _, pull = world
    run = checks.create(REPO, PLAN_CHECK, pull.head_sha)
    checks.complete(REPO, run.id, CheckConclusion.SUCCESS, CheckOutput("Planned", "ok"), actions=[APPLY_ACTION])
    payload = app_emulator.check_run_payload(REPO, run.id, "requested_action", "alice", identifier="apply")
    parsed = parse_check_event("check_run", payload, app_id=app_emulator.app_id)
    assert isinstance(parsed, CheckRequest)
    assert parsed.command == "apply"
    assert parsed.project == ProjectCheck("apply", "envs/prod", "default")
    assert (parsed.repo_full_name, parsed.head_sha, parsed.pull_numbers) == (REPO, pull.head_sha, (pull.number,))
    assert (parsed.sender, parsed.check_run_id, parsed.head_branch) == ("alice", run.id, "change")
    assert parsed.installation_id == next(iter(app_emulator._installations))
    unknown = app_emulator.check_run_payload(REPO, run.id, "requested_action", "alice", identifier="destroy")
    assert parse_check_event("check_run", unknown, app_id=app_emulator.app_id) == IgnoredCheckEvent(
        "atlas has no check run action 'destroy'"
    )


def test_apply_on_a_failed_plan_or_on_a_non_plan_run_is_refused(
    world: tuple[GitHubAppEmulator, GitHubApp, EmulatedPull], checks: CheckRuns
) -> None:
    app_emulator, _, pull = world
    failed = checks.create(REPO, PLAN_CHECK, pull.head_sha)
    checks.complete(REPO, failed.id, CheckConclusion.FAILURE, CheckOutput("Plan failed", "error"))
    payload = app_emulator.check_run_payload(REPO, failed.id, "requested_action", "alice", identifier="apply")
    assert parse_check_event("check_run", payload, app_id=app_emulator.app_id) == IgnoredCheckEvent(
        "Apply was requested on atlas/plan: envs/prod/default, whose plan did not succeed"
    )
    applied = checks.create(REPO, PLAN_CHECK.with_command("apply"), pull.head_sha)
    checks.complete(REPO, applied.id, CheckConclusion.SUCCESS, CheckOutput("Applied", "ok"))
    payload = app_emulator.check_run_payload(REPO, applied.id, "requested_action", "alice", identifier="apply")
    reason = parse_check_event("check_run", payload, app_id=app_emulator.app_id)
    assert reason == IgnoredCheckEvent("Apply was requested on atlas/apply: envs/prod/default, which is not a plan")


def test_rerunning_a_check_run_replans_its_project_and_rerunning_the_suite_the_pull_request(
    world: tuple[GitHubAppEmulator, GitHubApp, EmulatedPull], checks: CheckRuns
) -> None:
    app_emulator, _, pull = world
    applied = checks.create(REPO, ProjectCheck("apply", "envs/prod", "default"), pull.head_sha)
    checks.complete(REPO, applied.id, CheckConclusion.FAILURE, CheckOutput("Apply failed", "error"))
    payload = app_emulator.check_run_payload(REPO, applied.id, "rerequested", "bob")
    parsed = parse_check_event("check_run", payload, app_id=app_emulator.app_id)
    assert isinstance(parsed, CheckRequest)
    assert (parsed.command, parsed.project, parsed.trigger) == ("plan", PLAN_CHECK, "check_run rerequested")

    suite = parse_check_event(
        "check_suite", app_emulator.check_suite_payload(REPO, pull.head_sha, "bob"), app_id=app_emulator.app_id
    )
    assert isinstance(suite, CheckRequest)
    assert (suite.command, suite.project, suite.pull_numbers, suite.sender) == ("plan", None, (pull.number,), "bob")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: p.pop("check_run"), "has no check_run object"),
        (lambda p: p["check_run"].pop("head_sha"), "has no head_sha"),
        (lambda p: p.pop("sender"), "names no sender"),
        (lambda p: p.pop("repository"), "names no repository"),
        (lambda p: p.pop("requested_action"), "has no requested_action.identifier"),
        (lambda p: p.pop("action"), "has no action"),
    ],
)
def test_malformed_check_events_are_errors_that_say_what_is_missing(
    damage: Callable[[dict[str, Any]], object], message: str
) -> None:
    payload = copy.deepcopy(recorded_webhook("check_run.requested_action"))
    payload["check_run"]["external_id"] = PLAN_CHECK.external_id
    payload["check_run"]["conclusion"] = "success"
    payload["requested_action"] = {"identifier": "apply"}
    assert isinstance(parse_check_event("check_run", payload, app_id=25811), CheckRequest)
    damage(payload)
    with pytest.raises(CheckEventError, match=message):
        parse_check_event("check_run", payload, app_id=25811)
