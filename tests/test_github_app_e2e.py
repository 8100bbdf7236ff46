"""atlas as a GitHub App, end to end: installation tokens for the API and git, its bot's identity,
installation events, and deliveries for installations it cannot act for."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from atlas.commands.check_runs import JobChecks
from atlas.commands.interrupted import report_interrupted
from atlas.github.checks import PLAN
from atlas.models import CommandName, Job, JobStatus, Project
from tests.atlas_plugin import FIXTURES, RunningAtlas
from tests.emulator import EmulatedRepo, GitHubEmulator
from tests.emulator.app import GitHubAppEmulator, Installation
from tests.emulator.payloads import webhook_payload

REPO = "acme/infra"
APP_CHANGE = {
    "app/main.tf": (FIXTURES / "multi-project/app/main.tf").read_text().replace("replicas = 2", "replicas = 3")
}


@pytest.fixture
def github_app(github_emulator: GitHubEmulator) -> GitHubAppEmulator:
    return GitHubAppEmulator(github_emulator, token_lifetime=timedelta(minutes=30))


def app_settings(app: GitHubAppEmulator, **more: Any) -> dict[str, Any]:
    """start_atlas overrides for App mode: no token and no --gh-user, the App's id and key instead."""
    return {"gh_token": None, "gh_user": None, "gh_app_id": app.app_id, "gh_app_key": app.private_key_pem, **more}


def as_installation(payload: dict[str, Any], installation: Installation) -> dict[str, Any]:
    payload["installation"] = {"id": installation.id, "node_id": f"IN_{installation.id}"}
    return payload


def bodies(emulator: GitHubEmulator, number: int) -> list[tuple[str, str]]:
    return [(c["user"], c["body"]) for c in emulator.comments(REPO, number)]


def test_a_pull_request_is_planned_as_the_app_with_an_installation_token_for_the_api_and_git(
    start_atlas: Callable[..., RunningAtlas],
    fixture_repo: Callable[..., EmulatedRepo],
    github_emulator: GitHubEmulator,
    github_app: GitHubAppEmulator,
) -> None:
    installation = github_app.install("acme")
    atlas = start_atlas(**app_settings(github_app))
    fixture_repo("multi-project")
    pull = github_emulator.open_pull(REPO, "more-replicas", APP_CHANGE)

    response = atlas.deliver("pull_request", as_installation(webhook_payload("pull_request", pull, "opened"),
                                                             installation))
    assert response.status_code == 202, response.text
    atlas.wait_idle()

    [(author, body)] = bodies(github_emulator, pull.number)
    assert author == github_app.bot_login
    assert "Plan: 1 to add, 0 to change, 0 to destroy." in body
    states = [s["state"] for s in github_emulator.statuses(REPO, pull.head_sha) if s["context"] == "atlas/plan"]
    assert states == ["pending", "success"]
    # One token for the installation, minted once and used for the API and the clone alike.
    assert [t.installation_id for t in github_app.minted] == [installation.id]
    token = github_app.minted[0].token
    log = atlas.log_text()
    assert token not in log and github_app.private_key_pem.splitlines()[1] not in log
    for path in Path(atlas.settings.data_dir).rglob("*"):
        if path.is_file() and path.stat().st_size < 5_000_000:
            assert token.encode() not in path.read_bytes(), path


def test_the_apps_own_comments_are_ignored_by_its_bot_login(
    start_atlas: Callable[..., RunningAtlas],
    fixture_repo: Callable[..., EmulatedRepo],
    github_emulator: GitHubEmulator,
    github_app: GitHubAppEmulator,
) -> None:
    installation = github_app.install("acme")
    atlas = start_atlas(**app_settings(github_app))
    fixture_repo("multi-project")
    pull = github_emulator.open_pull(REPO, "more-replicas", APP_CHANGE)

    payload = webhook_payload("issue_comment", pull, "created", body="atlas plan", commenter=github_app.bot_login)
    response = atlas.deliver("issue_comment", as_installation(payload, installation))
    assert response.status_code == 200, response.text
    assert "ignored" in response.text


