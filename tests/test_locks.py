"""Project locks: taken all at once, exactly one holder under races, FIFO queues and atomic handoffs."""

from __future__ import annotations

import multiprocessing
import threading
import time
from multiprocessing.synchronize import Barrier as ProcessBarrier
from pathlib import Path
from typing import Any

import pytest

from atlas.locks import LockAttempt, SQLiteLockStore, lock_id_for
from atlas.models import Project, PullRequest, Repo

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


def test_a_command_takes_every_free_project_in_one_step_and_reports_the_holders_of_the_rest(
    store: SQLiteLockStore,
) -> None:
    assert store.acquire(pull(1), [NETWORK], "dev1").complete

    attempt = store.acquire(pull(2), THREE, "dev2")

    assert [lock.project for lock in attempt.acquired] == [APP, STAGING]
    assert [(lock.project, lock.pull_number, lock.user) for lock in attempt.conflicts] == [(NETWORK, 1, "dev1")]
    assert not attempt.complete
    assert holders(store) == {"app:default": 2, "network:default": 1, "app:staging": 2}
    assert store.count() == 3


def test_the_holder_keeps_its_locks_and_they_follow_its_new_head(store: SQLiteLockStore) -> None:
    first = store.acquire(pull(1, sha="a"), [APP], "dev1").acquired[0]

    again = store.acquire(pull(1, sha="b"), [APP, APP], "reviewer")

    assert [lock.project for lock in again.acquired] == [APP]
    kept = store.get(REPO.full_name, APP)
    assert kept is not None
    assert kept.head_sha == "b" * 40
    assert (kept.user, kept.created_at) == (first.user, first.created_at)


def test_a_lock_knows_its_pull_request_and_has_a_url_safe_stable_id(store: SQLiteLockStore) -> None:
    lock = store.acquire(pull(7), [Project(dir="envs/prod/eu-west-1", workspace="blue")], "dev7").acquired[0]

    assert lock.id == lock_id_for("acme/infra", Project(dir="envs/prod/eu-west-1", workspace="blue"))
    assert lock.id.replace("-", "").replace("_", "").isalnum()
    assert store.get_by_id(lock.id) == lock
    assert (lock.repo, lock.pull_number, lock.pull_url) == ("acme/infra", 7, "https://github.com/acme/infra/pull/7")
    assert lock.vcs_repo() == Repo(
        full_name="acme/infra", html_url="https://github.com/acme/infra", clone_url="https://github.com/acme/infra.git"
    )
    assert store.for_pull("acme/infra", 7) == [lock]
    assert store.for_pull("acme/infra", 8) == []
    assert store.get_by_id("bm9uZQ") is None


def test_locks_of_other_repositories_are_separate_and_listed_in_order(store: SQLiteLockStore) -> None:
    other = pull(1).model_copy(update={"repo": REPO.model_copy(update={"full_name": "acme/apps"})})
    store.acquire(pull(1), [NETWORK, APP], "dev1")
    store.acquire(other, [APP], "dev1")

    assert [(lock.repo, lock.project.dir) for lock in store.all()] == [
        ("acme/apps", "app"),
        ("acme/infra", "app"),
        ("acme/infra", "network"),
    ]


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


def test_of_twenty_threads_racing_for_three_projects_one_takes_all_three(tmp_path: Path) -> None:
    for round_ in range(10):  # a race lost by chance in one round is won in another
        store = SQLiteLockStore(tmp_path / f"round-{round_}.db")

        attempts = race_threads(store, 20)

        winners = [number for number, attempt in attempts.items() if attempt.acquired]
        assert len(winners) == 1, f"several pull requests hold some of the projects: {winners}"
        winner = winners[0]
        assert [lock.project for lock in attempts[winner].acquired] == in_turns(winner)
        for number, attempt in attempts.items():
            if number != winner:
                assert [(lock.project, lock.pull_number) for lock in attempt.conflicts] == [
                    (project, winner) for project in in_turns(number)
                ]
        assert set(holders(store).values()) == {winner}


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


