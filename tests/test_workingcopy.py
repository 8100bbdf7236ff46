"""Git working copies against the GitHub emulator's git smart-HTTP server, with the real git."""

from __future__ import annotations

import base64
import fcntl
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from atlas.models import Repo
from atlas.runtime.joblog import JobLog
from atlas.runtime.workingcopy import WorkingCopies, WorkingCopyError
from tests.conftest import require_binary
from tests.emulator.server import GitHubEmulator

FIXTURES = Path(__file__).resolve().parent.parent / "terraform-fixtures"
GIT_HINT = "install git (apt-get install git)"


class World:
    """A private repository with an open pull request on the emulator, and working copies of it."""

    def __init__(self, tmp_path: Path, emulator: GitHubEmulator, *, git: str | None = None) -> None:
        self.tmp_path = tmp_path
        self.emulator = emulator
        self.token: str = emulator.token
        self.emulated = emulator.create_repo(
            "acme/infra",
            source_dir=FIXTURES / "multi-project",
            substitutions={"__STATE_DIR__": str(tmp_path / "state")},
        )
        self.pull = emulator.open_pull("acme/infra", "grow-app", {"app/replicas.tf": "locals {\n  replicas = 3\n}\n"})
        self.repo = Repo(full_name="acme/infra", clone_url=self.emulated.clone_url, html_url=self.emulated.html_url)
        self.root = tmp_path / "data" / "repos"
        self.copies = WorkingCopies(self.root, git or require_binary("git", GIT_HINT), git_url=emulator.base_url)
        self.log = JobLog(tmp_path / "data" / "jobs" / "job.log")

    def checkout(self, sha: str | None = None, *, workspace: str = "default", **kwargs: Any) -> Path:
        kwargs.setdefault("token", self.token)
        kwargs.setdefault("log", self.log)
        return self.copies.checkout(self.repo, self.pull.number, workspace, sha or self.pull.head_sha, **kwargs)


def git_out(path: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=path, capture_output=True, text=True, check=True).stdout.strip()


def files_containing(root: Path, needle: str) -> list[Path]:
    """Every file under `root` whose bytes contain `needle` (what `grep -r` would find)."""
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink() and needle.encode() in path.read_bytes():
            found.append(path)
    return found


def test_the_first_checkout_clones_the_pull_request_at_exactly_its_head(
    tmp_path: Path, github_emulator: GitHubEmulator
) -> None:
    world = World(tmp_path, github_emulator)

    path = world.checkout()

    assert path == world.root / "acme" / "infra" / str(world.pull.number) / "default"
    assert path == world.copies.path_for("acme/infra", world.pull.number, "default")
    assert git_out(path, "rev-parse", "HEAD") == world.pull.head_sha
    assert (path / "app" / "replicas.tf").read_text() == "locals {\n  replicas = 3\n}\n"
    assert str(tmp_path / "state") in (path / "app" / "backend.tf").read_text()
    assert git_out(path, "status", "--porcelain") == ""
    assert git_out(path, "remote", "get-url", "origin") == world.emulated.clone_url


def test_a_new_push_is_fetched_into_the_same_copy_keeping_terraform_init(
    tmp_path: Path, github_emulator: GitHubEmulator
) -> None:
    world = World(tmp_path, github_emulator)
    path = world.checkout()
    inode = path.stat().st_ino
    (path / "app" / ".terraform" / "modules").mkdir(parents=True)
    (path / "app" / ".terraform" / "modules" / "modules.json").write_text("{}")
    (path / "app" / "leftover.tfplan").write_text("untracked")
    (path / "app" / "main.tf").write_text("# edited by a previous run\n")
    new_sha = github_emulator.push("acme/infra", world.pull.number, {"app/replicas.tf": None, "db/new.tf": ""})

    again = world.checkout(new_sha)

    assert again == path and path.stat().st_ino == inode, "fetched into the copy, not cloned afresh"
    assert git_out(path, "rev-parse", "HEAD") == new_sha
    assert (path / "app" / ".terraform" / "modules" / "modules.json").read_text() == "{}"
    assert not (path / "app" / "leftover.tfplan").exists()
    assert not (path / "app" / "replicas.tf").exists()
    assert (path / "db" / "new.tf").exists()
    assert "edited by a previous run" not in (path / "app" / "main.tf").read_text()
    log = world.log.read()
    assert log.count("$ git -c init.defaultBranch=atlas init -q") == 1
    assert log.count(f"$ git fetch --no-tags --depth=1 origin {new_sha}") == 1