def test_a_second_command_after_the_token_expired_gets_a_new_token(
    start_atlas: Callable[..., RunningAtlas],
    fixture_repo: Callable[..., EmulatedRepo],
    github_emulator: GitHubEmulator,
    github_app: GitHubAppEmulator,
) -> None:
    installation = github_app.install("acme")
    atlas = start_atlas(**app_settings(github_app))
    fixture_repo("multi-project")
    pull = github_emulator.open_pull(REPO, "more-replicas", APP_CHANGE)
    assert atlas.deliver("pull_request", as_installation(webhook_payload("pull_request", pull, "opened"),
                                                         installation)).status_code == 202
    atlas.wait_idle()
    [first] = github_app.minted
    # GitHub lets it expire sooner than atlas expected (its clock, or a revocation): it answers 401.
    github_app.expire(first.token)
    github_emulator.set_permission(REPO, "alice", "write")

    payload = webhook_payload("issue_comment", pull, "created", body="atlas plan -d app", commenter="alice")
    response = atlas.deliver("issue_comment", as_installation(payload, installation))
    assert response.status_code == 202, response.text
    atlas.wait_idle()

    assert len(github_app.minted) == 2
    comments = bodies(github_emulator, pull.number)
    assert [author for author, _ in comments].count(github_app.bot_login) == 2
    assert "Plan: 1 to add, 0 to change, 0 to destroy." in comments[-1][1]


def test_installation_events_are_answered_and_logged(
    start_atlas: Callable[..., RunningAtlas], github_app: GitHubAppEmulator,
) -> None:
    installation = github_app.install("acme")
    atlas = start_atlas(**app_settings(github_app))
    payload = {
        "action": "added",
        "installation": {"id": installation.id, "account": {"login": "acme"}},
        "repository_selection": "selected",
        "repositories_added": [{"id": 1, "full_name": "acme/network", "name": "network"}],
        "repositories_removed": [],
        "sender": {"login": "alice"},
    }
    response = atlas.deliver("installation_repositories", payload)
    assert response.status_code == 200, response.text
    created = {"action": "created", "installation": {"id": installation.id, "account": {"login": "acme"}},
               "repositories": [{"full_name": REPO}], "sender": {"login": "alice"}}
    assert atlas.deliver("installation", created).status_code == 200
    log = atlas.log_text()
    assert f"installation {installation.id} on acme: installation_repositories added" in log
    assert "repositories added: acme/network" in log
    assert f"installation {installation.id} on acme: installation created" in log


def test_a_delivery_for_an_installation_atlas_cannot_get_a_token_for_is_answered_200_with_the_reason(
    start_atlas: Callable[..., RunningAtlas],
    fixture_repo: Callable[..., EmulatedRepo],
    github_emulator: GitHubEmulator,
    github_app: GitHubAppEmulator,
) -> None:
    installation = github_app.install("acme")
    atlas = start_atlas(**app_settings(github_app))
    fixture_repo("multi-project")
    pull = github_emulator.open_pull(REPO, "more-replicas", APP_CHANGE)
    github_app.uninstall(installation.id)

    response = atlas.deliver("pull_request", as_installation(webhook_payload("pull_request", pull, "opened"),
                                                             installation))
    assert response.status_code == 200, response.text
    assert f"no installation {installation.id}" in response.text
    assert f"no installation {installation.id}" in atlas.log_text()
    assert github_emulator.comments(REPO, pull.number) == []


# Check runs


def runs_named(app: GitHubAppEmulator, sha: str, name: str) -> list[dict[str, Any]]:
    return [r for r in app.check_runs(REPO, sha) if r["name"] == name]


def test_a_failing_plans_check_run_completes_as_failure_with_terraforms_diagnostics_as_annotations(
    start_atlas: Callable[..., RunningAtlas],
    fixture_repo: Callable[..., EmulatedRepo],
    github_emulator: GitHubEmulator,
    github_app: GitHubAppEmulator,
) -> None:
    installation = github_app.install("acme")
    atlas = start_atlas(**app_settings(github_app))
    fixture_repo("failing")
    broken = (FIXTURES / "failing/broken/main.tf").read_text()
    healthy = (FIXTURES / "failing/healthy/main.tf").read_text()
    pull = github_emulator.open_pull(REPO, "both", {"broken/main.tf": broken + "\n# touched\n",
                                                    "healthy/main.tf": healthy + "\n# touched\n"})
    assert atlas.deliver("pull_request", as_installation(webhook_payload("pull_request", pull, "opened"),
                                                         installation)).status_code == 202
    atlas.wait_idle()

    [failed] = runs_named(github_app, pull.head_sha, "atlas/plan: broken/default")
    [passed] = runs_named(github_app, pull.head_sha, "atlas/plan: healthy/default")
    job_page = failed["details_url"]
    assert job_page.startswith("https://atlas.example.test/jobs/")
    assert (failed["status"], failed["conclusion"]) == ("completed", "failure")
    # Created queued, then started, then completed.
    assert failed["updates"] >= 2 and passed["updates"] >= 2
    assert failed["output"]["title"] == "Plan failed"
    assert failed["actions"] == []
    [annotation] = [a for a in failed["annotations"] if a["annotation_level"] == "failure"]
    assert annotation["path"] == "broken/main.tf"
    assert annotation["start_line"] == broken.splitlines().index("    port = tonumber(var.port)") + 1
    assert "Invalid function argument" in annotation["message"]

    assert (passed["status"], passed["conclusion"]) == ("completed", "success")
    assert passed["output"]["title"] == "Plan: 1 to add, 0 to change, 0 to destroy."
    assert passed["output"]["summary"].startswith("Plan: 1 to add, 0 to change, 0 to destroy.")
    assert "terraform_data.ok" in passed["output"]["text"]
    assert [a["identifier"] for a in passed["actions"]] == ["apply"]
    # Commit statuses are kept beside the checks.
    contexts = {s["context"] for s in github_emulator.statuses(REPO, pull.head_sha)}
    assert {"atlas/plan", "atlas/plan: broken/default", "atlas/plan: healthy/default"} <= contexts


