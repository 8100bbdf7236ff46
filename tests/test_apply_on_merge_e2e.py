"""Apply on merge: the merge commit, re-planned and checked against the reviewed plan, is what is applied."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.atlas_plugin import FIXTURES, RunningAtlas, assert_golden, normalise
from tests.commands_world import (
    DEVELOPER,
    REPO,
    app_change,
    comment,
    last_bot_comment,
    lock_holders,
    open_and_plan,
    statuses,
)
from tests.emulator import EmulatedPull, EmulatedRepo, GitHubEmulator, webhook_payload

Start = Callable[..., RunningAtlas]

FAILING_APPLY = (
    (FIXTURES / "multi-project/app/main.tf").read_text()
    + """
resource "terraform_data" "migration" {
  input = "v2"

  provisioner "local-exec" {
    command = "echo 'migration failed: table locked' >&2; exit 1"
  }
}
"""
)


@pytest.fixture(autouse=True)
def repo(fixture_repo: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator) -> EmulatedRepo:
    created = fixture_repo("multi-project")
    github_emulator.set_permission(REPO, DEVELOPER, "write")
    return created


def merge(atlas: RunningAtlas, pull: EmulatedPull) -> str:
    """Merge the pull request on the emulated GitHub and deliver the event; the merge commit's sha."""
    assert (
        atlas.deliver("pull_request", webhook_payload("pull_request", pull, "closed", merged=True)).status_code == 202
    )
    atlas.wait_idle()
    sha = atlas.emulator.pull(REPO, pull.number).merge_commit_sha
    assert sha
    return sha


def app_state(state_dir: Path) -> dict[str, object]:
    state: dict[str, object] = json.loads((state_dir / "multi-project/app.tfstate").read_text())
    return state


def replicas_in_state(state_dir: Path) -> int:
    resources = app_state(state_dir)["resources"]
    assert isinstance(resources, list)
    [service] = [r for r in resources if r["name"] == "service"]
    replicas: int = service["instances"][0]["attributes"]["input"]["value"]["replicas"]
    return replicas


def test_merge_applies_the_reviewed_plan_and_releases_the_locks(
    start_atlas: Start,
    github_emulator: GitHubEmulator,
    state_dir: Path,
) -> None:
    atlas = start_atlas(apply_on_merge="true")
    pull = open_and_plan(atlas, github_emulator, "more-replicas", app_change(3))
    assert not (state_dir / "multi-project/app.tfstate").exists()

    sha = merge(atlas, pull)

    said = last_bot_comment(github_emulator, pull)
    assert "After merge" in said and sha[:7] in said
    assert "Apply complete! Resources: 1 added, 0 changed, 0 destroyed." in said
    assert replicas_in_state(state_dir) == 3
    assert statuses(github_emulator, sha, "atlas/apply")[-1] == ("success", "1/1 projects applied after merge")
    assert lock_holders(atlas) == {}
    assert not list((atlas.settings.data_dir / "repos").rglob("*.tf"))


def test_a_change_that_landed_in_between_stops_the_apply_until_someone_applies(
    start_atlas: Start,
    github_emulator: GitHubEmulator,
    state_dir: Path,
) -> None:
    atlas = start_atlas(apply_on_merge="true")
    pull = open_and_plan(atlas, github_emulator, "more-replicas", app_change(3))
    extra = 'resource "terraform_data" "cache" {\n  input = "redis"\n}\n'
    github_emulator.push_to_branch(REPO, "main", {"app/cache.tf": extra}, message="someone else's change")

    sha = merge(atlas, pull)

    said = last_bot_comment(github_emulator, pull)
    assert "atlas did not apply" in said
    assert "terraform_data.cache" in said
    assert_golden(normalise(said, data_dir=atlas.settings.data_dir, extra={str(state_dir): "<STATE_DIR>"}),
                  FIXTURES / "multi-project/expected/merge-difference.md")
    assert not (state_dir / "multi-project/app.tfstate").exists(), "nothing was applied"
    assert lock_holders(atlas) == {"app/default": pull.number}
    assert statuses(github_emulator, sha, "atlas/apply")[-1][0] == "pending"

    comment(atlas, pull, "atlas apply")
    atlas.wait_idle()
    assert "Apply complete! Resources: 2 added" in last_bot_comment(github_emulator, pull)
    assert replicas_in_state(state_dir) == 3
    assert lock_holders(atlas) == {}
    assert statuses(github_emulator, sha, "atlas/apply")[-1] == ("success", "1/1 projects applied after merge")


