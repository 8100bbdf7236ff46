"""Policy checks end to end: real terraform plans judged by Rego policy sets, gating applies on comments."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.atlas_plugin import FIXTURES, RunningAtlas
from tests.commands_world import DEVELOPER, REPO, app_change, bot_comments, comment, last_bot_comment, statuses
from tests.emulator import EmulatedRepo, GitHubEmulator, webhook_payload

Start = Callable[..., RunningAtlas]
OWNER = "olga"
STRANGER = "sam"

MAX_REPLICAS = """\
package main
import rego.v1

deny contains msg if {
    some rc in input.resource_changes
    rc.change.after.input.replicas > 3
    msg := sprintf("%s: at most 3 replicas, got %d", [rc.address, rc.change.after.input.replicas])
}

warn contains msg if {
    some rc in input.resource_changes
    rc.change.after.input.replicas == 3
    msg := sprintf("%s: 3 replicas is the most allowed", [rc.address])
}
"""


@pytest.fixture
def repo(github_emulator: GitHubEmulator, state_dir: Path) -> EmulatedRepo:
    created = github_emulator.create_repo(REPO, source_dir=FIXTURES / "multi-project",
                                          substitutions={"__STATE_DIR__": str(state_dir)})
    for user in (DEVELOPER, OWNER, STRANGER):
        github_emulator.set_permission(REPO, user, "write")
    return created


def policies(tmp_path: Path, rego: str = MAX_REPLICAS, *, prevent_self_approve: bool = True,
             owners: str = OWNER) -> str:
    directory = tmp_path / "policies" / "replicas"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "replicas.rego").write_text(rego)
    config = tmp_path / "repos.yaml"
    config.write_text(
        "repos:\n- id: /.*/\npolicies:\n"
        f"  owners: {{users: [{owners}]}}\n"
        "  policy_sets:\n"
        "    - name: replicas\n"
        "      path: policies/replicas\n"
        "      source: local\n"
        f"      prevent_self_approve: {str(prevent_self_approve).lower()}\n")
    return str(config)


def plan(atlas: RunningAtlas, github_emulator: GitHubEmulator, replicas: int, author: str = DEVELOPER) -> int:
    pull = github_emulator.open_pull(REPO, f"replicas-{replicas}", app_change(replicas), author=author)
    assert atlas.pull_event(pull).status_code == 202
    atlas.wait_idle()
    return pull.number


def say(atlas: RunningAtlas, github_emulator: GitHubEmulator, number: int, body: str, user: str) -> str:
    assert comment(atlas, github_emulator.pull(REPO, number), body, user=user) in (200, 202)
    atlas.wait_idle()
    return last_bot_comment(github_emulator, github_emulator.pull(REPO, number))


def policy_comment(github_emulator: GitHubEmulator, number: int) -> str:
    found = [c for c in bot_comments(github_emulator, github_emulator.pull(REPO, number)) if "Policy Check" in c]
    assert found, "atlas posted no policy check comment"
    return found[-1]


def test_a_failing_policy_blocks_apply_until_an_owner_approves_and_the_author_cannot(
    start_atlas: Start, repo: EmulatedRepo, github_emulator: GitHubEmulator, tmp_path: Path,
) -> None:
    atlas = start_atlas(repo_config=policies(tmp_path), enable_policy_checks=True)
    number = plan(atlas, github_emulator, replicas=5)
    pull = github_emulator.pull(REPO, number)

    checked = policy_comment(github_emulator, number)
    assert "policy set `replicas`: **failed (1 failure)**" in checked
    assert "terraform_data.service: at most 3 replicas, got 5" in checked
    assert "@olga" in checked and "approve_policies" in checked
    assert statuses(github_emulator, pull.head_sha, "atlas/policy_check")[-1][0] == "failure"
    per_project = [s for s in github_emulator.statuses(REPO, pull.head_sha)
                   if s["context"].startswith("atlas/policy_check: ")]
    assert per_project and per_project[-1]["state"] == "failure" and "app" in per_project[-1]["context"]

    refused = say(atlas, github_emulator, number, "atlas apply", DEVELOPER)
    assert "did not apply" in refused and "`replicas`" in refused and "@olga" in refused

    own = say(atlas, github_emulator, number, "atlas approve_policies", DEVELOPER)
    assert "not an owner" in own or "prevent_self_approve" in own
    refused_again = say(atlas, github_emulator, number, "atlas apply", DEVELOPER)
    assert "did not apply" in refused_again

    approved = say(atlas, github_emulator, number, "atlas approve_policies -d app", OWNER)
    assert "Recorded the policy approvals of @olga" in approved and "allow apply now" in approved
    assert statuses(github_emulator, pull.head_sha, "atlas/policy_check")[-1][0] == "success"
    applied = say(atlas, github_emulator, number, "atlas apply", DEVELOPER)
    assert "Apply complete" in applied, applied

    entries = [e.action.value for e in atlas.app.config["ATLAS_CONTEXT"].state.audit_entries(repo=REPO)]
    assert "policy_check" in entries and "policy_approval" in entries


def test_a_withdrawn_approval_and_a_new_push_block_apply_again(
    start_atlas: Start, repo: EmulatedRepo, github_emulator: GitHubEmulator, tmp_path: Path,
) -> None:
    atlas = start_atlas(repo_config=policies(tmp_path), enable_policy_checks=True)
    number = plan(atlas, github_emulator, replicas=5)
    say(atlas, github_emulator, number, "atlas approve_policies", OWNER)
    withdrawn = say(atlas, github_emulator, number, "atlas approve_policies --clear-policy-approval", OWNER)
    assert "Withdrew 1 policy approval" in withdrawn
    assert "did not apply" in say(atlas, github_emulator, number, "atlas apply", DEVELOPER)

    say(atlas, github_emulator, number, "atlas approve_policies", OWNER)
    github_emulator.push(REPO, number, app_change(6))
    atlas.pull_event(github_emulator.pull(REPO, number), "synchronize")
    atlas.wait_idle()
    assert "got 6" in policy_comment(github_emulator, number)
    refused = say(atlas, github_emulator, number, "atlas apply", DEVELOPER)
    assert "did not apply" in refused and "0/1 approvals" in refused


def test_warnings_do_not_block_and_quiet_checks_comment_only_on_failures(
    start_atlas: Start, repo: EmulatedRepo, github_emulator: GitHubEmulator, tmp_path: Path,
) -> None:
    atlas = start_atlas(repo_config=policies(tmp_path), enable_policy_checks=True)
    number = plan(atlas, github_emulator, replicas=3)
    checked = policy_comment(github_emulator, number)
    assert "**passed with warnings**" in checked and "warning: terraform_data.service: 3 replicas" in checked
    assert "Apply complete" in say(atlas, github_emulator, number, "atlas apply", DEVELOPER)

    quiet = start_atlas(repo_config=policies(tmp_path), enable_policy_checks=True, quiet_policy_checks=True)
    other = plan(quiet, github_emulator, replicas=1)
    assert not [c for c in bot_comments(github_emulator, github_emulator.pull(REPO, other)) if "Policy Check" in c]
    pull = github_emulator.pull(REPO, other)
    assert statuses(github_emulator, pull.head_sha, "atlas/policy_check")[-1][0] == "success"


def test_a_broken_policy_file_fails_closed_naming_file_and_line(
    start_atlas: Start, repo: EmulatedRepo, github_emulator: GitHubEmulator, tmp_path: Path,
) -> None:
    broken = "package main\nimport rego.v1\n\ndeny[msg] {\n    msg := \"v0\"\n}\n"
    atlas = start_atlas(repo_config=policies(tmp_path, broken), enable_policy_checks=True)
    number = plan(atlas, github_emulator, replicas=1)
    checked = policy_comment(github_emulator, number)
    assert "could not be evaluated" in checked and "replicas.rego:4" in checked
    assert "did not apply" in say(atlas, github_emulator, number, "atlas apply", DEVELOPER)


def test_enabling_policy_checks_without_policy_sets_is_a_start_up_error(
    start_atlas: Start, repo: EmulatedRepo, tmp_path: Path,
) -> None:
    config = tmp_path / "repos.yaml"
    config.write_text("repos:\n- id: /.*/\n")
    with pytest.raises(Exception, match="enable-policy-checks needs policy sets"):
        start_atlas(repo_config=str(config), enable_policy_checks=True)


def test_policies_passed_where_no_policy_check_runs_refuses_the_apply_naming_it(
    start_atlas: Start, github_emulator: GitHubEmulator, state_dir: Path, tmp_path: Path,
) -> None:
    github_emulator.create_repo(REPO, source_dir=FIXTURES / "multi-project",
                                substitutions={"__STATE_DIR__": str(state_dir)},
                                files={"atlantis.yaml": "version: 3\nprojects:\n- dir: app\n"
                                                        "  apply_requirements: [policies_passed]\n- dir: db\n"})
    github_emulator.set_permission(REPO, DEVELOPER, "write")
    config = tmp_path / "repos.yaml"
    config.write_text("repos:\n- id: /.*/\n  allowed_overrides: [apply_requirements]\n")
    atlas = start_atlas(repo_config=str(config), apply_on_merge="true")
    number = plan(atlas, github_emulator, replicas=4)

    refused = say(atlas, github_emulator, number, "atlas apply", DEVELOPER)

    assert "did not apply" in refused and "**policies_passed**" in refused, refused
    assert "runs without `--enable-policy-checks`" in refused
    assert "Apply complete" not in refused

    after = merge(atlas, github_emulator, number)
    on_merge = next(c for c in after if "did not apply the merge commit" in c)
    assert "**policies_passed**" in on_merge and not [c for c in after if "Apply complete" in c]
    assert replicas_applied(state_dir) is None


def test_policies_passed_for_a_repository_whose_policy_check_is_off_refuses_the_apply(
    start_atlas: Start, repo: EmulatedRepo, github_emulator: GitHubEmulator, tmp_path: Path,
) -> None:
    config = Path(policies(tmp_path))
    text = config.read_text().replace("repos:\n- id: /.*/\n", (
        "repos:\n- id: /.*/\n  apply_requirements: [policies_passed]\n- id: /.*/\n  policy_check: false\n"))
    config.write_text(text)
    atlas = start_atlas(repo_config=str(config), enable_policy_checks=True)
    number = plan(atlas, github_emulator, replicas=5)
    assert not [c for c in bot_comments(github_emulator, github_emulator.pull(REPO, number)) if "Policy Check" in c]

    refused = say(atlas, github_emulator, number, "atlas apply", DEVELOPER)

    assert "did not apply" in refused and "**policies_passed**" in refused, refused
    assert "`policy_check: false`" in refused


def test_policies_passed_in_repos_yaml_without_policy_checks_is_a_start_up_error(
    start_atlas: Start, repo: EmulatedRepo, tmp_path: Path,
) -> None:
    config = Path(policies(tmp_path))
    config.write_text(config.read_text().replace(
        "repos:\n- id: /.*/\n", "repos:\n- id: /.*/\n  apply_requirements: [policies_passed]\n"))
    with pytest.raises(Exception, match=r"repos\[0\]\.apply_requirements require policies_passed, but policy "
                                        r"checks are off"):
        start_atlas(repo_config=str(config))


def test_a_member_of_an_owner_team_approves_and_someone_outside_it_cannot(
    start_atlas: Start, repo: EmulatedRepo, github_emulator: GitHubEmulator, tmp_path: Path,
) -> None:
    github_emulator.add_team("acme", "platform", members=["tina"])
    github_emulator.add_team("acme", "interns", members=[STRANGER])
    github_emulator.set_permission(REPO, "tina", "write")
    config = Path(policies(tmp_path))
    config.write_text(config.read_text() + "      owners: {teams: [platform]}\n")
    atlas = start_atlas(repo_config=str(config), enable_policy_checks=True)
    number = plan(atlas, github_emulator, replicas=5)
    assert "a member of team `platform`" in policy_comment(github_emulator, number)

    outsider = say(atlas, github_emulator, number, "atlas approve_policies", STRANGER)
    assert "@sam is not an owner of `replicas`" in outsider and "a member of team `platform`" in outsider
    assert "did not apply" in say(atlas, github_emulator, number, "atlas apply", DEVELOPER)

    member = say(atlas, github_emulator, number, "atlas approve_policies", "tina")
    assert "Recorded the policy approvals of @tina" in member and "allow apply now" in member
    assert "Apply complete" in say(atlas, github_emulator, number, "atlas apply", DEVELOPER)
    [approval] = [e for e in atlas.app.config["ATLAS_CONTEXT"].state.audit_entries(repo=REPO)
                  if e.action.value == "policy_approval"]
    assert approval.user == "tina" and approval.detail == "replicas"


def merge(atlas: RunningAtlas, github_emulator: GitHubEmulator, number: int) -> list[str]:
    """Merge the pull request and deliver the event; atlas's comments after the merge."""
    before = len(bot_comments(github_emulator, github_emulator.pull(REPO, number)))
    pull = github_emulator.pull(REPO, number)
    merged = webhook_payload("pull_request", pull, "closed", merged=True)
    assert atlas.deliver("pull_request", merged).status_code == 202
    atlas.wait_idle()
    return bot_comments(github_emulator, github_emulator.pull(REPO, number))[before:]


