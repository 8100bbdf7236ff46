"""Atlantis's comment and flow controls, end to end: each flag or key through GitHub and a real server."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from atlas.render.comments import use_template_overrides
from tests.atlas_plugin import FIXTURES, RunningAtlas
from tests.commands_world import (
    DEVELOPER,
    REPO,
    app_change,
    bot_comments,
    comment,
    db_change,
    last_bot_comment,
    open_and_plan,
    statuses,
)
from tests.emulator import EmulatedPull, EmulatedRepo, GitHubEmulator

Start = Callable[..., RunningAtlas]

ALLOW_WORKFLOWS = "repos:\n- id: /.*/\n  allowed_overrides: [workflow]\n  allow_custom_workflows: true\n"


@pytest.fixture(autouse=True)
def _built_in_templates_afterwards() -> Iterator[None]:
    """Template overrides are process-wide: leave none behind for the tests that run next."""
    yield
    use_template_overrides(None)


@pytest.fixture
def repo_with(github_emulator: GitHubEmulator, state_dir: Path) -> Callable[[dict[str, str]], EmulatedRepo]:
    """acme/infra from the multi-project fixture plus the given files (configs), alice may write."""

    def create(files: dict[str, str]) -> EmulatedRepo:
        repo = github_emulator.create_repo(REPO, source_dir=FIXTURES / "multi-project", files=files,
                                           substitutions={"__STATE_DIR__": str(state_dir)})
        github_emulator.set_permission(REPO, DEVELOPER, "write")
        return repo

    return create


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def job_logs(atlas: RunningAtlas) -> str:
    return "\n".join(path.read_text() for path in sorted((atlas.settings.data_dir / "jobs").glob("*.log")))


MASKED_WORKFLOW = r"""
version: 3
projects:
- dir: app
  workflow: masked
workflows:
  masked:
    plan:
      steps:
      - init
      - plan
      - run:
          command: >-
            echo 'db_password: "hunter2"'; echo 'api token=abc123 end'
          output:
          - show
          - filter_regex: '((?i)PASSWORD:\s")[^"]*'
          - filter_regex: 'token=\S+'
"""


def test_filter_regex_redacts_run_output_in_the_comment_and_the_job_log_keeps_it(
    start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator, tmp_path: Path,
) -> None:
    repo_with({"atlantis.yaml": MASKED_WORKFLOW})
    atlas = start_atlas(repo_config=write(tmp_path, "repos.yaml", ALLOW_WORKFLOWS))
    pull = open_and_plan(atlas, github_emulator, "masked", app_change(3))
    said = last_bot_comment(github_emulator, pull)
    assert 'db_password: "<redacted>"' in said
    assert "api <redacted> end" in said
    assert "hunter2" not in said and "abc123" not in said
    assert "Plan: 1 to add" in said
    logs = job_logs(atlas)
    assert 'db_password: "hunter2"' in logs and "token=abc123" in logs


def test_a_filter_regex_that_does_not_compile_is_a_comment_naming_the_key(
    start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator, tmp_path: Path,
) -> None:
    repo_with({"atlantis.yaml": MASKED_WORKFLOW.replace(r"'token=\S+'", "'token=(unclosed'")})
    atlas = start_atlas(repo_config=write(tmp_path, "repos.yaml", ALLOW_WORKFLOWS))
    pull = open_and_plan(atlas, github_emulator, "masked", app_change(3))
    said = last_bot_comment(github_emulator, pull)
    assert "filter_regex" in said and "token=(unclosed" in said
    assert "Traceback" not in said
    assert not any("Plan: " in body for body in bot_comments(github_emulator, pull))


LONG_OUTPUT_WORKFLOW = """
version: 3
projects:
- dir: app
  workflow: chatty
workflows:
  chatty:
    plan:
      steps:
      - init
      - run: seq 100000 160000
      - plan