def test_checking_out_an_earlier_commit_again_works(tmp_path: Path, github_emulator: GitHubEmulator) -> None:
    world = World(tmp_path, github_emulator)
    first = world.pull.head_sha
    world.checkout()
    second = github_emulator.push("acme/infra", world.pull.number, {"app/more.tf": ""})
    world.checkout(second)

    path = world.checkout(first)

    assert git_out(path, "rev-parse", "HEAD") == first
    assert not (path / "app" / "more.tf").exists()


def test_a_fork_pull_request_is_fetched_through_the_base_repository(
    tmp_path: Path, github_emulator: GitHubEmulator
) -> None:
    """The fork's own URL is never used: its commits come from the base repository's pull refs."""
    world = World(tmp_path, github_emulator)
    fork_pull = github_emulator.open_pull(
        "acme/infra", "fork-change", {"db/fork.tf": ""}, author="mallory", from_fork=True
    )

    path = world.copies.checkout(world.repo, fork_pull.number, "default", fork_pull.head_sha, world.token)

    assert git_out(path, "rev-parse", "HEAD") == fork_pull.head_sha
    assert git_out(path, "remote", "get-url", "origin") == world.emulated.clone_url


def test_the_clone_url_is_the_configured_hosts_whatever_the_repository_names(
    tmp_path: Path, github_emulator: GitHubEmulator
) -> None:
    world = World(tmp_path, github_emulator)
    world.repo = Repo(full_name="acme/infra", clone_url="http://127.0.0.1:9/acme/infra.git",
                      html_url="http://127.0.0.1:9/acme/infra")

    path = world.checkout()

    assert git_out(path, "remote", "get-url", "origin") == f"{github_emulator.base_url}/acme/infra.git"
    assert git_out(path, "rev-parse", "HEAD") == world.pull.head_sha


def test_a_refused_token_is_a_readable_error_without_the_token(tmp_path: Path, github_emulator: GitHubEmulator) -> None:
    world = World(tmp_path, github_emulator)
    wrong = "ghp_" + "0123456789abcdef" * 2

    with pytest.raises(WorkingCopyError) as raised:
        world.checkout(token=wrong)

    message = str(raised.value)
    assert message.startswith(f"git could not authenticate to 127.0.0.1:{github_emulator.port}")
    assert "cannot read acme/infra" in message
    assert wrong not in message
    assert base64.b64encode(f"x-access-token:{wrong}".encode()).decode() not in message
    assert wrong not in world.log.read()
    assert files_containing(world.root, wrong) == []

    with pytest.raises(WorkingCopyError, match="could not authenticate"):
        world.checkout(token=None)


def test_a_commit_that_is_not_in_the_repository_is_a_readable_error(
    tmp_path: Path, github_emulator: GitHubEmulator
) -> None:
    world = World(tmp_path, github_emulator)
    missing = "0123456789abcdef0123456789abcdef01234567"

    with pytest.raises(WorkingCopyError, match=r"commit 0123456789ab is not in acme/infra"):
        world.checkout(missing)


