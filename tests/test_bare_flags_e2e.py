"""Boolean flags take the bare form, as Atlantis's do: `--apply-on-merge` alone means true."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from atlas.cli.main import build_parser
from atlas.cli.subcommand import settings_from_args
from atlas.config.settings import Settings, SettingsError, setting_infos
from tests.atlas_plugin import RunningAtlas
from tests.commands_world import DEVELOPER, REPO, app_change, open_and_plan
from tests.emulator import EmulatedRepo, GitHubEmulator, webhook_payload

Start = Callable[..., RunningAtlas]

BOOLEANS = [info for info in setting_infos() if info.is_bool and info.name != "gh_checks"]
"""Every boolean setting but `--gh-checks`, which is refused without a GitHub App (test_github_app_settings)."""


def server_settings(*argv: str) -> Settings:
    return settings_from_args(build_parser().parse_args(["server", *argv]))


def given_flags(*argv: str) -> dict[str, object]:
    """The settings `atlas server ARGV` gives, as the server's own parser reads them."""
    args = build_parser().parse_args(["server", *argv])
    return {info.name: getattr(args, info.name) for info in setting_infos() if hasattr(args, info.name)}


def test_bare_apply_on_merge_starts_a_server_that_applies_on_merge(
    start_atlas: Start, fixture_repo: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator, state_dir: Path,
) -> None:
    fixture_repo("multi-project")
    github_emulator.set_permission(REPO, DEVELOPER, "write")
    atlas = start_atlas(**given_flags("--apply-on-merge", "--hide-prev-plan-comments"))
    assert atlas.settings.apply_on_merge == "true" and atlas.settings.hide_prev_plan_comments is True
    pull = open_and_plan(atlas, github_emulator, "more-replicas", app_change(3))
    assert not (state_dir / "multi-project/app.tfstate").exists()
    merged = webhook_payload("pull_request", pull, "closed", merged=True)
    assert atlas.deliver("pull_request", merged).status_code == 202
    atlas.wait_idle()
    state = json.loads((state_dir / "multi-project/app.tfstate").read_text())
    assert state["resources"], "the merge was not applied"


@pytest.mark.parametrize(("argv", "mode"), [
    (("--apply-on-merge",), "true"),
    (("--apply-on-merge", "only"), "only"),
    (("--apply-on-merge=always",), "always"),
    (("--apply-on-merge", "false"), "false"),
    (("--apply-on-merge", "--automerge"), "true"),
])
def test_apply_on_merge_keeps_its_modes(argv: tuple[str, ...], mode: str) -> None:
    assert server_settings(*argv).apply_on_merge == mode


@pytest.mark.parametrize("name", [info.name for info in BOOLEANS])
def test_every_boolean_flag_is_true_alone_and_takes_a_value(name: str) -> None:
    flag = "--" + name.replace("_", "-")
    assert getattr(server_settings(flag), name) is True
    assert getattr(server_settings(f"{flag}=false"), name) is False
    assert getattr(server_settings(flag, "false"), name) is False
    assert getattr(server_settings(f"{flag}=true"), name) is True
    assert getattr(server_settings(f"--no-{flag[2:]}"), name) is False


def test_a_boolean_flag_with_a_wrong_value_is_refused_naming_it() -> None:
    with pytest.raises(SettingsError, match=r"--automerge .*must be true or false"):
        server_settings("--automerge=sometimes")
