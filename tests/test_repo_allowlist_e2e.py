"""`--repo-allowlist` exclusions (`!` entries, as Atlantis reads them) end to end: an excluded repository
is refused whatever else matches it."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from atlas.config.settings import Settings, SettingsError, load_settings
from atlas.runtime.sandbox import Unconfined
from atlas.startup import log_startup
from tests.atlas_plugin import RunningAtlas
from tests.commands_world import REPO, app_change, last_bot_comment
from tests.emulator import EmulatedRepo, GitHubEmulator

Start = Callable[..., RunningAtlas]


@pytest.fixture
def repos(fixture_repo: Callable[..., EmulatedRepo]) -> None:
    fixture_repo("multi-project", "acme/infra")
    fixture_repo("multi-project", "acme/secrets")


def test_an_excluded_repository_is_refused_while_its_siblings_are_planned(
    repos: None, start_atlas: Start, github_emulator: GitHubEmulator,
) -> None:
    atlas = start_atlas(repo_allowlist="127.0.0.1/acme/*, !127.0.0.1/acme/secrets")
    secret = github_emulator.open_pull("acme/secrets", "change", app_change(3))
    response = atlas.pull_event(secret)
    assert response.status_code == 403
    assert "127.0.0.1/acme/secrets" in response.text and "--repo-allowlist" in response.text
    atlas.wait_idle()
    assert github_emulator.comments("acme/secrets", secret.number) == []

    allowed = github_emulator.open_pull(REPO, "change", app_change(3))
    assert atlas.pull_event(allowed).status_code == 202
    atlas.wait_idle()
    assert "Plan: 1 to add" in last_bot_comment(github_emulator, allowed)


def test_an_exclusion_wins_over_star_and_is_case_insensitive(
    repos: None, start_atlas: Start, github_emulator: GitHubEmulator,
) -> None:
    atlas = start_atlas(repo_allowlist="*,!127.0.0.1/ACME/Secret*")
    secret = github_emulator.open_pull("acme/secrets", "change", app_change(3))
    assert atlas.pull_event(secret).status_code == 403


@pytest.mark.parametrize(
    ("allowlist", "repo", "allowed"),
    [
        ("github.com/acme/*,!github.com/acme/secrets", "github.com/acme/infra", True),
        ("github.com/acme/*,!github.com/acme/secrets", "github.com/acme/secrets", False),
        ("!github.com/acme/secrets,github.com/acme/*", "github.com/acme/secrets", False),
        ("*,!github.com/acme/*", "github.com/other/infra", True),
        ("*,!github.com/acme/*", "github.com/acme/infra", False),
        ("!github.com/acme/secrets", "github.com/acme/infra", False),
    ],
)
def test_allowlist_semantics_follow_atlantis(allowlist: str, repo: str, allowed: bool) -> None:
    assert Settings(repo_allowlist=allowlist).repo_allowed(repo) is allowed


def test_a_bare_bang_is_refused_at_start_up() -> None:
    with pytest.raises(SettingsError, match='entry "!" excludes nothing'):
        load_settings({"repo_allowlist": "*,!"}, env={})


def test_an_allowlist_of_exclusions_only_warns_that_it_allows_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = load_settings({"repo_allowlist": "!github.com/acme/secrets"}, env={})
    with caplog.at_level(logging.WARNING, logger="atlas"):
        log_startup(settings, "server", Unconfined("test"))
    assert "only exclusions" in caplog.text and "allows no repository" in caplog.text
