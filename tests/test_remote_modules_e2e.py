"""Root modules whose modules come over git: planned through the server, `init` re-run only when needed.

The library is `acme/terraform-modules` on the emulated GitHub (tests/module_library.py), fetched by
terraform's own git inside the sandbox, without atlas's token.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.atlas_plugin import FIXTURES, RunningAtlas
from tests.emulator import GitHubEmulator
from tests.module_library import library_fetches, publish_module_library, remote_modules_repo

REPO = "acme/infra"
SKIPPED = "atlas: init skipped"


def service_with(emulator: GitHubEmulator, old: str, new: str) -> dict[str, str]:
    """A change to `service/main.tf` as committed (its sources pointing at `emulator`): `old` becomes `new`."""
    text = (FIXTURES / "remote-modules/service/main.tf").read_text().replace("__MODULES_URL__", emulator.base_url)
    assert old in text
    return {"service/main.tf": text.replace(old, new)}


def job_logs(atlas: RunningAtlas) -> dict[Path, str]:
    return {path: path.read_text() for path in (atlas.settings.data_dir / "jobs").glob("*.log")}


def new_job_log(atlas: RunningAtlas, before: dict[Path, str]) -> str:
    [log] = [text for path, text in job_logs(atlas).items() if path not in before]
    return log


def test_git_module_sources_are_downloaded_by_init_and_planned(
    start_atlas: Callable[..., RunningAtlas], github_emulator: GitHubEmulator, state_dir: Path,
) -> None:
    atlas = start_atlas()
    publish_module_library(github_emulator)
    remote_modules_repo(github_emulator, state_dir)
    pull = github_emulator.open_pull(REPO, "more-replicas",
                                     service_with(github_emulator, "replicas    = 2", "replicas    = 3"))

    assert atlas.pull_event(pull).status_code == 202
    atlas.wait_idle()

    [body] = [c["body"] for c in github_emulator.comments(REPO, pull.number)]
    assert "Ran Plan for dir: `service` workspace: `default`" in body
    assert "Plan: 2 to add, 0 to change, 0 to destroy." in body
    assert "production-web-dns" in body and "-v2" not in body  # the modules of tag v1
    assert library_fetches(github_emulator) > 0
    [log] = job_logs(atlas).values()
    assert "$ terraform init" in log and SKIPPED not in log
    assert "Downloading git::http://127.0.0.1:" in log
    assert github_emulator.token not in log and github_emulator.token not in body


def test_a_push_that_keeps_the_module_sources_skips_init_and_a_new_ref_runs_it_again(
    start_atlas: Callable[..., RunningAtlas], github_emulator: GitHubEmulator, state_dir: Path,
) -> None:
    atlas = start_atlas()
    publish_module_library(github_emulator)
    remote_modules_repo(github_emulator, state_dir)
    pull = github_emulator.open_pull(REPO, "more-replicas",
                                     service_with(github_emulator, "replicas    = 2", "replicas    = 3"))
    atlas.pull_event(pull)
    atlas.wait_idle()
    fetched = library_fetches(github_emulator)

    before = job_logs(atlas)
    github_emulator.push(REPO, pull.number, service_with(github_emulator, "replicas    = 2", "replicas    = 4"))
    atlas.pull_event(github_emulator.pull(REPO, pull.number), "synchronize")
    atlas.wait_idle()

    log = new_job_log(atlas, before)
    assert SKIPPED in log and "$ terraform init" not in log
    assert library_fetches(github_emulator) == fetched, "no module was downloaded again"
    replan = github_emulator.comments(REPO, pull.number)[-1]["body"]
    assert "Plan: 2 to add" in replan and "replicas = 4" in replan

    before = job_logs(atlas)
    github_emulator.push(REPO, pull.number, service_with(github_emulator, "?ref=v1", "?ref=v2"))
    atlas.pull_event(github_emulator.pull(REPO, pull.number), "synchronize")
    atlas.wait_idle()

    log = new_job_log(atlas, before)
    assert SKIPPED not in log and "$ terraform init" in log
    assert library_fetches(github_emulator) > fetched
    assert "production-web-dns-v2" in github_emulator.comments(REPO, pull.number)[-1]["body"]


def test_a_private_module_repository_is_not_read_with_atlas_token(
    start_atlas: Callable[..., RunningAtlas], github_emulator: GitHubEmulator, state_dir: Path,
) -> None:
    atlas = start_atlas()
    publish_module_library(github_emulator, private=True)
    remote_modules_repo(github_emulator, state_dir)
    pull = github_emulator.open_pull(REPO, "more-replicas",
                                     service_with(github_emulator, "replicas    = 2", "replicas    = 3"))

    atlas.pull_event(pull)
    atlas.wait_idle()

    [body] = [c["body"] for c in github_emulator.comments(REPO, pull.number)]
    assert "**Plan Error**: Failed to download module" in body and "could not read Username" in body
    library = [r.status for r in github_emulator.requests if r.path.startswith("/acme/terraform-modules.git/")]
    assert library and set(library) == {401}, "terraform asked without credentials and was refused"
    assert github_emulator.token not in body and github_emulator.token not in "".join(job_logs(atlas).values())
