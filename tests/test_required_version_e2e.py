"""The terraform version a project's code asks for (`required_version`), end to end.

With no `terraform_version` in the repo config, the constraint in the project's `terraform {}`
block chooses the binary: the newest installed or installable version that meets it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from atlas.runtime.required_version import required_version
from tests.atlas_plugin import FIXTURES, RunningAtlas
from tests.commands_world import DEVELOPER, REPO, last_bot_comment, open_and_plan
from tests.conftest import require_binary
from tests.emulator import GitHubEmulator
from tests.tf_release_server import ReleaseServer, serve_releases, write_fake_terraform

Start = Callable[..., RunningAtlas]

SHOW_VERSION = (
    "version: 3\nprojects:\n- dir: app\n  workflow: versioned\n{extra}"
    "workflows:\n  versioned:\n    plan:\n      steps:\n      - run: terraform version\n      - init\n      - plan\n"
)
ALLOW_WORKFLOWS = "repos:\n- id: /.*/\n  allowed_overrides: [workflow]\n  allow_custom_workflows: true\n"
APP_MAIN = (FIXTURES / "multi-project/app/main.tf").read_text()


def asking_for(constraint: str) -> dict[str, str | None]:
    """A change to app/ whose code asks for `constraint`."""
    return {
        "app/main.tf": APP_MAIN.replace("replicas = 2", "replicas = 3"),
        "app/versions.tf": f'terraform {{\n  required_version = "{constraint}"\n}}\n',
    }


@pytest.fixture
def releases(tmp_path: Path) -> Iterator[ReleaseServer]:
    real = require_binary("terraform", "install Terraform 1.11 from https://developer.hashicorp.com/terraform/install")
    with serve_releases(tmp_path / "releases", ("1.5.7", "1.10.5", "1.11.2", "1.11.4"), real) as server:
        yield server


@pytest.fixture
def versioned(
    start_atlas: Start, github_emulator: GitHubEmulator, state_dir: Path, tmp_path: Path, releases: ReleaseServer,
) -> Callable[..., RunningAtlas]:
    """acme/infra whose app project shows `terraform version` before planning; atlas downloads from `releases`."""

    def start(extra: str = "", **settings: object) -> RunningAtlas:
        github_emulator.create_repo(REPO, source_dir=FIXTURES / "multi-project",
                                    files={"atlas.yaml": SHOW_VERSION.format(extra=extra)},
                                    substitutions={"__STATE_DIR__": str(state_dir)})
        github_emulator.set_permission(REPO, DEVELOPER, "write")
        repos_yaml = tmp_path / "repos.yaml"
        repos_yaml.write_text(ALLOW_WORKFLOWS)
        return start_atlas(repo_config=str(repos_yaml), tf_download_url=releases.url, **settings)

    return start


def test_required_version_picks_the_newest_release_that_meets_it(
    versioned: Callable[..., RunningAtlas], github_emulator: GitHubEmulator, releases: ReleaseServer, tmp_path: Path,
) -> None:
    # The server's own terraform is too old for the code, so the newest release that meets it is installed.
    old = write_fake_terraform(tmp_path / "old" / "terraform", "1.5.7", require_binary("terraform", "install it"))
    atlas = versioned(terraform_bin=str(old))
    pull = open_and_plan(atlas, github_emulator, "pin", asking_for(">= 1.11.0, < 1.12.0"))
    said = last_bot_comment(github_emulator, pull)
    assert "Terraform v1.11.4" in said and "Plan: 1 to add" in said
    assert releases.count(releases.zip_name("1.11.4")) == 1
    assert releases.count(releases.zip_name("1.11.2")) == 0


def test_required_version_met_by_the_installed_terraform_downloads_nothing(
    versioned: Callable[..., RunningAtlas], github_emulator: GitHubEmulator, releases: ReleaseServer,
) -> None:
    atlas = versioned()
    pull = open_and_plan(atlas, github_emulator, "pin", asking_for(">= 1.5, < 2.0"))
    said = last_bot_comment(github_emulator, pull)
    assert "Plan: 1 to add" in said
    assert not any(path.endswith(".zip") for path in releases.requests)


def test_terraform_version_in_the_repo_config_wins_over_required_version(
    versioned: Callable[..., RunningAtlas], github_emulator: GitHubEmulator,
) -> None:
    atlas = versioned(extra="  terraform_version: 1.5.7\n")
    pull = open_and_plan(atlas, github_emulator, "pin", asking_for(">= 1.0"))
    assert "Terraform v1.5.7" in last_bot_comment(github_emulator, pull)


def test_a_required_version_nothing_meets_is_a_comment_saying_so(
    versioned: Callable[..., RunningAtlas], github_emulator: GitHubEmulator, releases: ReleaseServer,
) -> None:
    atlas = versioned()
    pull = open_and_plan(atlas, github_emulator, "pin", asking_for(">= 9.0"))
    said = last_bot_comment(github_emulator, pull)
    assert 'Terraform required_version in versions.tf ">= 9.0"' in said
    assert 'no terraform release matches ">= 9.0"' in said and "1.11.4" in said
    assert "Change the version constraint" in said


def test_required_version_with_downloads_off_names_what_is_installed(
    versioned: Callable[..., RunningAtlas], github_emulator: GitHubEmulator,
) -> None:
    atlas = versioned(tf_download=False)
    pull = open_and_plan(atlas, github_emulator, "pin", asking_for("~> 1.10.0"))
    said = last_bot_comment(github_emulator, pull)
    assert 'required_version in versions.tf "~> 1.10.0"' in said and "--tf-download=false" in said


def test_every_file_s_required_version_counts_and_broken_files_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "a.tf").write_text('terraform {\n  required_version = ">= 1.5"\n}\n')
    (tmp_path / "b.tf").write_text('terraform {\n  required_version = "< 2.0"\n  backend "local" {}\n}\n')
    (tmp_path / "c.tf").write_text("resource {{{ broken\n")
    (tmp_path / "notes.txt").write_text('terraform { required_version = "= 0.1" }\n')
    found = required_version(tmp_path)
    assert found is not None
    assert found.constraint == ">= 1.5, < 2.0" and found.files == ("a.tf", "b.tf")
    assert required_version(tmp_path / "missing") is None
