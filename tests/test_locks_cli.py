"""`atlas locks list|unlock` as an operator runs them: a subprocess on the data dir, GitHub emulated."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from atlas.models import Project, PullRequest, Repo
from atlas.stores.locks import lock_id_for
from atlas.stores.sqlite.locks import SQLiteLockStore
from tests.emulator import EmulatedPull, GitHubEmulator

REPO_ROOT = Path(__file__).resolve().parent.parent
REPO = Repo(
    full_name="acme/infra", clone_url="https://github.com/acme/infra.git", html_url="https://github.com/acme/infra"
)
APP = Project(dir="app")
STAGING = Project(dir="app", workspace="staging")
NETWORK = Project(dir="network")
SINCE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC")


def pull(number: int, repo: Repo = REPO) -> PullRequest:
    return PullRequest(
        repo=repo,
        number=number,
        head_sha="a" * 40,
        head_ref=f"change-{number}",
        base_ref="main",
        author=f"dev{number}",
        html_url=f"{repo.html_url}/pull/{number}",
    )


def pull_of(emulated: EmulatedPull) -> PullRequest:
    """The pull request as atlas would have stored it from the emulator's webhook."""
    repo = Repo(
        full_name=emulated.full_name, clone_url=emulated.repo.clone_url, html_url=emulated.repo.html_url
    )
    return PullRequest(
        repo=repo,
        number=emulated.number,
        head_sha=emulated.head_sha,
        head_ref=emulated.head_ref,
        base_ref=emulated.base_ref,
        author=emulated.author,
        html_url=emulated.html_url,
    )


