"""GitHub's content-creation limit is per token: with Redis, every process shares one budget."""

from __future__ import annotations

import multiprocessing
import time

from redis import Redis

from atlas.github.ratelimit import SharedWriteBudget
from atlas.stores.redis.backend import RedisBackend
from tests.redis_backends import backend_of


def _spend(redis_url: str, count: int, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    budget = SharedWriteBudget(RedisBackend(redis_url), "ghp_shared-token", limit=10, window=2.0)
    waited = sum(budget.acquire() for _ in range(count))
    results.put(waited)


def test_writes_from_several_processes_share_one_budget(redis_url: str) -> None:
    spawn = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue = spawn.Queue()  # type: ignore[type-arg]
    workers = [spawn.Process(target=_spend, args=(redis_url, 7, results)) for _ in range(2)]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    elapsed = time.monotonic() - started
    waited = [results.get(timeout=5) for _ in workers]
    # 14 writes against 10 per 2 s: together they had to wait for the window, though each alone would not.
    assert max(waited) > 0.5
    assert elapsed < 10


def test_a_budget_with_room_does_not_wait_and_budgets_of_other_tokens_are_separate(
    redis_client: Redis,
) -> None:
    first = SharedWriteBudget(backend_of(redis_client), "ghp_first", limit=3, window=60)
    other = SharedWriteBudget(backend_of(redis_client), "ghp_other", limit=3, window=60)
    assert [first.acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert other.acquire() == 0.0
    assert not any("ghp_" in key for key in redis_client.keys("*")), "the token is never a key"