"""


def plan_parts(emulator: GitHubEmulator, pull: EmulatedPull) -> list[str]:
    return [body for body in bot_comments(emulator, pull) if "atlas plan output, part" in body]


def test_max_comments_per_command_keeps_the_end_and_links_the_whole_output(
    start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator, tmp_path: Path,
) -> None:
    repo_with({"atlantis.yaml": LONG_OUTPUT_WORKFLOW})
    repos = write(tmp_path, "repos.yaml", ALLOW_WORKFLOWS)
    unlimited = start_atlas(repo_config=repos, max_comments_per_command=0)
    pull = open_and_plan(unlimited, github_emulator, "chatty", app_change(3))
    every = plan_parts(github_emulator, pull)
    total = len(every)
    assert total > 3 and f"part {total} of {total}" in every[-1]

    limited = start_atlas(repo_config=repos, max_comments_per_command=2)
    github_emulator.push(REPO, pull.number, app_change(4))
    moved = github_emulator.pull(REPO, pull.number)
    limited.pull_event(moved, "synchronize")
    limited.wait_idle()
    posted = plan_parts(github_emulator, moved)[total:]
    assert len(posted) == 2
    first, last = posted
    assert f"part {total - 1} of {total}" in first
    assert f"The first {total - 2} of {total} parts of this output are not posted" in first
    assert "seq 100000" not in first + last, "the beginning is what is left out"
    assert "Plan: 1 to add" in last
    assert "is on its job page: https://atlas.example.test/jobs/" in last
    assert job_logs(limited).count("\n100000") >= 1, "the job log has all of it"


def test_hide_unchanged_plan_comments_leaves_out_projects_without_changes(
    start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator,
) -> None:
    static = 'variable "size" {\n  default = 1\n}\n'
    repo_with({"static/main.tf": static})
    atlas = start_atlas(hide_unchanged_plan_comments=True)
    touched_static = {"static/main.tf": static + "# a comment changes nothing\n"}
    pull = open_and_plan(atlas, github_emulator, "mixed", {**app_change(3), **touched_static})
    said = last_bot_comment(github_emulator, pull)
    assert "Ran Plan for 2 projects" in said
    assert "1. dir: `static` workspace: `default`: no changes" in said
    assert "### 1. dir: `app` workspace: `default`" in said and "### 2." not in said
    assert "1 project with no changes is not shown (`--hide-unchanged-plan-comments`)" in said
    assert "2 projects, 1 with changes, 1 with no changes, 0 failed." in said

    before = len(bot_comments(github_emulator, pull))
    github_emulator.push(REPO, pull.number, {"static/main.tf": static + "# nor does this\n",
                                             "app/main.tf": (FIXTURES / "multi-project/app/main.tf").read_text()})
    moved = github_emulator.pull(REPO, pull.number)
    atlas.pull_event(moved, "synchronize")
    atlas.wait_idle()
    assert len(bot_comments(github_emulator, moved)) == before, "no changes anywhere: no plan comment"
    assert statuses(github_emulator, moved.head_sha, "atlas/plan")[-1] == ("success", "1/1 projects planned")


def test_markdown_template_overrides_replace_built_ins_and_a_broken_one_falls_back(
    start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator, tmp_path: Path,
) -> None:
    repo_with({})
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "plan.md.j2").write_text(
        "Our plan of {{ sections|length }} project(s): {{ sections[0].summary_line }}\n\n<sub>{{ footer }}</sub>\n")
    (templates / "apply.md.j2").write_text("Applied {{ no_such_variable }}\n")
    (templates / "plan.tmpl").write_text("{{ .Command }}\n")
    atlas = start_atlas(markdown_template_overrides_dir=str(templates))
    assert "plan.tmpl replaces no template" in atlas.log_text()
    pull = open_and_plan(atlas, github_emulator, "custom", app_change(3))
    said = last_bot_comment(github_emulator, pull)
    assert said.startswith("Our plan of 1 project(s): Plan: 1 to add, 0 to change, 0 to destroy.")

    comment(atlas, pull, "atlas apply")
    atlas.wait_idle()
    applied = last_bot_comment(github_emulator, pull)
    assert "Apply complete! Resources: 1 added" in applied, "the built-in apply template was used"
    log_text = atlas.log_text()
    assert "comment template apply.md.j2 from --markdown-template-overrides-dir" in log_text
    assert "no_such_variable" in log_text and "atlas used its built-in template instead" in log_text


def merge_parents(emulator: GitHubEmulator, sha: str) -> int:
    line = emulator.repo(REPO).git.git("rev-list", "--parents", "-n", "1", sha).stdout.decode().split()
    return len(line) - 1


def test_automerge_method_squashes_and_delete_source_branch_on_merge_deletes_the_branch(
    start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator, tmp_path: Path,
) -> None:
    repo_with({"atlantis.yaml": "version: 3\nautomerge: true\ndelete_source_branch_on_merge: true\n"
                                "projects:\n- dir: app\n"})
    repos = write(tmp_path, "repos.yaml", "repos:\n- id: /.*/\n  allowed_overrides: [delete_source_branch_on_merge]\n")
    atlas = start_atlas(repo_config=repos, automerge_method="squash")
    pull = open_and_plan(atlas, github_emulator, "squash-me", app_change(3))
    comment(atlas, pull, "atlas apply")
    atlas.wait_idle()
    merged = github_emulator.pull(REPO, pull.number)
    assert merged.merged and merged.merge_method == "squash"
    assert merge_parents(github_emulator, merged.merge_commit_sha) == 1
    assert not github_emulator.branch_exists(REPO, "squash-me")
    said = last_bot_comment(github_emulator, pull)
    assert "Automatically merged (--automerge-method squash)" in said
    assert "Deleted the branch `squash-me` (delete_source_branch_on_merge)" in said


def test_a_project_that_keeps_its_branch_overrides_repos_yaml_and_the_default_method_merges(
    start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator, tmp_path: Path,
) -> None:
    repo_with({"atlantis.yaml": "version: 3\nautomerge: true\nprojects:\n- dir: app\n"
                                "  delete_source_branch_on_merge: false\n"})
    repos = write(tmp_path, "repos.yaml", "repos:\n- id: /.*/\n  delete_source_branch_on_merge: true\n"
                                          "  allowed_overrides: [delete_source_branch_on_merge]\n")
    atlas = start_atlas(repo_config=repos)
    pull = open_and_plan(atlas, github_emulator, "keep-me", app_change(3))
    comment(atlas, pull, "atlas apply")
    atlas.wait_idle()
    merged = github_emulator.pull(REPO, pull.number)
    assert merged.merged and merged.merge_method == "merge"
    assert merge_parents(github_emulator, merged.merge_commit_sha) == 2
    assert github_emulator.branch_exists(REPO, "keep-me")
    assert "Deleted the branch" not in last_bot_comment(github_emulator, pull)


def test_repos_yaml_delete_source_branch_on_merge_deletes_after_automerge(
    start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator, tmp_path: Path,
) -> None:
    repo_with({})
    repos = write(tmp_path, "repos.yaml", "repos:\n- id: /.*/\n  delete_source_branch_on_merge: true\n")
    atlas = start_atlas(repo_config=repos, automerge=True, automerge_method="rebase")
    pull = open_and_plan(atlas, github_emulator, "rebase-me", app_change(3))
    comment(atlas, pull, "atlas apply")
    atlas.wait_idle()
    merged = github_emulator.pull(REPO, pull.number)
    assert merged.merged and merged.merge_method == "rebase"
    assert not github_emulator.branch_exists(REPO, "rebase-me")


def test_discard_approval_on_plan_dismisses_approvals_when_a_new_plan_runs(
    start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator,
) -> None:
    repo_with({})
    atlas = start_atlas(discard_approval_on_plan=True)
    pull = open_and_plan(atlas, github_emulator, "reviewed", app_change(3))
    github_emulator.add_review(REPO, pull.number, "bob", "APPROVED")
    github_emulator.add_review(REPO, pull.number, "carol", "COMMENTED", body="looks fine")
    assert github_emulator.approvers(github_emulator.pull(REPO, pull.number)) == ["bob"]

    comment(atlas, pull, "atlas plan")
    atlas.wait_idle()
    reviewed = github_emulator.pull(REPO, pull.number)
    assert github_emulator.approvers(reviewed) == []
    [bob, carol] = reviewed.reviews
    assert bob.state == "DISMISSED" and "--discard-approval-on-plan" in (bob.dismissal_message or "")
    assert carol.state == "COMMENTED"
    assert "Plan: 1 to add" in last_bot_comment(github_emulator, pull)


def test_without_discard_approval_on_plan_approvals_survive_a_new_plan(
    start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator,
) -> None:
    repo_with({})
    atlas = start_atlas()
    pull = open_and_plan(atlas, github_emulator, "reviewed", app_change(3))
    github_emulator.add_review(REPO, pull.number, "bob", "APPROVED")
    comment(atlas, pull, "atlas plan")
    atlas.wait_idle()
    assert github_emulator.approvers(github_emulator.pull(REPO, pull.number)) == ["bob"]


HOOKS = """\
repos:
- id: /.*/
  pre_workflow_hooks:
  - run: echo "3 files generated" > "$OUTPUT_STATUS_FILE"
    description: generate
  - run: echo "lint found 2 problems" > "$OUTPUT_STATUS_FILE"; exit 4
    description: lint
