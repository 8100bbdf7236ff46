"""Atlantis's comment controls, end to end through GitHub and a real server: the reaction on a command,
regex project selection, the labels that turn autoplan and unlock off, and the silence flags."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.atlas_plugin import FIXTURES, RunningAtlas
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
from tests.emulator import EmulatedPull, EmulatedRepo, GitHubEmulator

Start = Callable[..., RunningAtlas]

NAMED_PROJECTS = """
version: 3
projects:
- name: staging-app
  dir: app
  autoplan: {enabled: false}
- name: staging-db
  dir: db
  autoplan: {enabled: false}
"""

ONLY_APP = """
version: 3
projects:
- name: app
  dir: app
"""


@pytest.fixture
def repo_with(github_emulator: GitHubEmulator, state_dir: Path) -> Callable[..., EmulatedRepo]:
    """acme/infra from the multi-project fixture plus the given files, alice may write."""

    def create(files: dict[str, str] | None = None) -> EmulatedRepo:
        repo = github_emulator.create_repo(REPO, source_dir=FIXTURES / "multi-project", files=files,
                                           substitutions={"__STATE_DIR__": str(state_dir)})
        github_emulator.set_permission(REPO, DEVELOPER, "write")
        return repo

    return create


def reactions_on_last_command(emulator: GitHubEmulator, pull: EmulatedPull) -> list[str]:
    """The reactions on the developer's latest comment, oldest first."""
    mine = [c for c in emulator.comments(REPO, pull.number) if c["user"] == DEVELOPER]
    reactions: list[dict[str, Any]] = mine[-1]["reactions"]
    return [r["content"] for r in reactions if r["user"] == emulator.bot_login]


def plan_statuses(emulator: GitHubEmulator, pull: EmulatedPull) -> list[tuple[str, str]]:
    return [(s["state"], s["description"]) for s in emulator.statuses(REPO, pull.head_sha)
            if s["context"].startswith("atlas/plan")]


# --- --emoji-reaction and emoji_reaction -------------------------------------------------------------

def test_emoji_reaction_marks_each_comment_command_and_none_puts_no_reaction(
    start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator,
) -> None:
    repo_with()
    rocket = start_atlas(emoji_reaction="thumbsup")
    pull = github_emulator.open_pull(REPO, "docs", {"README.md": "docs only\n"})
    assert comment(rocket, pull, "atlas version") == 202
    rocket.wait_idle()
    assert reactions_on_last_command(github_emulator, pull) == ["+1"], "thumbsup is GitHub's +1"

    silent = start_atlas(emoji_reaction="none")
    assert comment(silent, pull, "atlas version") == 202
    silent.wait_idle()
    assert reactions_on_last_command(github_emulator, pull) == []
    assert "atlas" in last_bot_comment(github_emulator, pull), "the command still ran"


def test_a_repository_emoji_reaction_is_added_once_atlas_has_read_its_config(
    start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator,
) -> None:
    repo_with({"atlantis.yaml": ONLY_APP + "emoji_reaction: tada\n"})
    atlas = start_atlas()
    pull = github_emulator.open_pull(REPO, "docs", {"README.md": "docs only\n"})
    assert comment(atlas, pull, "atlas plan") == 202
    atlas.wait_idle()
    assert reactions_on_last_command(github_emulator, pull) == ["eyes", "hooray"]


def test_an_emoji_reaction_github_does_not_have_is_refused_at_start_and_in_the_repo_config(
    start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator,
) -> None:
    from atlas.config.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match=r"--emoji-reaction.*'smile' is not a reaction GitHub has"):
        load_settings({"emoji_reaction": "smile"}, env={})
    repo_with({"atlantis.yaml": ONLY_APP + "emoji_reaction: smile\n"})
    atlas = start_atlas()
    pull = open_and_plan(atlas, github_emulator, "more-replicas", app_change(3))
    said = last_bot_comment(github_emulator, pull)
    assert "emoji_reaction" in said and "'smile' is not a reaction GitHub has" in said


# --- --enable-regexp-cmd and allowed_regexp_prefixes ------------------------------------------------

def test_enable_regexp_cmd_plans_every_project_whose_name_matches_and_without_it_p_is_a_name(
    start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator,
) -> None:
    repo_with({"atlantis.yaml": NAMED_PROJECTS})
    plain = start_atlas()
    pull = github_emulator.open_pull(REPO, "both", {**app_change(3), **db_change("staging")})
    assert comment(plain, pull, "atlas plan -p staging-.*") == 202
    plain.wait_idle()
    said = last_bot_comment(github_emulator, pull)
    assert "there is no project named `staging-.*`" in said

    regexp = start_atlas(enable_regexp_cmd=True)
    assert comment(regexp, pull, "atlas plan -p staging-.*") == 202
    regexp.wait_idle()
    said = last_bot_comment(github_emulator, pull)
    assert "Ran Plan for 2 projects" in said and "`staging-app`" in said and "`staging-db`" in said
    assert ("success", "2/2 projects planned") in statuses(github_emulator, pull.head_sha, "atlas/plan")

    assert comment(regexp, pull, "atlas apply -p staging-a.*") == 202
    regexp.wait_idle()
    applied = last_bot_comment(github_emulator, pull)
    assert "staging-app" in applied and "staging-db" not in applied and "Apply complete!" in applied