def test_re_run_re_plans_the_project_and_the_apply_button_applies_it_with_apply_s_requirements(
    start_atlas: Callable[..., RunningAtlas],
    fixture_repo: Callable[..., EmulatedRepo],
    github_emulator: GitHubEmulator,
    github_app: GitHubAppEmulator,
) -> None:
    installation = github_app.install("acme")
    atlas = start_atlas(**app_settings(github_app))
    fixture_repo("multi-project")
    pull = github_emulator.open_pull(REPO, "more-replicas", APP_CHANGE)
    assert atlas.deliver("pull_request", as_installation(webhook_payload("pull_request", pull, "opened"),
                                                         installation)).status_code == 202
    atlas.wait_idle()
    [first] = runs_named(github_app, pull.head_sha, "atlas/plan: app/default")
    github_emulator.set_permission(REPO, "alice", "write")

    # Someone without write permission is refused, as for a comment.
    response = atlas.deliver("check_run", github_app.check_run_payload(REPO, first["id"], "rerequested", "mallory"))
    assert response.status_code == 202, response.text
    atlas.wait_idle()
    assert "Sorry @mallory" in github_emulator.comments(REPO, pull.number)[-1]["body"]
    assert len(runs_named(github_app, pull.head_sha, "atlas/plan: app/default")) == 1

    response = atlas.deliver("check_run", github_app.check_run_payload(REPO, first["id"], "rerequested", "alice"))
    assert response.status_code == 202, response.text
    atlas.wait_idle()
    rerun = runs_named(github_app, pull.head_sha, "atlas/plan: app/default")
    assert len(rerun) == 2 and rerun[-1]["conclusion"] == "success"

    response = atlas.deliver("check_run", github_app.check_run_payload(
        REPO, rerun[-1]["id"], "requested_action", "alice", identifier="apply"))
    assert response.status_code == 202, response.text
    atlas.wait_idle()
    [applied] = runs_named(github_app, pull.head_sha, "atlas/apply: app/default")
    assert (applied["status"], applied["conclusion"]) == ("completed", "success")
    # The plan is applied: its run has no Apply button left to press.
    assert runs_named(github_app, pull.head_sha, "atlas/plan: app/default")[-1]["actions"] == []
    last = github_emulator.comments(REPO, pull.number)[-1]
    assert last["user"] == github_app.bot_login and "Ran Apply" in last["body"]
    assert [s["state"] for s in github_emulator.statuses(REPO, pull.head_sha)
            if s["context"] == "atlas/apply"][-1] == "success"

    # A whole suite asked again re-plans every project of the pull request.
    response = atlas.deliver("check_suite", github_app.check_suite_payload(REPO, pull.head_sha, "alice"))
    assert response.status_code == 202, response.text
    atlas.wait_idle()
    assert len(runs_named(github_app, pull.head_sha, "atlas/plan: app/default")) == 3


MAX_THREE_REPLICAS = """\
package main
import rego.v1

deny contains msg if {
    some rc in input.resource_changes
    rc.change.after.input.replicas > 3
    msg := sprintf("%s: at most 3 replicas, got %d", [rc.address, rc.change.after.input.replicas])
}
"""


def replicas_policy(tmp_path: Path) -> str:
    """A repos.yaml whose one policy set, owned by olga, allows at most 3 replicas."""
    policy_dir = tmp_path / "policies" / "replicas"
    policy_dir.mkdir(parents=True)
    (policy_dir / "replicas.rego").write_text(MAX_THREE_REPLICAS)
    repos_yaml = tmp_path / "repos.yaml"
    repos_yaml.write_text("repos:\n- id: /.*/\npolicies:\n  owners: {users: [olga]}\n  policy_sets:\n"
                          "    - name: replicas\n      path: policies/replicas\n      source: local\n")
    return str(repos_yaml)


