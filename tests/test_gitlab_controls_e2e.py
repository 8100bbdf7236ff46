"""Atlantis's GitLab-only server flags, end to end against the GitLab emulator: per-command group rights
(`--gitlab-group-allowlist`), the pending apply status (`--pending-apply-status`) and retried
pipeline statuses (`--gitlab-status-retry-enabled`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from atlas.config.settings import SettingsError, load_settings
from atlas.models import VCSHost
from tests.atlas_plugin import FIXTURES, RunningAtlas
from tests.gitlab_emulator import GitLabEmulator
from tests.gitlab_world import PATH, app_change, app_replicas, comment, notes_by_atlas, open_and_plan, statuses

Start = Callable[..., RunningAtlas]


@pytest.fixture
def groups(gitlab_atlas: Start, gitlab_emulator: GitLabEmulator, gitlab_project: Callable[..., str]) -> Start:
    """platform/network/infra, where carol is in platform/infra and dave in platform/leads; all are Developers."""
    gitlab_project()
    gitlab_emulator.add_member("platform/infra", "carol", "developer")
    gitlab_emulator.add_member("platform/leads", "dave", "developer")
    for user in ("carol", "dave", "erin"):
        gitlab_emulator.add_member(PATH, user, "developer")
    return gitlab_atlas


def test_a_group_that_may_plan_but_not_apply_is_refused_apply_with_the_reason(
    groups: Start, gitlab_emulator: GitLabEmulator, state_dir: Path
) -> None:
    atlas = groups(gitlab_group_allowlist="platform/infra:plan, platform/leads:apply")
    iid = open_and_plan(atlas, gitlab_emulator, "more-replicas", app_change(3))

    comment(atlas, gitlab_emulator, "atlas plan", author="carol", iid=iid)
    atlas.wait_idle()
    assert "Plan: 1 to add" in notes_by_atlas(gitlab_emulator, iid)[-1]

    comment(atlas, gitlab_emulator, "atlas apply", author="carol", iid=iid)
    atlas.wait_idle()
    refused = notes_by_atlas(gitlab_emulator, iid)[-1]
    assert "Sorry @carol, `apply` needs membership of a group" in refused
    assert "`platform/leads`" in refused and "--gitlab-group-allowlist" in refused
    assert "You may run: `plan`." in refused
    assert not (state_dir / "multi-project/app.tfstate").exists()

    comment(atlas, gitlab_emulator, "atlas apply", author="dave", iid=iid)
    atlas.wait_idle()
    assert "Apply complete! Resources: 1 added" in notes_by_atlas(gitlab_emulator, iid)[-1]
    assert app_replicas(state_dir) == 3


def test_a_member_of_a_parent_group_counts_and_a_user_in_no_group_may_run_only_help(
    groups: Start, gitlab_emulator: GitLabEmulator
) -> None:
    gitlab_emulator.add_member("platform", "frank", "developer")
    gitlab_emulator.add_member(PATH, "frank", "developer")
    atlas = groups(gitlab_group_allowlist="platform/leads:plan")
    iid = open_and_plan(atlas, gitlab_emulator, "more-replicas", app_change(3))

    comment(atlas, gitlab_emulator, "atlas plan", author="erin", iid=iid)
    atlas.wait_idle()
    refused = notes_by_atlas(gitlab_emulator, iid)[-1]
    assert "Sorry @erin, `plan` needs membership of a group" in refused and "You may run" not in refused

    comment(atlas, gitlab_emulator, "atlas plan", author="frank", iid=iid)  # platform's members are platform/leads'
    atlas.wait_idle()
    assert "Plan: 1 to add" in notes_by_atlas(gitlab_emulator, iid)[-1]

    comment(atlas, gitlab_emulator, "atlas help", author="erin", iid=iid)
    atlas.wait_idle()
    assert "Sorry" not in notes_by_atlas(gitlab_emulator, iid)[-1]


def test_the_gitlab_group_allowlist_leaves_github_pull_requests_to_the_team_allowlist(tmp_path: Path) -> None:
    settings = load_settings({"data_dir": str(tmp_path), "gh_token": "t", "gh_webhook_secret": "s",
                              "gitlab_group_allowlist": "platform/leads:apply"}, env={})
    assert [str(right) for right in settings.team_rights()] == []
    assert [str(right) for right in settings.team_rights(VCSHost.GITLAB)] == ["platform/leads:apply"]


def test_a_group_allowlist_entry_that_is_not_group_and_command_stops_the_server(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r'entry "platform/leads" is not TEAM:COMMAND'):
        load_settings({"data_dir": str(tmp_path), "gh_token": "t", "gh_webhook_secret": "s",
                       "gitlab_group_allowlist": "platform/leads"}, env={})
    with pytest.raises(SettingsError, match=r'names the unknown command "deploy"'):
        load_settings({"data_dir": str(tmp_path), "gh_token": "t", "gh_webhook_secret": "s",
                       "gitlab_group_allowlist": "platform/leads:deploy"}, env={})


# --- --pending-apply-status ------------------------------------------------------------------------


def db_change(environment: str) -> dict[str, str | bytes | None]:
    main_tf = (FIXTURES / "multi-project/db/main.tf").read_text()
    return {"db/main.tf": main_tf.replace('environment = "production"', f'environment = "{environment}"')}


def test_the_apply_status_stays_pending_until_every_planned_change_is_applied(
    gitlab_atlas: Start, gitlab_emulator: GitLabEmulator, gitlab_project: Callable[..., str], state_dir: Path
) -> None:
    atlas = gitlab_atlas(pending_apply_status=True)
    gitlab_project()
    gitlab_emulator.add_member(PATH, "bob", "developer")
    iid = open_and_plan(atlas, gitlab_emulator, "two-projects", {**app_change(3), **db_change("staging")})
    sha = gitlab_emulator.merge_request(PATH, iid).sha
    assert statuses(gitlab_emulator, sha, "atlas/apply") == [
        ("running", "2 project(s) with planned changes to apply")]

    comment(atlas, gitlab_emulator, "atlas apply -d app", iid=iid)
    atlas.wait_idle()
    assert "Apply complete!" in notes_by_atlas(gitlab_emulator, iid)[-1]
    # GitLab keeps a running status's first description (it refuses running -> running); its state holds.
    assert [state for state, _ in statuses(gitlab_emulator, sha, "atlas/apply")] == ["running"]

    comment(atlas, gitlab_emulator, "atlas apply -d db", iid=iid)
    atlas.wait_idle()
    assert statuses(gitlab_emulator, sha, "atlas/apply")[-1] == ("success", "1/1 projects applied")
    assert app_replicas(state_dir) == 3


def test_a_plan_without_changes_to_apply_sets_the_apply_status_successful(
    gitlab_atlas: Start, gitlab_emulator: GitLabEmulator, gitlab_project: Callable[..., str]
) -> None:
    atlas = gitlab_atlas(pending_apply_status=True)
    gitlab_project()
    iid = open_and_plan(atlas, gitlab_emulator, "docs-only", {"README.md": "Nothing terraform reads.\n"})
    sha = gitlab_emulator.merge_request(PATH, iid).sha
    assert statuses(gitlab_emulator, sha, "atlas/apply") == [("success", "no planned changes to apply")]


def test_without_pending_apply_status_a_plan_sets_no_apply_status(
    gitlab_atlas: Start, gitlab_emulator: GitLabEmulator, gitlab_project: Callable[..., str]
) -> None:
    atlas = gitlab_atlas()
    gitlab_project()
    iid = open_and_plan(atlas, gitlab_emulator, "more-replicas", app_change(3))
    assert statuses(gitlab_emulator, gitlab_emulator.merge_request(PATH, iid).sha, "atlas/apply") == []


# --- --gitlab-status-retry-enabled -----------------------------------------------------------------


def test_a_status_gitlab_answers_409_is_retried_with_gitlab_status_retry_enabled(
    gitlab_atlas: Start, gitlab_emulator: GitLabEmulator, gitlab_project: Callable[..., str]
) -> None:
    atlas = gitlab_atlas(gitlab_status_retry_enabled=True)
    gitlab_project()
    gitlab_emulator.fail_next("POST", r"/statuses/", 409, body={"message": "409 Conflict"}, times=3)
    iid = open_and_plan(atlas, gitlab_emulator, "more-replicas", app_change(3))
    sha = gitlab_emulator.merge_request(PATH, iid).sha
    assert statuses(gitlab_emulator, sha)[-1] == ("success", "1/1 projects planned")
    assert [state for state, _ in statuses(gitlab_emulator, sha)] == ["running", "success"]
    assert "Plan: 1 to add" in notes_by_atlas(gitlab_emulator, iid)[-1]


def test_without_gitlab_status_retry_a_status_answered_409_fails_the_command_with_a_note_saying_so(
    gitlab_atlas: Start, gitlab_emulator: GitLabEmulator, gitlab_project: Callable[..., str]
) -> None:
    atlas = gitlab_atlas()
    gitlab_project()
    gitlab_emulator.fail_next("POST", r"/statuses/", 409, body={"message": "409 Conflict"}, times=1)
    iid = open_and_plan(atlas, gitlab_emulator, "more-replicas", app_change(3))
    sha = gitlab_emulator.merge_request(PATH, iid).sha
    [note] = notes_by_atlas(gitlab_emulator, iid)
    assert "atlas could not run `autoplan`" in note and "atlas/plan" in note and "409 Conflict" in note
    assert [state for state, _ in statuses(gitlab_emulator, sha)] == ["failed"]