def replicas_applied(state_dir: Path) -> int | None:
    path = state_dir / "multi-project/app.tfstate"
    if not path.exists():
        return None
    [service] = [r for r in json.loads(path.read_text())["resources"] if r["name"] == "service"]
    replicas: int = service["instances"][0]["attributes"]["input"]["value"]["replicas"]
    return replicas


def test_apply_on_merge_refuses_a_project_whose_policies_fail_without_approval(
    start_atlas: Start, repo: EmulatedRepo, github_emulator: GitHubEmulator, tmp_path: Path, state_dir: Path,
) -> None:
    atlas = start_atlas(repo_config=policies(tmp_path), enable_policy_checks=True, apply_on_merge="true")
    number = plan(atlas, github_emulator, replicas=5)

    after = merge(atlas, github_emulator, number)

    assert replicas_applied(state_dir) is None, "a plan failing its policies is not applied on merge"
    refusal = next(c for c in after if "did not apply the merge commit" in c)
    assert "failed its policy check, so it cannot be applied" in refusal
    assert "`replicas` (failed, 0/1 approvals; can approve: @olga)" in refusal
    assert not [c for c in after if "Apply complete" in c]
    [entry, *_] = [e for e in atlas.app.config["ATLAS_CONTEXT"].state.audit_entries(repo=REPO)
                   if e.action.value == "policy_check" and e.trigger == "merge"]
    assert entry.outcome == "failed"