@pytest.mark.parametrize(
    ("sha", "git_url", "full_name", "message"),
    [
        ("HEAD", None, "acme/infra", "'HEAD' is not a full commit sha"),
        ("--upload-pack=touch /tmp/x", None, "acme/infra", "is not a full commit sha"),
        (None, "http://x-access-token:ghp_x@127.0.0.1:1", "acme/infra", "must not contain credentials"),
        (None, "ext::sh -c touch% /tmp/pwned", "acme/infra", "must be an http:// or https:// URL"),
        (None, None, "acme/../../evil", "is not a repository name"),
        (None, None, "acme/infra@evil.example", "is not a repository name"),
    ],
)
def test_suspicious_shas_and_urls_are_refused_before_git_runs(
    tmp_path: Path, github_emulator: GitHubEmulator, sha: str | None, git_url: str | None, full_name: str,
    message: str,
) -> None:
    world = World(tmp_path, github_emulator)
    if git_url is not None:
        world.copies.git_url = git_url
    world.repo = world.repo.model_copy(update={"full_name": full_name})

    with pytest.raises(WorkingCopyError, match=message):
        world.checkout(sha)

    assert not world.root.exists() or not any(world.root.rglob(".git"))


def test_the_token_is_stored_nowhere_and_reaches_git_only_as_a_header_of_fetch(
    tmp_path: Path, github_emulator: GitHubEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in git that records its argv and environment, then runs the real git.
    calls = tmp_path / "git-calls"
    real_git = require_binary("git", GIT_HINT)
    wrapper = tmp_path / "recording-git"
    wrapper.write_text(
        f"""#!/bin/sh
{{ echo "ARGV $*"; env | sed 's/^/ENV /'; echo "END"; }} >> {calls}
exec {real_git} "$@"
"""
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("ATLAS_GH_TOKEN", "ghp_server_setting")
    world = World(tmp_path, github_emulator, git=str(wrapper))
    monkeypatch.setenv("COPY_OF_TOKEN", f"token={world.token}")
    world.checkout()
    world.checkout(github_emulator.push("acme/infra", world.pull.number, {"x.tf": ""}))

    header = "Authorization: Basic " + base64.b64encode(f"x-access-token:{world.token}".encode()).decode()
    invocations = [block.splitlines() for block in calls.read_text().split("END\n") if block.strip()]
    assert invocations
    for lines in invocations:
        argv = lines[0]
        env = dict(line[4:].split("=", 1) for line in lines[1:] if line.startswith("ENV ") and "=" in line)
        assert world.token not in argv
        assert "ATLAS_GH_TOKEN" not in env and "COPY_OF_TOKEN" not in env
        assert env["GIT_TERMINAL_PROMPT"] == "0"
        headers = [value for value in env.values() if value.startswith("Authorization:")]
        assert headers == ([header] if argv.startswith("ARGV fetch") else [])
    assert files_containing(world.root, world.token) == []
    assert files_containing(world.root, header.split()[-1]) == []
    assert world.token not in world.log.read()


def test_no_file_under_the_root_holds_the_token_after_a_checkout(
    tmp_path: Path, github_emulator: GitHubEmulator
) -> None:
    world = World(tmp_path, github_emulator)
    path = world.checkout()
    world.checkout(github_emulator.push("acme/infra", world.pull.number, {"x.tf": ""}))

    assert files_containing(world.root, world.token) == []
    config = world.copies.mirror_for("acme/infra") / "config"
    assert (path / ".git").is_file(), "the copy is a work tree of the mirror"
    assert world.token not in config.read_text()
    assert "extraheader" not in config.read_text().lower()


def test_concurrent_checkouts_of_one_copy_take_turns(tmp_path: Path, github_emulator: GitHubEmulator) -> None:
    world = World(tmp_path, github_emulator)
    second = github_emulator.push("acme/infra", world.pull.number, {"app/second.tf": ""})
    errors: list[BaseException] = []

    def checkout(sha: str) -> None:
        try:
            for _ in range(3):
                world.checkout(sha)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=checkout, args=(sha,)) for sha in (world.pull.head_sha, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    path = world.checkout(second)
    assert git_out(path, "status", "--porcelain") == ""


def test_a_checkout_waits_for_another_process_holding_the_copy(tmp_path: Path, github_emulator: GitHubEmulator) -> None:
    world = World(tmp_path, github_emulator)
    path = world.copies.path_for("acme/infra", world.pull.number, "default")
    lock_file = path.with_name(".default.lock")
    lock_file.parent.mkdir(parents=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            f"fd = os.open({str(lock_file)!r}, os.O_RDWR | os.O_CREAT)\n"
            f"fcntl.flock(fd, {fcntl.LOCK_EX})\n"
            "print('locked', flush=True)\n"
            "time.sleep(1.0)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        started = time.monotonic()
        world.checkout()
        waited = time.monotonic() - started
    finally:
        holder.wait()

    assert waited >= 0.5
    assert git_out(path, "rev-parse", "HEAD") == world.pull.head_sha


def test_remove_pull_deletes_every_workspace_of_that_pull_request_only(
    tmp_path: Path, github_emulator: GitHubEmulator
) -> None:
    world = World(tmp_path, github_emulator)
    other = github_emulator.open_pull("acme/infra", "other", {"db/other.tf": ""})
    default = world.checkout()
    staging = world.checkout(workspace="staging")
    other_copy = world.copies.checkout(world.repo, other.number, "default", other.head_sha, world.token)

    world.copies.remove_pull("acme/infra", world.pull.number)

    assert not default.exists() and not staging.exists()
    assert not default.parent.exists()
    assert git_out(other_copy, "rev-parse", "HEAD") == other.head_sha
    world.copies.remove_pull("acme/infra", 999)
    assert world.checkout() == default, "a removed pull request can be checked out again"


def test_paths_are_sanitised_against_traversal_and_stay_distinct(tmp_path: Path) -> None:
    copies = WorkingCopies(tmp_path / "repos")

    assert copies.path_for("acme/infra", 7, "default") == tmp_path / "repos" / "acme" / "infra" / "7" / "default"
    evil = [
        copies.path_for("../etc", 1, "default"),
        copies.path_for("acme/..", 1, "default"),
        copies.path_for("acme/infra", 1, "../../../../tmp"),
        copies.path_for("acme/infra", 1, ".."),
        copies.path_for("acme/infra", 1, "."),
        copies.path_for("acme/infra", 1, ".hidden"),
        copies.path_for("acme/infra", 1, "a/b"),
        copies.path_for("acme/infra", 1, "a_b"),
    ]
    for path in evil:
        assert os.path.normpath(path) == str(path)
        assert path.is_relative_to(tmp_path / "repos")
        assert not path.name.startswith(".")
    assert len(set(evil)) == len(evil)
    with pytest.raises(ValueError):
        copies.path_for("no-slash", 1, "default")
    with pytest.raises(ValueError):
        copies.path_for("acme/infra", -1, "default")


def disk_bytes(root: Path) -> int:
    return sum(p.lstat().st_size for p in root.rglob("*") if p.is_file() or p.is_symlink())


def test_two_pull_requests_share_one_mirror_and_each_copy_holds_only_its_files(
    tmp_path: Path, github_emulator: GitHubEmulator
) -> None:
    world = World(tmp_path, github_emulator)
    first = world.checkout()
    second_pull = github_emulator.open_pull("acme/infra", "grow-db", {"db/size.tf": "locals {\n  size = 2\n}\n"})
    second_log = JobLog(tmp_path / "data" / "jobs" / "second.log")
    second = world.copies.checkout(world.repo, second_pull.number, "default", second_pull.head_sha, world.token,
                                   log=second_log)

    mirror = world.copies.mirror_for("acme/infra")
    assert [p.parent for p in world.root.rglob("objects") if p.is_dir()] == [mirror]
    for copy in (first, second):
        assert (copy / ".git").is_file()
        assert Path(git_out(copy, "rev-parse", "--path-format=absolute", "--git-common-dir")) == mirror
        tracked = sum((copy / name).lstat().st_size for name in git_out(copy, "ls-files").splitlines())
        # The copy is its commit's files plus git's per-work-tree index and HEAD, not the history.
        assert disk_bytes(copy) <= tracked * 1.5 + 4096
    fetches = [line for line in second_log.read().splitlines() if line.startswith("$ git fetch")]
    assert fetches == [f"$ git fetch --no-tags --depth=1 origin {second_pull.head_sha}"]
    assert git_out(second, "rev-parse", "HEAD") == second_pull.head_sha


def test_a_commit_already_in_the_mirror_is_not_fetched_again(tmp_path: Path, github_emulator: GitHubEmulator) -> None:
    world = World(tmp_path, github_emulator)
    world.checkout()
    log = JobLog(tmp_path / "data" / "jobs" / "other-workspace.log")

    world.checkout(workspace="staging", log=log)

    assert not [line for line in log.read().splitlines() if line.startswith("$ git fetch")]


def test_remove_pull_removes_the_work_tree_and_prunes_it_from_the_mirror(
    tmp_path: Path, github_emulator: GitHubEmulator
) -> None:
    world = World(tmp_path, github_emulator)
    path = world.checkout()
    mirror = world.copies.mirror_for("acme/infra")

    world.copies.remove_pull("acme/infra", world.pull.number)

    assert not path.exists()
    assert str(path) not in git_out(mirror, "worktree", "list")
    assert not (mirror / "worktrees").exists() or not list((mirror / "worktrees").iterdir())
    again = world.checkout()
    assert git_out(again, "rev-parse", "HEAD") == world.pull.head_sha


def test_a_full_clone_from_an_older_layout_is_replaced_by_a_work_tree(
    tmp_path: Path, github_emulator: GitHubEmulator
) -> None:
    world = World(tmp_path, github_emulator)
    path = world.copies.path_for("acme/infra", world.pull.number, "default")
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=path, check=True)

    world.checkout()

    assert (path / ".git").is_file()
    assert git_out(path, "rev-parse", "HEAD") == world.pull.head_sha


def objects_in(mirror: Path) -> int:
    counts = dict(line.split(": ") for line in git_out(mirror, "count-objects", "-v").splitlines())
    return int(counts["count"]) + int(counts["in-pack"])


def test_a_new_commit_fetches_only_the_objects_the_mirror_lacks(
    tmp_path: Path, github_emulator: GitHubEmulator
) -> None:
    world = World(tmp_path, github_emulator)
    github_emulator.push_to_branch("acme/infra", "main", {f"generated/file-{i:03d}.txt": f"{i}\n" for i in range(300)})
    pull = github_emulator.open_pull("acme/infra", "big", {"app/replicas.tf": "locals {\n  replicas = 4\n}\n"})
    world.copies.checkout(world.repo, pull.number, "default", pull.head_sha, world.token)
    mirror = world.copies.mirror_for("acme/infra")
    before = objects_in(mirror)

    second = github_emulator.open_pull("acme/infra", "bigger", {"app/replicas.tf": "locals {\n  replicas = 5\n}\n"})
    world.copies.checkout(world.repo, second.number, "default", second.head_sha, world.token)
    new_head = github_emulator.push("acme/infra", pull.number, {"app/replicas.tf": "locals {\n  replicas = 6\n}\n"})
    world.copies.checkout(world.repo, pull.number, "default", new_head, world.token)

    # Each commit brings itself, two trees and one file, not the 300 files every tree holds.
    assert objects_in(mirror) - before <= 2 * 5
    world.copies.remove_pull("acme/infra", pull.number)
    assert git_out(mirror, "for-each-ref", "refs/atlas/pulls") == git_out(
        mirror, "for-each-ref", f"refs/atlas/pulls/{second.number}")
