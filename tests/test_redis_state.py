"""The Redis state store beyond the shared contract: claims across processes, its keys, its indexes under races."""

from __future__ import annotations

import multiprocessing
import threading
from typing import Any

from redis import Redis

from atlas.models import CommandName, Job, JobStatus, Project, PullRequest, Repo
from atlas.stores.pulls import ProjectPhase, ProjectState
from atlas.stores.redis.backend import RedisBackend, redis_location
from atlas.stores.redis.state import DELIVERY_TTL_SECONDS, RedisStateStore
from tests.redis_backends import backend_of

pytest_plugins = ["tests.redis_plugin"]

REPO = Repo(
    full_name="acme/infra", clone_url="http://git.invalid/acme/infra.git", html_url="http://git.invalid/acme/infra"
)
PULL = PullRequest(repo=REPO, number=7, head_sha="b" * 40, head_ref="x", base_ref="main", author="me")


def _claim(url: str, delivery: str, start: Any, results: Any) -> None:
    state = RedisStateStore(RedisBackend(url))
    start.wait()
    results.put(state.claim_delivery(delivery, "pull_request"))


def test_a_delivery_is_claimed_exactly_once_across_processes(redis_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(6)
    results = context.Queue()
    workers = [context.Process(target=_claim, args=(redis_url, "same-id", start, results)) for _ in range(6)]
    for worker in workers:
        worker.start()
    claims = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(30)
    assert claims.count(True) == 1


def test_a_delivery_is_remembered_for_a_week_not_forever(redis_client: Redis) -> None:
    RedisStateStore(backend_of(redis_client)).claim_delivery("d-1", "pull_request")

    ttl = redis_client.ttl("atlas:delivery:d-1")

    assert DELIVERY_TTL_SECONDS - 60 < ttl <= DELIVERY_TTL_SECONDS


def test_stores_with_different_prefixes_share_nothing_and_keep_to_their_prefix(redis_client: Redis) -> None:
    blue = RedisStateStore(backend_of(redis_client, "blue:"))
    green = RedisStateStore(backend_of(redis_client, "green:"))
    job = Job(command=CommandName.PLAN, pull=PULL)
    blue.claim_delivery("d", "pull_request")
    blue.save_job(job)
    blue.set_job_status(job.id, JobStatus.RUNNING)
    blue.save_pull(PULL)
    planned = ProjectState(
        project=Project(dir="app"), phase=ProjectPhase.PLANNED, head_sha="b" * 40, job_id=job.id,
        updated_at=job.created_at,
    )
    blue.set_project_state("acme/infra", 7, planned)
    blue.add_comment_record("acme/infra", 7, "plan", "IC_1")
    blue.claim_once("notice")

    assert green.claim_delivery("d", "pull_request")
    assert green.get_job(job.id) is None and green.jobs() == []
    assert green.get_pull("acme/infra", 7) is None
    assert green.project_states("acme/infra", 7) == []
    assert green.take_comment_records("acme/infra", 7, "plan") == []
    assert green.claim_once("notice")
    assert all(key.startswith(("blue:", "green:")) for key in redis_client.scan_iter())


def test_racing_status_changes_leave_each_job_listed_under_its_one_status(redis_client: Redis) -> None:
    state = RedisStateStore(backend_of(redis_client))
    jobs = [Job(command=CommandName.PLAN, pull=PULL) for _ in range(10)]
    for job in jobs:
        state.save_job(job)
    statuses = [JobStatus.RUNNING, JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED]
    start = threading.Barrier(len(statuses))

    def move(status: JobStatus) -> None:
        start.wait()
        for _ in range(5):
            for job in jobs:
                state.set_job_status(job.id, status, status.value)

    threads = [threading.Thread(target=move, args=(status,)) for status in statuses]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    for job in jobs:
        record = state.get_job(job.id)
        assert record is not None and record.description == record.status.value
        listed_under = [status for status in JobStatus if job.id in {r.job.id for r in state.jobs(statuses=(status,))}]
        assert listed_under == [record.status]


def test_a_redis_url_is_logged_without_its_password() -> None:
    assert redis_location("redis://:hunter2@cache.internal:6380/3") == "redis://cache.internal:6380/3"
    assert redis_location("rediss://user:hunter2@cache.internal/0") == "rediss://cache.internal/0"
    assert redis_location("unix:///run/redis.sock?db=2") == "unix:///run/redis.sock"