def atlas(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m atlas ARGS` with no ATLAS_* variable from the machine, only those given."""
    clean = {key: value for key, value in os.environ.items() if not key.startswith("ATLAS_")}
    clean.update(PYTHONPATH=str(REPO_ROOT), HOME=str(tmp_path / "home"), COLUMNS="200", **env)
    return subprocess.run(
        [sys.executable, "-m", "atlas", *args],
        cwd=tmp_path,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def store(data_dir: Path) -> SQLiteLockStore:
    return SQLiteLockStore(data_dir / "atlas.db")


def test_list_prints_a_table_of_locks_and_who_waits(tmp_path: Path, data_dir: Path, store: SQLiteLockStore) -> None:
    store.acquire(pull(7), [NETWORK, APP], "alice")
    store.acquire(pull(8), [STAGING], "bob")
    store.wait_for(pull(9), APP, "carol")
    store.wait_for(pull(8), APP, "bob")

    result = atlas(tmp_path, "locks", "list", "--data-dir", str(data_dir))

    assert (result.returncode, result.stderr) == (0, "")
    app, staging, network = (lock_id_for("acme/infra", project) for project in (APP, STAGING, NETWORK))
    lines = result.stdout.splitlines()
    assert [re.split(r" {2,}", SINCE.sub("SINCE", line)) for line in lines] == [
        ["LOCK ID", "REPO", "DIR", "WORKSPACE", "PR", "USER", "SINCE", "WAITING"],
        [app, "acme/infra", "app", "default", "#7", "alice", "SINCE", "#9, #8"],
        [staging, "acme/infra", "app", "staging", "#8", "bob", "SINCE", "-"],
        [network, "acme/infra", "network", "default", "#7", "alice", "SINCE", "-"],
    ]
    columns = [match.start() for match in re.finditer(r"(?<=  )\S", lines[0])]
    for line in lines[1:]:
        assert [line[column - 2 : column] for column in columns] == ["  "] * len(columns), "columns are aligned"
        assert all(line[column] != " " for column in columns), "columns are aligned"


def test_list_json_gives_each_lock_with_its_queue(tmp_path: Path, data_dir: Path, store: SQLiteLockStore) -> None:
    store.acquire(pull(7), [APP], "alice")
    store.wait_for(pull(9), APP, "carol")

    result = atlas(tmp_path, "locks", "list", "--json", "--data-dir", str(data_dir))

    assert result.returncode == 0, result.stderr
    [lock] = json.loads(result.stdout)
    assert lock["id"] == lock_id_for("acme/infra", APP)
    assert lock["repo"] == "acme/infra"
    assert lock["project"] == {"dir": "app", "workspace": "default", "name": None}
    assert (lock["pull_number"], lock["pull_url"]) == (7, "https://github.com/acme/infra/pull/7")
    assert (lock["user"], lock["head_sha"]) == ("alice", "a" * 40)
    assert lock["waiting"] == [9]
    assert lock["created_at"].endswith("Z") or lock["created_at"].endswith("+00:00")


@pytest.mark.parametrize("where", ["flag", "env", "config"])
def test_the_data_dir_comes_from_the_server_settings(
    tmp_path: Path, data_dir: Path, store: SQLiteLockStore, where: str
) -> None:
    store.acquire(pull(7), [APP], "alice")
    config = tmp_path / "atlas.yaml"
    config.write_text(f"data-dir: {data_dir}\n")
    args, env = {
        "flag": (["--data-dir", str(data_dir)], {}),
        "env": ([], {"ATLAS_DATA_DIR": str(data_dir)}),
        "config": (["--config", str(config)], {}),
    }[where]

    result = atlas(tmp_path, "locks", "list", "--json", *args, **env)

    assert result.returncode == 0, result.stderr
    assert [lock["pull_number"] for lock in json.loads(result.stdout)] == [7]


def test_list_of_a_data_dir_without_a_database_says_so_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"

    result = atlas(tmp_path, "locks", "list", "--data-dir", str(missing))

    assert (result.returncode, result.stdout, result.stderr) == (0, f"No locks in {missing}/atlas.db.\n", "")
    assert not missing.exists()


def test_unlock_hands_over_to_the_first_waiter_and_tells_the_pull_request(
    tmp_path: Path, data_dir: Path, store: SQLiteLockStore, github_emulator: GitHubEmulator
) -> None:
    github_emulator.create_repo("acme/infra", files={"main.tf": ""})
    holder = pull_of(github_emulator.open_pull("acme/infra", "holder", {"main.tf": "# 1\n"}, author="alice"))
    waiter = pull_of(github_emulator.open_pull("acme/infra", "waiter", {"main.tf": "# 2\n"}, author="carol"))
    [lock] = store.acquire(holder, [Project(dir=".")], "alice").acquired
    store.wait_for(waiter, Project(dir="."), "carol")

    result = atlas(
        tmp_path,
        "locks",
        "unlock",
        lock.id,
        "--data-dir",
        str(data_dir),
        ATLAS_GH_TOKEN=github_emulator.token,
        ATLAS_GH_API_URL=github_emulator.api_url,
        LOGNAME="ops",
    )

    assert (result.returncode, result.stderr) == (0, "")
    assert SINCE.sub("SINCE", result.stdout) == (
        "Released the lock on acme/infra . (workspace default), held by #1 (alice) since SINCE.\n"
        "Handed it over to #2 (carol), which was waiting for it; atlas plans it next.\n"
        "Told acme/infra#1 in a comment.\n"
    )
    [comment] = github_emulator.comments("acme/infra", 1)
    assert comment["body"] == (
        "**Lock removed**: an operator (`ops`) released this pull request's lock on `.` (workspace `default`), "
        "and discarded its plan of that project.\n\n"
        "The lock passed to #2, which was waiting for it. Comment `atlas plan` to plan it here again."
    )
    assert github_emulator.comments("acme/infra", 2) == []
    reopened = SQLiteLockStore(data_dir / "atlas.db")
    assert [(held.pull_number, held.user) for held in reopened.all()] == [(2, "carol")]
    assert [handoff.pull_number for handoff in reopened.pending_handoffs()] == [2]


def test_unlock_without_a_token_releases_and_says_nobody_was_told(
    tmp_path: Path, data_dir: Path, store: SQLiteLockStore
) -> None:
    [lock] = store.acquire(pull(7), [APP], "alice").acquired

    result = atlas(tmp_path, "locks", "unlock", lock.id, "--data-dir", str(data_dir))

    assert result.returncode == 0, result.stderr
    assert SINCE.sub("SINCE", result.stdout) == (
        "Released the lock on acme/infra app (workspace default), held by #7 (alice) since SINCE.\n"
        "No GitHub token is configured (--gh-token), so acme/infra#7 was not told in a comment.\n"
    )
    assert store.count() == 0


def test_unlock_still_releases_when_the_comment_fails(
    tmp_path: Path, data_dir: Path, store: SQLiteLockStore, github_emulator: GitHubEmulator
) -> None:
    github_emulator.create_repo("acme/infra", files={"main.tf": ""})
    holder = pull_of(github_emulator.open_pull("acme/infra", "holder", {"main.tf": "# 1\n"}, author="alice"))
    [lock] = store.acquire(holder, [APP], "alice").acquired
    github_emulator.fail_next("POST", r"/issues/1/comments$", 404)

    result = atlas(
        tmp_path,
        "locks",
        "unlock",
        lock.id,
        "--data-dir",
        str(data_dir),
        "--gh-api-url",
        github_emulator.api_url,
        ATLAS_GH_TOKEN=github_emulator.token,
    )

    assert result.returncode == 0
    assert result.stdout.startswith("Released the lock on acme/infra app (workspace default), held by #1 (alice)")
    assert result.stderr.startswith(
        "atlas: warning: the lock is released, but telling acme/infra#1 failed: GitHub commenting on acme/infra#1 "
        "failed: 404"
    )
    assert len(result.stderr.splitlines()) == 1
    assert github_emulator.token not in result.stdout + result.stderr
    assert store.count() == 0


def test_unlock_of_an_unknown_id_is_one_line_and_exit_1(
    tmp_path: Path, data_dir: Path, store: SQLiteLockStore
) -> None:
    store.acquire(pull(7), [APP], "alice")

    result = atlas(tmp_path, "locks", "unlock", "bm9wZQ", "--data-dir", str(data_dir))

    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"atlas: error: no lock with id 'bm9wZQ' in {data_dir}/atlas.db (see 'atlas locks list')\n"
    )
    assert store.count() == 1