"""


def test_a_failing_pre_workflow_hook_is_reported_and_the_plan_goes_on_by_default(
    start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator, tmp_path: Path,
) -> None:
    repo_with({})
    atlas = start_atlas(repo_config=write(tmp_path, "repos.yaml", HOOKS))
    pull = open_and_plan(atlas, github_emulator, "hooked", app_change(3))
    assert statuses(github_emulator, pull.head_sha, "atlas/pre_workflow_hook: generate") == [
        ("pending", "in progress…"), ("success", "3 files generated")]
    assert statuses(github_emulator, pull.head_sha, "atlas/pre_workflow_hook: lint") == [
        ("pending", "in progress…"), ("failure", "lint found 2 problems")]
    said = bot_comments(github_emulator, pull)
    assert any("hook `lint` failed (exit code 4); atlas went on with the command" in body for body in said)
    assert "Plan: 1 to add" in said[-1]
    assert statuses(github_emulator, pull.head_sha, "atlas/plan")[-1][0] == "success"


def test_fail_on_pre_workflow_hook_error_stops_the_command_at_the_failing_hook(
    start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator, tmp_path: Path,
) -> None:
    repo_with({})
    atlas = start_atlas(repo_config=write(tmp_path, "repos.yaml", HOOKS), fail_on_pre_workflow_hook_error=True)
    pull = open_and_plan(atlas, github_emulator, "hooked", app_change(3))
    said = last_bot_comment(github_emulator, pull)
    assert "hook `lint` failed (exit code 4), so atlas stopped (`--fail-on-pre-workflow-hook-error`)" in said
    assert not any("Plan: " in body for body in bot_comments(github_emulator, pull))
    assert statuses(github_emulator, pull.head_sha, "atlas/pre_workflow_hook: lint")[-1] == (
        "failure", "lint found 2 problems")
    assert statuses(github_emulator, pull.head_sha, "atlas/plan")[-1] == ("failure", "a pre-workflow hook failed")


def working_copy(atlas: RunningAtlas, pull: EmulatedPull) -> Path:
    return atlas.settings.data_dir / "repos" / "acme" / "infra" / str(pull.number) / "default"


def commits_of(copy: Path, ref: str) -> int:
    counted = subprocess.run(["git", "rev-list", "--count", ref], cwd=copy, capture_output=True, text=True,
                             check=True)
    return int(counted.stdout)


@pytest.mark.parametrize("depth,expected", [(2, 2), (0, 6)])
def test_checkout_depth_bounds_the_history_the_merge_strategy_fetches(
    start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator,
    depth: int, expected: int,
) -> None:
    repo_with({})
    for number in range(5):
        github_emulator.push_to_branch(REPO, "main", {f"notes/{number}.md": f"note {number}\n"})
    atlas = start_atlas(checkout_strategy="merge", checkout_depth=depth)
    pull = open_and_plan(atlas, github_emulator, "shallow", app_change(3))
    said = last_bot_comment(github_emulator, pull)
    assert "(`--checkout-strategy merge`)" in said and "Plan: 1 to add" in said
    copy = working_copy(atlas, pull)
    assert commits_of(copy, "refs/remotes/origin/main") == expected
    shallow = subprocess.run(["git", "rev-parse", "--is-shallow-repository"], cwd=copy, capture_output=True,
                             text=True, check=True).stdout.strip()
    assert shallow == ("true" if depth else "false")


def test_a_merge_base_deeper_than_checkout_depth_is_fetched_and_the_plan_still_merges(
    start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator,
) -> None:
    repo_with({})
    atlas = start_atlas(checkout_strategy="merge", checkout_depth=1)
    pull = github_emulator.open_pull(REPO, "behind", app_change(3), author=DEVELOPER)
    for number in range(3):
        github_emulator.push_to_branch(REPO, "main", {f"notes/{number}.md": f"note {number}\n"})
    atlas.pull_event(github_emulator.pull(REPO, pull.number))
    atlas.wait_idle()
    said = last_bot_comment(github_emulator, pull)
    assert "(`--checkout-strategy merge`)" in said and "Plan: 1 to add" in said
    assert "more than 1 commits deep (--checkout-depth)" in job_logs(atlas)
    assert (working_copy(atlas, pull) / "notes" / "2.md").is_file(), "the plan is of the merge with main's tip"


def test_pending_apply_status_keeps_atlas_apply_pending_until_every_planned_change_is_applied(
    start_atlas: Start, repo_with: Callable[[dict[str, str]], EmulatedRepo], github_emulator: GitHubEmulator
) -> None:
    repo_with({})
    atlas = start_atlas(pending_apply_status=True)
    pull = open_and_plan(atlas, github_emulator, "two-projects", {**app_change(3), **db_change("staging")})
    assert statuses(github_emulator, pull.head_sha, "atlas/apply") == [
        ("pending", "2 project(s) with planned changes to apply")]

    comment(atlas, pull, "atlas apply -d app")
    atlas.wait_idle()
    assert statuses(github_emulator, pull.head_sha, "atlas/apply")[-1] == (
        "pending", "1/1 projects applied; 1 project(s) with planned changes still to apply")

    comment(atlas, pull, "atlas plan -d db")  # a plan in between leaves the count as it is
    atlas.wait_idle()
    assert statuses(github_emulator, pull.head_sha, "atlas/apply")[-1] == (
        "pending", "1 project(s) with planned changes to apply")

    comment(atlas, pull, "atlas apply")
    atlas.wait_idle()
    assert statuses(github_emulator, pull.head_sha, "atlas/apply")[-1] == ("success", "1/1 projects applied")


def test_pending_apply_status_marks_a_pull_request_without_changes_to_apply_successful(
    start_atlas: Start, repo_with: Callable[[dict[str, str]], EmulatedRepo], github_emulator: GitHubEmulator
) -> None:
    repo_with({})
    atlas = start_atlas(pending_apply_status=True)
    pull = open_and_plan(atlas, github_emulator, "docs", {"README.md": "Nothing terraform reads.\n"})
    assert statuses(github_emulator, pull.head_sha, "atlas/apply") == [("success", "no planned changes to apply")]