def test_waiters_queue_in_order_and_queueing_again_keeps_the_place(store: SQLiteLockStore) -> None:
    store.acquire(pull(1), [APP], "dev1")

    assert store.wait_for(pull(2), APP, "dev2") == 1
    assert store.wait_for(pull(3), APP, "dev3") == 2
    assert store.wait_for(pull(4), APP, "dev4") == 3
    assert store.wait_for(pull(2, sha="c"), APP, "dev2") == 1

    assert store.waiting("acme/infra", APP) == [2, 3, 4]
    assert store.waiting("acme/infra", NETWORK) == []
    assert store.wait_for(pull(1), APP, "dev1") == 0, "the holder does not queue for its own lock"


def test_a_released_lock_passes_to_the_first_waiter_and_needs_a_plan(store: SQLiteLockStore) -> None:
    store.acquire(pull(1), [APP, NETWORK], "dev1")
    store.wait_for(pull(2, sha="c"), APP, "dev2")
    store.wait_for(pull(3), APP, "dev3")
    store.wait_for(pull(3), NETWORK, "dev3")

    release = store.release_pull("acme/infra", 1)

    assert [lock.project for lock in release.released] == [APP, NETWORK]
    assert [(lock.project, lock.pull_number, lock.user, lock.head_sha) for lock in release.handed_over] == [
        (APP, 2, "dev2", "c" * 40),
        (NETWORK, 3, "dev3", "a" * 40),
    ]
    assert holders(store) == {"app:default": 2, "network:default": 3}
    assert store.waiting("acme/infra", APP) == [3]
    assert store.waiting_for_pull("acme/infra", 3) == [APP]
    assert store.pending_handoffs() == release.handed_over

    store.mark_handoff_planned(release.handed_over[0].id)
    assert [lock.pull_number for lock in store.pending_handoffs()] == [3]


def test_an_operator_release_hands_over_one_lock(store: SQLiteLockStore) -> None:
    locks = store.acquire(pull(1), [APP, NETWORK], "dev1").acquired
    store.wait_for(pull(2), NETWORK, "dev2")

    release = store.release(locks[1].id)

    assert [lock.project for lock in release.released] == [NETWORK]
    assert [lock.pull_number for lock in release.handed_over] == [2]
    assert holders(store) == {"app:default": 1, "network:default": 2}
    assert store.release("bm9uZQ").released == []


def test_a_pull_request_released_or_leaving_is_out_of_every_queue(store: SQLiteLockStore) -> None:
    store.acquire(pull(1), [APP, NETWORK], "dev1")
    store.acquire(pull(2), [STAGING], "dev2")
    for project in (APP, NETWORK):
        store.wait_for(pull(2), project, "dev2")
        store.wait_for(pull(3), project, "dev3")

    assert store.leave_queues("acme/infra", 3) == [APP, NETWORK]
    assert store.waiting_for_pull("acme/infra", 3) == []

    release = store.release_pull("acme/infra", 2)
    assert [lock.project for lock in release.released] == [STAGING]
    assert release.handed_over == []
    assert store.waiting("acme/infra", APP) == []
    assert store.release_pull("acme/infra", 1).handed_over == []
    assert store.count() == 0


def test_a_waiter_for_a_lock_freed_meanwhile_takes_it_at_once(store: SQLiteLockStore) -> None:
    assert store.wait_for(pull(2), APP, "dev2") == 0

    assert holders(store) == {"app:default": 2}
    assert [lock.pull_number for lock in store.pending_handoffs()] == [2]


def test_taking_a_lock_leaves_its_queue_and_a_released_handoff_is_moot(store: SQLiteLockStore) -> None:
    store.acquire(pull(1), [APP], "dev1")
    store.wait_for(pull(2), APP, "dev2")
    store.release_pull("acme/infra", 1)
    store.release_pull("acme/infra", 2)

    assert store.pending_handoffs() == []
    assert store.acquire(pull(3), [APP], "dev3").complete


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


def test_locks_queues_and_pending_handoffs_survive_a_restart(tmp_path: Path) -> None:
    database = tmp_path / "atlas.db"
    before = SQLiteLockStore(database)
    before.acquire(pull(1), [APP, NETWORK], "dev1")
    before.wait_for(pull(2), APP, "dev2")
    before.wait_for(pull(3), APP, "dev3")
    before.wait_for(pull(3), NETWORK, "dev3")
    handed = before.release(lock_id_for("acme/infra", NETWORK)).handed_over

    after = SQLiteLockStore(database)

    assert after.all() == before.all()
    assert after.waiting("acme/infra", APP) == [2, 3]
    assert after.pending_handoffs() == handed
    assert after.wait_for(pull(4), APP, "dev4") == 3