def test_a_policy_check_gets_its_own_check_run_which_an_owners_approval_turns_green(
    start_atlas: Callable[..., RunningAtlas],
    fixture_repo: Callable[..., EmulatedRepo],
    github_emulator: GitHubEmulator,
    github_app: GitHubAppEmulator,
    tmp_path: Path,
) -> None:
    installation = github_app.install("acme")
    atlas = start_atlas(**app_settings(github_app, repo_config=replicas_policy(tmp_path), enable_policy_checks=True))
    fixture_repo("multi-project")
    github_emulator.set_permission(REPO, "olga", "write")
    five = (FIXTURES / "multi-project/app/main.tf").read_text().replace("replicas = 2", "replicas = 5")
    pull = github_emulator.open_pull(REPO, "five-replicas", {"app/main.tf": five})
    assert atlas.deliver("pull_request", as_installation(webhook_payload("pull_request", pull, "opened"),
                                                         installation)).status_code == 202
    atlas.wait_idle()

    [planned] = runs_named(github_app, pull.head_sha, "atlas/plan: app/default")
    assert planned["conclusion"] == "success"
    [checked] = runs_named(github_app, pull.head_sha, "atlas/policy_check: app/default")
    assert (checked["status"], checked["conclusion"]) == ("completed", "failure")
    assert checked["output"]["title"] == "1 of 1 policy sets block the apply"
    assert "`replicas` (failed, 0/1 approvals; can approve: @olga)" in checked["output"]["summary"]
    assert "at most 3 replicas, got 5" in checked["output"]["text"]
    assert checked["details_url"] == planned["details_url"]
    # The Apply button on the plan is refused while the policies block it, as `atlas apply` is.
    response = atlas.deliver("check_run", github_app.check_run_payload(
        REPO, planned["id"], "requested_action", "olga", identifier="apply"))
    assert response.status_code == 202, response.text
    atlas.wait_idle()
    refused = github_emulator.comments(REPO, pull.number)[-1]["body"]
    assert "atlas did not apply" in refused and "failed its policy check, so it cannot be applied" in refused
    assert runs_named(github_app, pull.head_sha, "atlas/apply: app/default") == []

    payload = webhook_payload("issue_comment", pull, "created", body="atlas approve_policies", commenter="olga")
    assert atlas.deliver("issue_comment", as_installation(payload, installation)).status_code == 202
    atlas.wait_idle()
    approved = runs_named(github_app, pull.head_sha, "atlas/policy_check: app/default")
    assert len(approved) == 2
    assert (approved[-1]["conclusion"], approved[-1]["output"]["title"]) == ("success", "Policies approved")
    assert "`replicas` failed, approved by @olga" in approved[-1]["output"]["summary"]

    response = atlas.deliver("check_run", github_app.check_run_payload(
        REPO, planned["id"], "requested_action", "olga", identifier="apply"))
    assert response.status_code == 202, response.text
    atlas.wait_idle()
    [applied] = runs_named(github_app, pull.head_sha, "atlas/apply: app/default")
    assert applied["conclusion"] == "success"


def test_a_failed_plan_skips_its_policy_check_run_and_says_why(
    start_atlas: Callable[..., RunningAtlas],
    fixture_repo: Callable[..., EmulatedRepo],
    github_emulator: GitHubEmulator,
    github_app: GitHubAppEmulator,
    tmp_path: Path,
) -> None:
    installation = github_app.install("acme")
    atlas = start_atlas(**app_settings(github_app, repo_config=replicas_policy(tmp_path), enable_policy_checks=True))
    fixture_repo("failing")
    broken = (FIXTURES / "failing/broken/main.tf").read_text()
    pull = github_emulator.open_pull(REPO, "broken", {"broken/main.tf": broken + "\n# touched\n"})
    assert atlas.deliver("pull_request", as_installation(webhook_payload("pull_request", pull, "opened"),
                                                         installation)).status_code == 202
    atlas.wait_idle()

    [failed] = runs_named(github_app, pull.head_sha, "atlas/plan: broken/default")
    assert failed["conclusion"] == "failure"
    [skipped] = runs_named(github_app, pull.head_sha, "atlas/policy_check: broken/default")
    assert (skipped["status"], skipped["conclusion"]) == ("completed", "skipped")
    assert skipped["output"]["title"] == "Policy check skipped"
    assert "The plan did not succeed" in skipped["output"]["summary"]


