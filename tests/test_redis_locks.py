"""The Redis lock store beyond the shared contract: races between processes, as between hosts."""

from __future__ import annotations

import multiprocessing
import time
from multiprocessing.synchronize import Barrier as ProcessBarrier
from typing import Any

from redis import Redis

from atlas.models import Project, PullRequest, Repo
from atlas.stores.locks import LockAttempt
from atlas.stores.redis.backend import RedisBackend
from atlas.stores.redis.locks import RedisLockStore
from tests.redis_backends import backend_of

pytest_plugins = ["tests.redis_plugin"]

REPO = Repo(
    full_name="acme/infra", clone_url="https://github.com/acme/infra.git", html_url="https://github.com/acme/infra"
)
APP = Project(dir="app")
THREE = [APP, Project(dir="network"), Project(dir="app", workspace="staging")]


def pull(number: int) -> PullRequest:
    return PullRequest(
        repo=REPO, number=number, head_sha="a" * 40, head_ref=f"change-{number}", base_ref="main",
        author=f"dev{number}", html_url=f"https://github.com/acme/infra/pull/{number}",
    )


def in_turns(number: int) -> list[Project]:
    return THREE if number % 2 else THREE[::-1]


def _race_in_process(url: str, number: int, start: ProcessBarrier, results: Any) -> None:
    store = RedisLockStore(RedisBackend(url))
    start.wait()
    attempt: LockAttempt = store.acquire(pull(number), in_turns(number), f"dev{number}")
    results.put((number, [lock.project.key for lock in attempt.acquired], len(attempt.conflicts)))


def test_of_eight_processes_racing_for_three_projects_one_takes_all_three(redis_url: str, redis_client: Redis) -> None:
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(8)
    results = context.Queue()
    racers = [context.Process(target=_race_in_process, args=(redis_url, n, start, results)) for n in range(1, 9)]
    for racer in racers:
        racer.start()
    outcomes = [results.get(timeout=60) for _ in racers]
    for racer in racers:
        racer.join(30)

    winners = [(number, taken) for number, taken, _ in outcomes if taken]
    assert len(winners) == 1, f"several processes hold some of the projects: {winners}"
    assert sorted(winners[0][1]) == ["app:default", "app:staging", "network:default"]
    assert sorted(conflicts for _, taken, conflicts in outcomes if not taken) == [3] * 7
    assert {lock.pull_number for lock in RedisLockStore(backend_of(redis_client)).all()} == {winners[0][0]}


def _snatch_in_process(url: str, number: int, start: ProcessBarrier, results: Any) -> None:
    store = RedisLockStore(RedisBackend(url))
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


def test_a_release_hands_over_before_any_racing_process_can_take_the_lock(redis_url: str, redis_client: Redis) -> None:
    store = RedisLockStore(backend_of(redis_client))
    store.acquire(pull(1), [APP], "dev1")
    store.wait_for(pull(2), APP, "dev2")
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(7)
    results = context.Queue()
    racers = [
        context.Process(target=_snatch_in_process, args=(redis_url, number, start, results)) for number in range(10, 16)
    ]
    for racer in racers:
        racer.start()
    start.wait()
    release = store.release_pull("acme/infra", 1)
    outcomes = [results.get(timeout=60) for _ in racers]
    for racer in racers:
        racer.join(30)

    assert [lock.pull_number for lock in release.handed_over] == [2]
    assert {lock.project.key: lock.pull_number for lock in store.all()} == {"app:default": 2}
    assert outcomes == [2] * 6, f"a racing pull request snatched the lock: {outcomes}"


def test_lock_keys_stay_under_the_prefix(redis_client: Redis) -> None:
    store = RedisLockStore(backend_of(redis_client, "team-a:"))
    store.acquire(pull(1), [APP], "dev1")
    store.wait_for(pull(2), APP, "dev2")
    store.release_pull("acme/infra", 1)

    assert all(key.startswith("team-a:") for key in redis_client.scan_iter())
    assert RedisLockStore(backend_of(redis_client)).count() == 0
    assert store.count() == 1