def test_allowed_regexp_prefixes_refuse_a_regex_that_matches_several_projects_outside_them(
    start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator,
) -> None:
    repo_with({"atlantis.yaml": NAMED_PROJECTS + "allowed_regexp_prefixes: [prod-, staging-d]\n"})
    atlas = start_atlas(enable_regexp_cmd=True)
    pull = github_emulator.open_pull(REPO, "both", {**app_change(3), **db_change("staging")})
    assert comment(atlas, pull, "atlas plan -p .*-(app|db)") == 202
    atlas.wait_idle()
    said = last_bot_comment(github_emulator, pull)
    assert "matches 2 projects (`staging-app`, `staging-db`)" in said
    assert "allowed_regexp_prefixes: `prod-`, `staging-d`" in said
    assert "Plan: " not in "".join(bot_comments(github_emulator, pull))

    assert comment(atlas, pull, "atlas plan -p .*-app") == 202, "a regex that matches one project is allowed"
    atlas.wait_idle()
    assert "staging-app" in last_bot_comment(github_emulator, pull)
    assert "Plan: 1 to add" in last_bot_comment(github_emulator, pull)

    assert comment(atlas, pull, "atlas plan -p staging-(") == 202
    atlas.wait_idle()
    assert "`-p staging-(` is not a regular expression atlas can use" in last_bot_comment(github_emulator, pull)


# --- --disable-autoplan-label and --disable-unlock-label ---------------------------------------------

def test_a_pull_request_with_the_disable_autoplan_label_is_planned_only_on_a_comment(
    start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator,
) -> None:
    repo_with()
    atlas = start_atlas(disable_autoplan_label="no-autoplan")
    pull = github_emulator.open_pull(REPO, "labelled", app_change(3))
    github_emulator.label_pull(REPO, pull.number, "no-autoplan")
    assert atlas.pull_event(pull).status_code == 202
    atlas.wait_idle()
    assert bot_comments(github_emulator, pull) == [] and plan_statuses(github_emulator, pull) == []

    assert comment(atlas, pull, "atlas plan") == 202
    atlas.wait_idle()
    assert "Plan: 1 to add" in last_bot_comment(github_emulator, pull)

    other = open_and_plan(atlas, github_emulator, "unlabelled", db_change("staging"))
    assert any("Plan: " in body for body in bot_comments(github_emulator, other)), "without the label: autoplan"


def test_the_disable_unlock_label_refuses_unlock_by_comment_and_keeps_the_locks(
    start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator,
) -> None:
    repo_with()
    atlas = start_atlas(disable_unlock_label="do-not-unlock")
    pull = open_and_plan(atlas, github_emulator, "more-replicas", app_change(3))
    assert lock_holders(atlas) == {"app/default": pull.number}
    github_emulator.label_pull(REPO, pull.number, "do-not-unlock")

    assert comment(atlas, pull, "atlas unlock") == 202
    atlas.wait_idle()
    said = last_bot_comment(github_emulator, pull)
    assert "atlas did not unlock this pull request" in said and "`do-not-unlock`" in said
    assert lock_holders(atlas) == {"app/default": pull.number}


# --- --silence-no-projects, --silence-vcs-status-no-plans, --silence-vcs-status-no-projects -----------

def test_silence_no_projects_runs_and_says_nothing_for_what_no_configured_project_covers(
    start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator,
) -> None:
    repo_with({"atlantis.yaml": ONLY_APP})
    loud = start_atlas()
    pull = open_and_plan(loud, github_emulator, "db-only", db_change("staging"))
    assert statuses(github_emulator, pull.head_sha, "atlas/plan") == [("success", "no Terraform projects changed")]
    assert comment(loud, pull, "atlas apply") == 202
    loud.wait_idle()
    assert "has no plan to apply" in last_bot_comment(github_emulator, pull)
    said_before = len(bot_comments(github_emulator, pull))

    quiet = start_atlas(silence_no_projects=True)
    for command in ("atlas plan -d db", "atlas plan -p db", "atlas apply"):
        assert comment(quiet, pull, command) == 202
        quiet.wait_idle()
    assert len(bot_comments(github_emulator, pull)) == said_before, "nothing said on any of them"
    assert lock_holders(quiet) == {}, "db, which no project of the config covers, was not planned"

    assert comment(quiet, pull, "atlas plan -d app") == 202, "a configured project still plans"
    quiet.wait_idle()
    assert "Plan: " in last_bot_comment(github_emulator, pull)


def test_silence_vcs_status_flags_set_no_status_when_there_is_no_project(
    start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator,
) -> None:
    repo_with({"atlantis.yaml": ONLY_APP})
    no_plans = start_atlas(silence_vcs_status_no_plans=True)
    pull = open_and_plan(no_plans, github_emulator, "db-only", db_change("staging"))
    assert plan_statuses(github_emulator, pull) == []

    no_projects = start_atlas(silence_vcs_status_no_projects=True)
    assert comment(no_projects, pull, "atlas plan") == 202
    no_projects.wait_idle()
    assert plan_statuses(github_emulator, pull) == []

    planned = open_and_plan(no_projects, github_emulator, "app-change", app_change(3))
    assert ("success", "1/1 projects planned") in statuses(github_emulator, planned.head_sha, "atlas/plan")