def test_team_rights_are_read_as_the_apps_installation_on_the_organisation(
    start_atlas: Callable[..., RunningAtlas],
    fixture_repo: Callable[..., EmulatedRepo],
    github_emulator: GitHubEmulator,
    github_app: GitHubAppEmulator,
) -> None:
    """Team membership is an organisation's, so atlas asks for the App's installation there."""
    github_emulator.add_org("acme")
    github_emulator.add_team("acme", "platform", members=["carol"])
    installation = github_app.install("acme")
    atlas = start_atlas(**app_settings(github_app, gh_team_allowlist="platform:plan"))
    fixture_repo("multi-project")
    for user in ("carol", "erin"):
        github_emulator.set_permission(REPO, user, "write")
    pull = github_emulator.open_pull(REPO, "more-replicas", APP_CHANGE)

    for user in ("carol", "erin"):
        payload = webhook_payload("issue_comment", pull, "created", body="atlas plan -d app", commenter=user)
        assert atlas.deliver("issue_comment", as_installation(payload, installation)).status_code == 202
        atlas.wait_idle()
    carol, erin = [body for author, body in bodies(github_emulator, pull.number) if author == github_app.bot_login]
    assert "Plan: 1 to add, 0 to change, 0 to destroy." in carol
    assert "Sorry @erin, `plan` needs membership of a team" in erin
    assert any(r.path.endswith("/orgs/acme/installation") for r in github_emulator.requests)


def test_an_interrupted_jobs_open_check_runs_are_completed_as_cancelled(
    start_atlas: Callable[..., RunningAtlas],
    fixture_repo: Callable[..., EmulatedRepo],
    github_emulator: GitHubEmulator,
    github_app: GitHubAppEmulator,
) -> None:
    installation = github_app.install("acme")
    atlas = start_atlas(**app_settings(github_app))
    fixture_repo("multi-project")
    pull = github_emulator.open_pull(REPO, "more-replicas", APP_CHANGE)
    assert atlas.deliver("pull_request", as_installation(webhook_payload("pull_request", pull, "opened"),
                                                         installation)).status_code == 202
    atlas.wait_idle()
    [planned] = runs_named(github_app, pull.head_sha, "atlas/plan: app/default")
    # A second plan whose worker dies with the project's run in progress.
    ctx = atlas.app.config["ATLAS_CONTEXT"]
    job = Job(command=CommandName.PLAN, pull=ctx.vcs.get_pull(ctx.vcs.get_repo(REPO), pull.number),
              requested_by="alice", comment_id=1, installation_id=installation.id)
    ctx.state.save_job(job, JobStatus.RUNNING)
    runs = JobChecks(job, ctx, PLAN)
    runs.queue([Project(dir="app")])
    runs.start(Project(dir="app"))

    report_interrupted(ctx, job, "The atlas worker running this command stopped")

    first, second = runs_named(github_app, pull.head_sha, "atlas/plan: app/default")
    assert first == planned, "the finished job's run is left alone"
    assert (second["status"], second["conclusion"]) == ("completed", "cancelled")
    assert second["output"]["title"] == "Plan interrupted"
    assert second["output"]["summary"].startswith("The atlas worker running this command stopped.")
    assert second["details_url"].endswith(f"/jobs/{job.id}")


def test_an_apply_on_merge_gets_its_check_run_on_the_merge_commit(
    start_atlas: Callable[..., RunningAtlas],
    fixture_repo: Callable[..., EmulatedRepo],
    github_emulator: GitHubEmulator,
    github_app: GitHubAppEmulator,
) -> None:
    installation = github_app.install("acme")
    atlas = start_atlas(**app_settings(github_app, apply_on_merge="true"))
    fixture_repo("multi-project")
    pull = github_emulator.open_pull(REPO, "more-replicas", APP_CHANGE)
    assert atlas.deliver("pull_request", as_installation(webhook_payload("pull_request", pull, "opened"),
                                                         installation)).status_code == 202
    atlas.wait_idle()
    merged = webhook_payload("pull_request", pull, "closed", merged=True)
    assert atlas.deliver("pull_request", as_installation(merged, installation)).status_code == 202
    atlas.wait_idle()

    sha = github_emulator.pull(REPO, pull.number).merge_commit_sha
    assert sha and sha != pull.head_sha
    [applied] = runs_named(github_app, sha, "atlas/apply: app/default")
    assert (applied["status"], applied["conclusion"]) == ("completed", "success")
    assert applied["output"]["title"] == "Applied"
    assert "Apply complete! Resources: 1 added" in applied["output"]["text"]
    assert runs_named(github_app, pull.head_sha, "atlas/apply: app/default") == []