def test_a_failed_apply_keeps_the_lock_and_the_next_pull_request_is_told_why(
    start_atlas: Start,
    github_emulator: GitHubEmulator,
) -> None:
    atlas = start_atlas(apply_on_merge="true")
    pull = open_and_plan(atlas, github_emulator, "migration", {"app/main.tf": FAILING_APPLY})

    sha = merge(atlas, pull)

    said = last_bot_comment(github_emulator, pull)
    assert "migration failed: table locked" in said
    assert "keeps its locks" in said
    assert lock_holders(atlas) == {"app/default": pull.number}
    assert statuses(github_emulator, sha, "atlas/apply")[-1][0] == "failure"

    second = open_and_plan(atlas, github_emulator, "next", app_change(5))
    told = last_bot_comment(github_emulator, second)
    assert f"locked by pull request [#{pull.number}]" in told
    assert "apply after merge failed" in told

    comment(atlas, pull, "atlas unlock")
    atlas.wait_idle()
    assert lock_holders(atlas) == {"app/default": second.number}


def test_only_mode_refuses_an_apply_before_merge(start_atlas: Start, github_emulator: GitHubEmulator) -> None:
    atlas = start_atlas(apply_on_merge="only")
    pull = open_and_plan(atlas, github_emulator, "more-replicas", app_change(3))
    comment(atlas, pull, "atlas apply")
    atlas.wait_idle()
    said = last_bot_comment(github_emulator, pull)
    assert "happen on merge" in said
    assert statuses(github_emulator, pull.head_sha, "atlas/apply") == []


def test_a_merge_without_a_plan_on_the_pull_request_applies_nothing_and_says_why(
    start_atlas: Start,
    github_emulator: GitHubEmulator,
    state_dir: Path,
) -> None:
    atlas = start_atlas(apply_on_merge="true")
    broken = (FIXTURES / "multi-project/app/main.tf").read_text().replace("replicas = 2", 'replicas = tonumber("x")')
    pull = open_and_plan(atlas, github_emulator, "broken", {"app/main.tf": broken})
    assert "Plan Error" in last_bot_comment(github_emulator, pull)

    merge(atlas, pull)

    said = last_bot_comment(github_emulator, pull)
    assert "No plan of them was made on this pull request" in said
    assert not (state_dir / "multi-project/app.tfstate").exists()
    assert lock_holders(atlas) == {}


def test_with_apply_on_merge_off_a_merge_releases_locks_as_before(
    start_atlas: Start,
    github_emulator: GitHubEmulator,
    state_dir: Path,
) -> None:
    atlas = start_atlas()
    pull = open_and_plan(atlas, github_emulator, "more-replicas", app_change(3))
    merge(atlas, pull)
    assert "was merged: atlas deleted its locks" in last_bot_comment(github_emulator, pull)
    assert not (state_dir / "multi-project/app.tfstate").exists()
    assert lock_holders(atlas) == {}


def test_on_merge_a_project_applies_after_the_projects_it_depends_on(
    start_atlas: Start, github_emulator: GitHubEmulator,
) -> None:
    config = ("version: 3\nprojects:\n- name: app\n  dir: app\n  depends_on: [database]\n"
              "- name: database\n  dir: db\n")
    github_emulator.push_to_branch(REPO, "main", {"atlas.yaml": config})
    atlas = start_atlas(apply_on_merge="true")
    db = (FIXTURES / "multi-project/db/main.tf").read_text().replace('"production"', '"staging"')
    pull = open_and_plan(atlas, github_emulator, "both", {**app_change(3), "db/main.tf": db})

    merge(atlas, pull)

    said = last_bot_comment(github_emulator, pull)
    assert "2 succeeded, 0 failed" in said
    assert said.index("dir: `db`") < said.index("dir: `app`"), "db (a dependency of app) applies first"
    assert lock_holders(atlas) == {}
