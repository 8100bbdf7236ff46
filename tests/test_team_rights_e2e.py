"""Per-command team rights (`--gh-team-allowlist`, Atlantis's TEAM:COMMAND pairs) end to end."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from atlas.config.raw import ConfigError
from atlas.config.settings import SettingsError, load_settings
from tests.atlas_plugin import RunningAtlas
from tests.commands_world import REPO, app_change, comment, last_bot_comment, lock_holders, open_and_plan, statuses
from tests.emulator import EmulatedRepo, GitHubEmulator

Start = Callable[..., RunningAtlas]


@pytest.fixture
def teams(start_atlas: Start, fixture_repo: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator) -> Start:
    """acme/infra, where carol is in platform and dave in platform-leads; both may write."""
    fixture_repo("multi-project")
    github_emulator.add_org("acme")
    github_emulator.add_team("acme", "platform", members=["carol"])
    github_emulator.add_team("acme", "platform-leads", members=["dave"])
    for user in ("carol", "dave", "erin"):
        github_emulator.set_permission(REPO, user, "write")
    return start_atlas


def test_a_team_that_may_plan_but_not_apply_is_refused_apply_with_the_reason(
    teams: Start, github_emulator: GitHubEmulator
) -> None:
    atlas = teams(gh_team_allowlist="platform:plan, platform-leads:apply")
    pull = open_and_plan(atlas, github_emulator, "more-replicas", app_change(3))

    comment(atlas, pull, "atlas plan", user="carol")
    atlas.wait_idle()
    assert "Plan: 1 to add" in last_bot_comment(github_emulator, pull)

    comment(atlas, pull, "atlas apply", user="carol")
    atlas.wait_idle()
    refused = last_bot_comment(github_emulator, pull)
    assert "Sorry @carol, `apply` needs membership of a team" in refused
    assert "`platform-leads`" in refused and "--gh-team-allowlist" in refused
    assert "You may run: `plan`." in refused
    assert statuses(github_emulator, pull.head_sha, "atlas/apply") == []
    assert lock_holders(atlas) == {"app/default": pull.number}

    comment(atlas, pull, "atlas apply", user="dave")
    atlas.wait_idle()
    assert "Apply complete! Resources: 1 added" in last_bot_comment(github_emulator, pull)


def test_a_user_in_no_listed_team_may_run_nothing_but_help(teams: Start, github_emulator: GitHubEmulator) -> None:
    atlas = teams(gh_team_allowlist="platform:plan,platform-leads:apply")
    pull = open_and_plan(atlas, github_emulator, "more-replicas", app_change(3))
    comment(atlas, pull, "atlas plan", user="erin")
    atlas.wait_idle()
    refused = last_bot_comment(github_emulator, pull)
    assert "Sorry @erin, `plan` needs membership" in refused and "`platform`" in refused
    assert "You may run" not in refused
    comment(atlas, pull, "atlas help", user="erin")
    atlas.wait_idle()
    assert "Sorry" not in last_bot_comment(github_emulator, pull)


def test_star_means_any_team_or_any_command(teams: Start, github_emulator: GitHubEmulator) -> None:
    atlas = teams(gh_team_allowlist="*:plan, platform-leads:*")
    pull = open_and_plan(atlas, github_emulator, "more-replicas", app_change(3))
    comment(atlas, pull, "atlas plan", user="erin")  # in no team: *:plan lets anyone plan
    atlas.wait_idle()
    assert "Plan: 1 to add" in last_bot_comment(github_emulator, pull)
    comment(atlas, pull, "atlas unlock", user="carol")
    atlas.wait_idle()
    assert "Sorry @carol, `unlock`" in last_bot_comment(github_emulator, pull)
    comment(atlas, pull, "atlas apply", user="dave")  # platform-leads:* lets leads run anything
    atlas.wait_idle()
    assert "Apply complete!" in last_bot_comment(github_emulator, pull)


def test_team_rights_come_on_top_of_allow_users(teams: Start, github_emulator: GitHubEmulator) -> None:
    atlas = teams(allow_users="carol,erin", gh_team_allowlist="platform:plan,platform:apply")
    pull = open_and_plan(atlas, github_emulator, "more-replicas", app_change(3))
    comment(atlas, pull, "atlas apply", user="dave")  # not in --allow-users
    atlas.wait_idle()
    assert "--allow-users" in last_bot_comment(github_emulator, pull)
    comment(atlas, pull, "atlas apply", user="erin")  # allowed user, but in no team with apply
    atlas.wait_idle()
    assert "Sorry @erin, `apply` needs membership" in last_bot_comment(github_emulator, pull)
    comment(atlas, pull, "atlas apply", user="carol")
    atlas.wait_idle()
    assert "Apply complete!" in last_bot_comment(github_emulator, pull)


def test_an_org_qualified_team_is_looked_up_in_that_org(teams: Start, github_emulator: GitHubEmulator) -> None:
    github_emulator.add_org("acme-security")
    github_emulator.add_team("acme-security", "auditors", members=["erin"])
    atlas = teams(gh_team_allowlist="acme-security/auditors:plan")
    pull = open_and_plan(atlas, github_emulator, "more-replicas", app_change(3))
    comment(atlas, pull, "atlas plan", user="erin")
    atlas.wait_idle()
    assert "Plan: 1 to add" in last_bot_comment(github_emulator, pull)


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ("platform", 'entry "platform" is not TEAM:COMMAND'),
        ("platform:deploy", 'names the unknown command "deploy"'),
        (":plan", 'entry ":plan" is not TEAM:COMMAND'),
    ],
)
def test_a_malformed_team_allowlist_stops_start_up_naming_the_entry(value: str, complaint: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings({"gh_team_allowlist": value}, env={})
    assert "--gh-team-allowlist" in str(raised.value) and complaint in str(raised.value)


def test_atlantis_command_names_are_accepted() -> None:
    settings = load_settings({"gh_team_allowlist": "ops:state, ops:import, *:unlock"}, env={})
    assert settings.gh_team_allowlist == ["ops:state rm", "ops:import", "*:unlock"]


def test_repos_yaml_team_authz_is_refused_naming_the_alternative(start_atlas: Start, tmp_path: Path) -> None:
    repos_yaml = tmp_path / "repos.yaml"
    repos_yaml.write_text("repos:\n- id: /.*/\nteam_authz:\n  command: /scripts/authz.sh\n  args: [--strict]\n")
    with pytest.raises(ConfigError) as raised:
        start_atlas(repo_config=str(repos_yaml))
    message = str(raised.value)
    assert f"{repos_yaml}: team_authz: atlas does not support" in message and "--gh-team-allowlist" in message
