"""OpenTofu end to end: a project (or the server) asks for opentofu, and atlas runs `tofu`, not terraform.

The `tofu` here is a real executable named tofu that the test provides: it says it is OpenTofu,
writes every call to a log, and runs the real terraform for the work, so plans and applies are
real. The log proves which binary ran.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from atlas.config.settings import load_settings
from tests.atlas_plugin import FIXTURES, RunningAtlas
from tests.commands_world import DEVELOPER, REPO, app_change, comment, db_change, last_bot_comment, open_and_plan
from tests.conftest import require_binary
from tests.emulator import EmulatedRepo, GitHubEmulator
from tests.tf_release_server import ReleaseServer, serve_tofu_releases, write_fake_tofu

Start = Callable[..., RunningAtlas]

TOFU_PROJECT = "version: 3\nprojects:\n- dir: app\n  terraform_distribution: opentofu\n- dir: db\n"


@pytest.fixture
def real_terraform() -> str:
    return require_binary("terraform", "install Terraform 1.11 from https://developer.hashicorp.com/terraform/install")


@pytest.fixture
def calls(tmp_path: Path) -> Path:
    """Where every `tofu` of these tests writes its calls (reachable, read-write, from the sandbox)."""
    directory = tmp_path / "tofu-calls"
    directory.mkdir()
    return directory / "calls.log"


@pytest.fixture
def repo_with(github_emulator: GitHubEmulator, state_dir: Path) -> Callable[[dict[str, str]], EmulatedRepo]:
    def create(files: dict[str, str]) -> EmulatedRepo:
        repo = github_emulator.create_repo(REPO, source_dir=FIXTURES / "multi-project", files=files,
                                           substitutions={"__STATE_DIR__": str(state_dir)})
        github_emulator.set_permission(REPO, DEVELOPER, "write")
        return repo

    return create


def tofu_calls(calls: Path) -> list[str]:
    return calls.read_text().splitlines() if calls.exists() else []


def test_a_project_asking_for_opentofu_is_planned_and_applied_with_tofu(
    start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator,
    tmp_path: Path, real_terraform: str, calls: Path,
) -> None:
    tofu = write_fake_tofu(tmp_path / "tools" / "tofu", "1.8.2", real_terraform, calls)
    repo_with({"atlas.yaml": TOFU_PROJECT})
    atlas = start_atlas(tofu_bin=str(tofu), reachable=(calls.parent,))
    pull = open_and_plan(atlas, github_emulator, "both", {**app_change(3), **db_change("staging")})

    said = last_bot_comment(github_emulator, pull)
    assert "1. dir: `app` workspace: `default` with OpenTofu 1.8.2" in said
    assert "1. dir: `db` workspace: `default`\n" in said  # the terraform project is not named OpenTofu
    assert "2 projects, 2 with changes, 0 with no changes, 0 failed." in said  # by tofu and by terraform
    ran = tofu_calls(calls)
    assert any(line.startswith("tofu init") for line in ran) and any(line.startswith("tofu plan") for line in ran)
    assert len([line for line in ran if line.startswith("tofu plan")]) == 1  # db was planned by terraform

    comment(atlas, pull, "atlas apply -d app")
    atlas.wait_idle()
    applied = last_bot_comment(github_emulator, pull)
    assert "Ran Apply for dir: `app` workspace: `default` with OpenTofu 1.8.2" in applied
    assert "Apply complete! Resources: 1 added" in applied
    assert any(line.startswith("tofu apply") for line in tofu_calls(calls))


def test_the_server_default_distribution_runs_tofu_from_path(
    start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator,
    tmp_path: Path, real_terraform: str, calls: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_fake_tofu(tmp_path / "path-bin" / "tofu", "1.9.0", real_terraform, calls)
    monkeypatch.setenv("PATH", f"{tmp_path / 'path-bin'}:{Path(real_terraform).parent}:/usr/bin:/bin")
    repo_with({})
    atlas = start_atlas(default_tf_distribution="opentofu", reachable=(calls.parent,))
    pull = open_and_plan(atlas, github_emulator, "x", app_change(3))
    said = last_bot_comment(github_emulator, pull)
    assert "Ran Plan for dir: `app` workspace: `default` with OpenTofu 1.9.0" in said
    assert "Plan: 1 to add" in said
    assert any(line.startswith("tofu plan") for line in tofu_calls(calls))


def test_a_project_may_ask_for_terraform_on_an_opentofu_server(
    start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator,
    tmp_path: Path, real_terraform: str, calls: Path,
) -> None:
    tofu = write_fake_tofu(tmp_path / "tools" / "tofu", "1.9.0", real_terraform, calls)
    repo_with({"atlas.yaml": "version: 3\nprojects:\n- dir: app\n  terraform_distribution: terraform\n"})
    atlas = start_atlas(tf_distribution="opentofu", tofu_bin=str(tofu), reachable=(calls.parent,))
    pull = open_and_plan(atlas, github_emulator, "x", app_change(3))
    said = last_bot_comment(github_emulator, pull)
    assert "Ran Plan for dir: `app` workspace: `default`\n" in said and "OpenTofu" not in said
    assert tofu_calls(calls) == []


@pytest.fixture
def tofu_releases(tmp_path: Path, real_terraform: str, calls: Path) -> Iterator[ReleaseServer]:
    with serve_tofu_releases(tmp_path / "tofu-releases", ("1.7.3", "1.8.5"), real_terraform, calls) as server:
        yield server


def test_a_pinned_opentofu_version_is_downloaded_checked_and_run(
    start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator,
    tofu_releases: ReleaseServer, calls: Path,
) -> None:
    repo_with({"atlas.yaml": "version: 3\nprojects:\n- dir: app\n  terraform_distribution: opentofu\n"
                             "  terraform_version: 1.7.3\n"})
    atlas = start_atlas(tofu_download_url=tofu_releases.url, tofu_index_url=f"{tofu_releases.url}/tofu/api.json",
                        reachable=(calls.parent,))
    pull = open_and_plan(atlas, github_emulator, "x", app_change(3))
    said = last_bot_comment(github_emulator, pull)
    assert "with OpenTofu 1.7.3" in said and "Plan: 1 to add" in said
    assert tofu_releases.count(f"tofu_1.7.3_{tofu_releases.platform}.zip") == 1
    assert tofu_releases.count("tofu_1.7.3_SHA256SUMS") == 1
    installed = atlas.settings.data_dir / "tofu-versions" / "1.7.3" / "tofu"
    assert installed.is_file()
    assert any(line.startswith("tofu plan") for line in tofu_calls(calls))


def test_a_tampered_opentofu_download_fails_the_project_and_installs_nothing(
    start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator,
    tofu_releases: ReleaseServer, calls: Path,
) -> None:
    archive = tofu_releases.root / "v1.8.5" / f"tofu_1.8.5_{tofu_releases.platform}.zip"
    archive.write_bytes(archive.read_bytes() + b"tampered")
    repo_with({"atlas.yaml": "version: 3\nprojects:\n- dir: app\n  terraform_distribution: opentofu\n"
                             "  terraform_version: '~> 1.8.0'\n"})
    atlas = start_atlas(tofu_download_url=tofu_releases.url, tofu_index_url=f"{tofu_releases.url}/tofu/api.json")
    pull = open_and_plan(atlas, github_emulator, "x", app_change(3))
    said = last_bot_comment(github_emulator, pull)
    assert "refused tofu 1.8.5" in said and "does not match its SHA256SUMS" in said
    assert not (atlas.settings.data_dir / "tofu-versions" / "1.8.5").exists()
    assert tofu_calls(calls) == []


def test_opentofu_missing_from_path_fails_the_project_saying_what_to_install(
    start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator, tmp_path: Path,
) -> None:
    repo_with({"atlas.yaml": "version: 3\nprojects:\n- dir: app\n  terraform_distribution: opentofu\n"})
    atlas = start_atlas(tofu_bin=str(tmp_path / "nowhere" / "tofu"))
    pull = open_and_plan(atlas, github_emulator, "x", app_change(3))
    said = last_bot_comment(github_emulator, pull)
    assert "OpenTofu" in said and "nowhere/tofu" in said


def test_both_atlantis_names_of_the_distribution_setting_are_accepted(tmp_path: Path) -> None:
    assert load_settings({"tf_distribution": "OpenTofu"}, env={}).tf_distribution == "opentofu"
    assert load_settings({"default-tf-distribution": "opentofu"}, env={}).tf_distribution == "opentofu"
    config = tmp_path / "config.yaml"
    config.write_text("default-tf-distribution: opentofu\n")
    assert load_settings(config_file=config, env={}).tf_distribution == "opentofu"
