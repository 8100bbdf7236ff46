"""Comment commands end to end: plan, apply, merge, and every refusal a user can run into."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.atlas_plugin import RunningAtlas
from tests.commands_world import (
    DEVELOPER,
    REPO,
    app_change,
    bot_comments,
    comment,
    db_change,
    last_bot_comment,
    lock_holders,
    open_and_plan,
    statuses,
)
from tests.emulator import EmulatedRepo, GitHubEmulator, webhook_payload

Start = Callable[..., RunningAtlas]


@pytest.fixture
def world(start_atlas: Start, fixture_repo: Callable[..., EmulatedRepo],
          github_emulator: GitHubEmulator) -> Callable[..., RunningAtlas]:
    """An atlas server in front of acme/infra (multi-project) where alice may write."""
    fixture_repo("multi-project")
    github_emulator.set_permission(REPO, DEVELOPER, "write")

    def start(**settings: object) -> RunningAtlas:
        return start_atlas(**settings)

    return start


def test_plan_apply_merge_flow(world: Start, github_emulator: GitHubEmulator, state_dir: Path) -> None:
    atlas = world()
    pull = open_and_plan(atlas, github_emulator, "more-replicas", app_change(3))
    assert "Plan: 1 to add" in last_bot_comment(github_emulator, pull)
    assert lock_holders(atlas) == {"app/default": pull.number}

    assert comment(atlas, pull, "atlas apply") == 202
    atlas.wait_idle()

    applied = last_bot_comment(github_emulator, pull)
    assert "Apply complete! Resources: 1 added, 0 changed, 0 destroyed." in applied
    assert statuses(github_emulator, pull.head_sha, "atlas/apply")[-1] == ("success", "1/1 projects applied")
    [command_comment] = [c for c in github_emulator.comments(REPO, pull.number) if c["user"] == DEVELOPER]
    assert "eyes" in json.dumps(command_comment["reactions"])
    state = json.loads((state_dir / "multi-project/app.tfstate").read_text())
    assert state["resources"][0]["instances"][0]["attributes"]["input"]["value"]["replicas"] == 3

    merged = webhook_payload("pull_request", pull, "closed", merged=True)
    assert atlas.deliver("pull_request", merged).status_code == 202
    atlas.wait_idle()
    assert lock_holders(atlas) == {}
    assert "was merged: atlas deleted its locks" in last_bot_comment(github_emulator, pull)


def test_apply_without_a_plan_says_to_plan_first(world: Start, github_emulator: GitHubEmulator) -> None:
    atlas = world()
    pull = github_emulator.open_pull(REPO, "docs-only", {"notes.md": "hi\n"}, author=DEVELOPER)
    comment(atlas, pull, "atlas apply")
    atlas.wait_idle()
    said = last_bot_comment(github_emulator, pull)
    assert "no plan to apply" in said and "`atlas plan`" in said
    assert statuses(github_emulator, pull.head_sha, "atlas/apply") == []


def test_push_after_plan_blocks_the_old_apply_and_replans(world: Start, github_emulator: GitHubEmulator) -> None:
    atlas = world()
    pull = open_and_plan(atlas, github_emulator, "more-replicas", app_change(3))
    github_emulator.push(REPO, pull.number, app_change(4))
    moved = github_emulator.pull(REPO, pull.number)

    # The apply comment arrives before the synchronize delivery is processed.
    comment(atlas, moved, "atlas apply")
    atlas.wait_idle()
    refusal = last_bot_comment(github_emulator, moved)
    assert "atlas did not apply" in refusal
    assert f"head is now {moved.head_sha[:7]}" in refusal

    atlas.pull_event(moved, "synchronize")
    atlas.wait_idle()
    assert "replicas = 4" in last_bot_comment(github_emulator, moved)
    comment(atlas, moved, "atlas apply")
    atlas.wait_idle()
    assert "Apply complete!" in last_bot_comment(github_emulator, moved)


def test_help_answers_with_usage(world: Start, github_emulator: GitHubEmulator) -> None:
    atlas = world()
    pull = github_emulator.open_pull(REPO, "x", {"notes.md": "x\n"}, author=DEVELOPER)
    comment(atlas, pull, "atlas help")
    atlas.wait_idle()
    usage = last_bot_comment(github_emulator, pull)
    assert "Usage: atlas <command>" in usage
    for command in ("plan", "apply", "unlock", "cancel"):
        assert f"\n  {command} " in usage


@pytest.mark.parametrize("body,expected", [
    ("atlas destroy", "is not a command"),
    ("atlas plan --force", "--force"),
    ("atlas plan -d ../other", "-d"),
    ("atlas plan -d /etc", "-d"),
    ("atlas plan -p app -d app", "Use either `-p PROJECT`"),
    ("atlas plan -- -chdir=/tmp", "-chdir"),
    ("atlas plan -- -state=/tmp/x.tfstate", "-state"),
    ("atlas plan -- -backend-config=path=/tmp/x", "-backend-config"),
    ("terraform plan", "Did you mean `atlas plan`"),
])
def test_bad_command_gets_a_comment_saying_what_was_wrong_and_nothing_runs(
    world: Start, github_emulator: GitHubEmulator, body: str, expected: str,
) -> None:
    atlas = world()
    pull = github_emulator.open_pull(REPO, "x", app_change(7), author=DEVELOPER)
    assert comment(atlas, pull, body) == 202
    atlas.wait_idle()
    said = last_bot_comment(github_emulator, pull)
    assert expected in said, said
    assert "Traceback" not in said
    assert statuses(github_emulator, pull.head_sha, "atlas/plan") == []
    assert lock_holders(atlas) == {}


def test_directory_without_terraform_is_refused_and_nothing_runs(
    world: Start, github_emulator: GitHubEmulator,
) -> None:
    atlas = world()
    pull = github_emulator.open_pull(REPO, "x", app_change(7), author=DEVELOPER)
    comment(atlas, pull, "atlas plan -d nowhere")
    atlas.wait_idle()
    said = last_bot_comment(github_emulator, pull)
    assert "nowhere" in said
    assert lock_holders(atlas) == {}


def test_symlink_out_of_the_repository_is_refused(
    start_atlas: Start, github_emulator: GitHubEmulator, tmp_path: Path,
) -> None:
    source = tmp_path / "links"
    (source / "app").mkdir(parents=True)
    (source / "app/main.tf").write_text('resource "terraform_data" "x" {\n  input = 1\n}\n')
    (source / "escape").symlink_to("/etc")
    github_emulator.create_repo("acme/links", source_dir=source)
    github_emulator.set_permission("acme/links", DEVELOPER, "write")
    atlas = start_atlas()
    change = {"app/main.tf": 'resource "terraform_data" "x" {\n  input = 2\n}\n'}
    pull = github_emulator.open_pull("acme/links", "x", change, author=DEVELOPER)
    comment(atlas, pull, "atlas plan -d escape")
    atlas.wait_idle()
    said = [c["body"] for c in github_emulator.comments("acme/links", pull.number)
            if c["user"] == github_emulator.bot_login][-1]
    assert "escape" in said and "Traceback" not in said
    assert lock_holders(atlas) == {}


def test_comment_on_a_plain_issue_is_ignored(world: Start, github_emulator: GitHubEmulator,
                                             github_data_dir: Path) -> None:
    atlas = world()
    payload = json.loads((github_data_dir / "webhooks/issue_comment.created.plain_issue.json").read_text())
    response = atlas.deliver("issue_comment", payload)
    assert response.status_code in (200, 403)


def test_atlas_ignores_its_own_comments(world: Start, github_emulator: GitHubEmulator) -> None:
    atlas = world()
    pull = github_emulator.open_pull(REPO, "x", app_change(7), author=DEVELOPER)
    payload = webhook_payload("issue_comment", pull, "created", body="atlas plan", commenter=github_emulator.bot_login)
    response = atlas.deliver("issue_comment", payload)
    assert response.status_code == 200 and "own" in response.text
    atlas.wait_idle()
    assert bot_comments(github_emulator, pull) == ["atlas plan"]


def test_user_without_write_permission_gets_a_polite_refusal(world: Start, github_emulator: GitHubEmulator) -> None:
    atlas = world()
    pull = open_and_plan(atlas, github_emulator, "more-replicas", app_change(3))
    github_emulator.set_permission(REPO, "mallory", "read")
    comment(atlas, pull, "atlas apply", user="mallory")
    atlas.wait_idle()
    said = last_bot_comment(github_emulator, pull)
    assert "Sorry @mallory" in said and "write permission" in said
    assert statuses(github_emulator, pull.head_sha, "atlas/apply") == []


def test_allow_users_limits_who_may_run_commands(world: Start, github_emulator: GitHubEmulator) -> None:
    atlas = world(allow_users="bob")
    pull = open_and_plan(atlas, github_emulator, "more-replicas", app_change(3))
    comment(atlas, pull, "atlas apply")  # alice has write permission, but is not listed
    atlas.wait_idle()
    assert "Sorry @alice" in last_bot_comment(github_emulator, pull)
    comment(atlas, pull, "atlas apply", user="bob")
    atlas.wait_idle()
    assert "Apply complete!" in last_bot_comment(github_emulator, pull)


def test_allow_teams_admits_team_members(world: Start, github_emulator: GitHubEmulator) -> None:
    github_emulator.add_org("acme")
    github_emulator.add_team("acme", "platform", members=["carol"])
    atlas = world(allow_teams="acme/platform")
    pull = open_and_plan(atlas, github_emulator, "more-replicas", app_change(3))
    comment(atlas, pull, "atlas apply", user="carol")
    atlas.wait_idle()
    assert "Apply complete!" in last_bot_comment(github_emulator, pull)


def test_disallowed_command_lists_the_allowed_ones(world: Start, github_emulator: GitHubEmulator) -> None:
    atlas = world(allow_commands="plan,unlock")
    pull = open_and_plan(atlas, github_emulator, "more-replicas", app_change(3))
    comment(atlas, pull, "atlas apply")
    atlas.wait_idle()
    said = last_bot_comment(github_emulator, pull)
    assert "not enabled" in said and "plan" in said and "unlock" in said
    assert statuses(github_emulator, pull.head_sha, "atlas/apply") == []


def test_comment_prefix_can_include_atlantis(world: Start, github_emulator: GitHubEmulator) -> None:
    atlas = world(comment_prefix="atlas,atlantis")
    pull = open_and_plan(atlas, github_emulator, "more-replicas", app_change(3))
    comment(atlas, pull, "atlantis apply")
    atlas.wait_idle()
    assert "Apply complete!" in last_bot_comment(github_emulator, pull)


def test_pull_request_from_a_fork_is_refused_with_one_comment(world: Start, github_emulator: GitHubEmulator) -> None:
    atlas = world()
    pull = github_emulator.open_pull(REPO, "fork-change", app_change(9), author="stranger", from_fork=True)
    atlas.pull_event(pull)
    atlas.wait_idle()
    github_emulator.push(REPO, pull.number, app_change(10))
    atlas.pull_event(github_emulator.pull(REPO, pull.number), "synchronize")
    atlas.wait_idle()
    said = bot_comments(github_emulator, pull)
    assert len(said) == 1 and "forks" in said[0] and "--allow-fork-prs" in said[0]
    assert lock_holders(atlas) == {}


def test_fork_pull_request_is_planned_when_allowed(world: Start, github_emulator: GitHubEmulator) -> None:
    atlas = world(allow_fork_prs=True)
    pull = github_emulator.open_pull(REPO, "fork-change", app_change(9), author="stranger", from_fork=True)
    atlas.pull_event(pull)
    atlas.wait_idle()
    assert "Plan: 1 to add" in last_bot_comment(github_emulator, pull)


def test_approved_requirement_refuses_until_someone_else_approves(
    world: Start, github_emulator: GitHubEmulator,
) -> None:
    atlas = world(apply_requirements="approved")
    pull = open_and_plan(atlas, github_emulator, "more-replicas", app_change(3))
    github_emulator.add_review(REPO, pull.number, DEVELOPER, "APPROVED")  # the author's own does not count
    comment(atlas, pull, "atlas apply")
    atlas.wait_idle()
    assert "**approved**" in last_bot_comment(github_emulator, pull)

    github_emulator.add_review(REPO, pull.number, "bob", "APPROVED")
    comment(atlas, pull, "atlas apply")
    atlas.wait_idle()
    assert "Apply complete!" in last_bot_comment(github_emulator, pull)


def test_mergeable_requirement_refuses_an_unmergeable_pull_request(
    world: Start, github_emulator: GitHubEmulator,
) -> None:
    atlas = world(apply_requirements="mergeable")
    pull = open_and_plan(atlas, github_emulator, "more-replicas", app_change(3))
    github_emulator.set_mergeable(REPO, pull.number, False)
    comment(atlas, pull, "atlas apply")
    atlas.wait_idle()
    assert "**mergeable**" in last_bot_comment(github_emulator, pull)
    github_emulator.set_mergeable(REPO, pull.number, True)
    comment(atlas, pull, "atlas apply")
    atlas.wait_idle()
    assert "Apply complete!" in last_bot_comment(github_emulator, pull)


def test_undiverged_requirement_refuses_when_the_base_moved(world: Start, github_emulator: GitHubEmulator) -> None:
    atlas = world(apply_requirements="undiverged")
    pull = open_and_plan(atlas, github_emulator, "more-replicas", app_change(3))
    github_emulator.push_to_branch(REPO, "main", {"README.md": "moved on\n"})
    comment(atlas, pull, "atlas apply")
    atlas.wait_idle()
    assert "**undiverged**" in last_bot_comment(github_emulator, pull)


def test_disable_apply_all_asks_for_a_project(world: Start, github_emulator: GitHubEmulator) -> None:
    atlas = world(disable_apply_all=True)
    pull = open_and_plan(atlas, github_emulator, "more-replicas", app_change(3))
    comment(atlas, pull, "atlas apply")
    atlas.wait_idle()
    assert "-d DIR" in last_bot_comment(github_emulator, pull)
    comment(atlas, pull, "atlas apply -d app")
    atlas.wait_idle()
    assert "Apply complete!" in last_bot_comment(github_emulator, pull)


def test_automerge_merges_once_every_project_is_applied(world: Start, github_emulator: GitHubEmulator) -> None:
    atlas = world(automerge=True)
    pull = open_and_plan(atlas, github_emulator, "both", {**app_change(3), **db_change("staging")})
    comment(atlas, pull, "atlas apply -d app")
    atlas.wait_idle()
    assert not github_emulator.pull(REPO, pull.number).merged
    comment(atlas, pull, "atlas apply -d db")
    atlas.wait_idle()
    assert github_emulator.pull(REPO, pull.number).merged
    assert "Automatically merged" in last_bot_comment(github_emulator, pull)


def test_plan_with_a_directory_plans_only_that_project(world: Start, github_emulator: GitHubEmulator) -> None:
    atlas = world()
    pull = github_emulator.open_pull(REPO, "both", {**app_change(3), **db_change("staging")}, author=DEVELOPER)
    comment(atlas, pull, "atlas plan -d db")
    atlas.wait_idle()
    said = last_bot_comment(github_emulator, pull)
    assert "dir: `db`" in said and "dir: `app`" not in said
    assert lock_holders(atlas) == {"db/default": pull.number}
    assert statuses(github_emulator, pull.head_sha, "atlas/plan")[-1] == ("success", "1/1 projects planned")


def test_extra_args_reach_terraform(world: Start, github_emulator: GitHubEmulator) -> None:
    atlas = world()
    pull = github_emulator.open_pull(REPO, "x", app_change(3), author=DEVELOPER)
    comment(atlas, pull, 'atlas plan -d app -- -var environment=staging')
    atlas.wait_idle()
    assert '"staging-app"' in last_bot_comment(github_emulator, pull)


def test_version_answers(world: Start, github_emulator: GitHubEmulator) -> None:
    atlas = world()
    pull = github_emulator.open_pull(REPO, "x", {"notes.md": "x\n"}, author=DEVELOPER)
    comment(atlas, pull, "atlas version")
    atlas.wait_idle()
    said = last_bot_comment(github_emulator, pull)
    assert said.startswith("atlas ") and "terraform 1." in said


def test_hide_previous_plan_comments_on_replan(world: Start, github_emulator: GitHubEmulator) -> None:
    atlas = world(hide_prev_plan_comments=True)
    pull = open_and_plan(atlas, github_emulator, "more-replicas", app_change(3))
    github_emulator.push(REPO, pull.number, app_change(4))
    atlas.pull_event(github_emulator.pull(REPO, pull.number), "synchronize")
    atlas.wait_idle()
    plans = [c for c in github_emulator.comments(REPO, pull.number) if c["body"].startswith("Ran Plan")]
    assert [c["minimized"] for c in plans] == [True, False]


def test_merge_checkout_strategy_plans_the_merge_result(world: Start, github_emulator: GitHubEmulator) -> None:
    atlas = world(checkout_strategy="merge")
    extra = 'resource "terraform_data" "extra" {\n  input = 1\n}\n'
    github_emulator.push_to_branch(REPO, "main", {"app/extra.tf": extra})
    pull = github_emulator.open_pull(REPO, "x", app_change(3), author=DEVELOPER, base="main")
    more = 'resource "terraform_data" "more" {\n  input = 2\n}\n'
    github_emulator.push_to_branch(REPO, "main", {"app/more.tf": more})
    atlas.pull_event(pull)
    atlas.wait_idle()
    said = last_bot_comment(github_emulator, pull)
    assert "result of merging this pull request into `main`" in said
    assert "terraform_data.more" in said  # landed on main after the branch was made
    assert "Plan: 3 to add" in said


def test_commands_on_a_closed_pull_request_are_refused(world: Start, github_emulator: GitHubEmulator) -> None:
    atlas = world()
    pull = open_and_plan(atlas, github_emulator, "more-replicas", app_change(3))
    atlas.deliver("pull_request", webhook_payload("pull_request", pull, "closed"))
    atlas.wait_idle()
    comment(atlas, pull, "atlas plan")
    atlas.wait_idle()
    assert "closed pull request" in last_bot_comment(github_emulator, pull)
    assert lock_holders(atlas) == {}


def test_a_var_file_outside_the_repository_is_refused_and_none_of_it_is_posted(
    world: Start, github_emulator: GitHubEmulator,
) -> None:
    atlas = world()
    pull = open_and_plan(atlas, github_emulator, "more-replicas", app_change(3))

    assert comment(atlas, pull, "atlas plan -d app -- -var-file=/etc/passwd") == 202
    atlas.wait_idle()

    said = last_bot_comment(github_emulator, pull)
    assert "`-var-file=/etc/passwd` names a file outside the repository, so atlas did not run terraform" in said
    assert "--var-file-allowlist" in said
    assert "root:" not in said and "/bin/" not in said, "no line of the file is posted"


def test_a_comment_cannot_make_terraform_write_generated_config_anywhere(
    world: Start, github_emulator: GitHubEmulator,
) -> None:
    atlas = world()
    pull = open_and_plan(atlas, github_emulator, "more-replicas", app_change(3))

    assert comment(atlas, pull, "atlas plan -d app -- -generate-config-out=/tmp/generated.tf") == 202
    atlas.wait_idle()

    assert "`-generate-config-out=/tmp/generated.tf` cannot be passed to terraform: atlas does not let a comment " \
           "write files" in last_bot_comment(github_emulator, pull)
    assert not Path("/tmp/generated.tf").exists()
