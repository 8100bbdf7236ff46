"""SQLite project locks across processes: exactly one holder under races, and atomic handoffs.

Everything both lock stores must do is in tests/test_store_contract.py, run against SQLite and Redis.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from multiprocessing.synchronize import Barrier as ProcessBarrier
from pathlib import Path
from typing import Any

import pytest

from atlas.models import Project, PullRequest, Repo
from atlas.stores.locks import LockAttempt
from atlas.stores.sqlite.locks import SQLiteLockStore

REPO = Repo(
    full_name="acme/infra", clone_url="https://github.com/acme/infra.git", html_url="https://github.com/acme/infra"
)
APP = Project(dir="app")
NETWORK = Project(dir="network")
STAGING = Project(dir="app", workspace="staging")
THREE = [APP, NETWORK, STAGING]


def pull(number: int, sha: str = "a") -> PullRequest:
    return PullRequest(
        repo=REPO,
        number=number,
        head_sha=sha * 40,
        head_ref=f"change-{number}",
        base_ref="main",
        author=f"dev{number}",
        html_url=f"https://github.com/acme/infra/pull/{number}",
    )


@pytest.fixture
def store(tmp_path: Path) -> SQLiteLockStore:
    return SQLiteLockStore(tmp_path / "atlas.db")


def in_turns(number: int) -> list[Project]:
    """The three projects, in reverse order for every other pull request, so that racers cross."""
    return THREE if number % 2 else THREE[::-1]


def holders(store: SQLiteLockStore) -> dict[str, int]:
    return {lock.project.key: lock.pull_number for lock in store.all()}


# --- acquiring ----------------------------------------------------------------------------------


def race_threads(store: SQLiteLockStore, racers: int) -> dict[int, LockAttempt]:
    """Pull requests 1..racers, each in its own thread, acquiring the three projects at once."""
    start = threading.Barrier(racers)
    attempts: dict[int, LockAttempt] = {}

    def race(number: int) -> None:
        start.wait()
        attempts[number] = store.acquire(pull(number), in_turns(number), f"dev{number}")

    threads = [threading.Thread(target=race, args=(number,)) for number in range(1, racers + 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return attempts


def _race_in_process(path: str, number: int, start: ProcessBarrier, results: Any) -> None:
    store = SQLiteLockStore(Path(path))
    start.wait()
    attempt = store.acquire(pull(number), in_turns(number), f"dev{number}")
    results.put((number, [lock.project.key for lock in attempt.acquired], len(attempt.conflicts)))


def test_of_eight_processes_racing_for_three_projects_one_takes_all_three(tmp_path: Path) -> None:
    database = tmp_path / "atlas.db"
    SQLiteLockStore(database)
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(8)
    results = context.Queue()
    workers = [
        context.Process(target=_race_in_process, args=(str(database), number, start, results)) for number in range(1, 9)
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(30)

    winners = [(number, taken) for number, taken, _ in outcomes if taken]
    assert len(winners) == 1, f"several processes hold some of the projects: {winners}"
    assert sorted(winners[0][1]) == ["app:default", "app:staging", "network:default"]
    assert sorted(conflicts for _, taken, conflicts in outcomes if not taken) == [3] * 7
    assert set(holders(SQLiteLockStore(database)).values()) == {winners[0][0]}


# --- waiting and handing over -------------------------------------------------------------------


def test_a_release_hands_over_before_any_racing_pull_request_can_take_the_lock(tmp_path: Path) -> None:
    database = tmp_path / "atlas.db"
    store = SQLiteLockStore(database)
    store.acquire(pull(1), [APP], "dev1")
    store.wait_for(pull(2), APP, "dev2")
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(7)
    results = context.Queue()
    racers = [
        context.Process(target=_snatch_in_process, args=(str(database), number, start, results))
        for number in range(10, 16)
    ]
    for racer in racers:
        racer.start()
    start.wait()
    release = store.release_pull("acme/infra", 1)
    outcomes = [results.get(timeout=60) for _ in racers]
    for racer in racers:
        racer.join(30)

    assert [lock.pull_number for lock in release.handed_over] == [2]
    assert holders(store) == {"app:default": 2}
    assert outcomes == [2] * 6, f"a racing pull request snatched the lock: {outcomes}"


def _snatch_in_process(path: str, number: int, start: ProcessBarrier, results: Any) -> None:
    store = SQLiteLockStore(Path(path))
    start.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        attempt = store.acquire(pull(number), [APP], f"dev{number}")
        if attempt.acquired:
            results.put(number)
            return
        holder = attempt.conflicts[0].pull_number
        if holder != 1:
            results.put(holder)
            return
    results.put(1)  # never saw the release