def test_apply_on_merge_applies_a_failing_project_an_owner_approved(
    start_atlas: Start, repo: EmulatedRepo, github_emulator: GitHubEmulator, tmp_path: Path, state_dir: Path,
) -> None:
    atlas = start_atlas(repo_config=policies(tmp_path), enable_policy_checks=True, apply_on_merge="true")
    number = plan(atlas, github_emulator, replicas=5)
    say(atlas, github_emulator, number, "atlas approve_policies", OWNER)

    after = merge(atlas, github_emulator, number)

    assert [c for c in after if "Apply complete" in c], after
    assert replicas_applied(state_dir) == 5


def test_the_api_applies_only_plans_that_pass_their_policies(
    start_atlas: Start, repo: EmulatedRepo, github_emulator: GitHubEmulator, tmp_path: Path, state_dir: Path,
) -> None:
    secret = "api-secret-for-tests"
    atlas = start_atlas(repo_config=policies(tmp_path), enable_policy_checks=True, api_secret=secret)
    github_emulator.open_pull(REPO, "replicas-5", app_change(5), author=DEVELOPER)

    def call(command: str, ref: str) -> dict[str, Any]:
        body = {"Repository": REPO, "Ref": ref, "Type": "Github", "PR": 0,
                "Paths": [{"Directory": "app", "Workspace": "default"}]}
        answer = requests.post(f"{atlas.url}/api/{command}", json=body, headers={"X-Atlas-Token": secret},
                               timeout=120)
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result

    planned = call("plan", "replicas-5")
    assert planned["Success"] is False
    [project] = planned["ProjectResults"]
    assert "failed its policy check" in project["Error"] and "`replicas`" in project["Error"]
    assert "Plan: 1 to add" in project["Output"]
    refused = call("apply", "replicas-5")
    assert refused["Success"] is False and "failed its policy check" in refused["ProjectResults"][0]["Error"]
    assert "names no pull request (PR 0), so no owner can approve it" in refused["ProjectResults"][0]["Error"]
    assert replicas_applied(state_dir) is None

    assert call("plan", "main")["Success"] is True
    applied = call("apply", "main")
    assert applied["Success"] is True, applied
    assert replicas_applied(state_dir) == 2
