"""`atlas cancel` reaches a job running in another worker process, through Redis and its heartbeat."""

from __future__ import annotations

import threading
from datetime import timedelta

from redis import Redis

from atlas.jobs.drain import Heartbeat
from atlas.jobs.rq import RQQueue
from atlas.models import CommandName, Job, PullRequest, Repo
from atlas.stores.redis.backend import RedisBackend
from atlas.stores.redis.state import RedisStateStore
from tests.redis_backends import backend_of

REPO = Repo(full_name="acme/infra", clone_url="http://git.invalid/acme/infra.git",
            html_url="http://git.invalid/acme/infra")


def running_job(number: int) -> Job:
    pull = PullRequest(repo=REPO, number=number, head_sha="a" * 40, head_ref="x", base_ref="main", author="me")
    return Job(command=CommandName.PLAN, pull=pull)


def test_a_cancel_request_interrupts_the_job_at_its_workers_next_heartbeat(
    redis_url: str, redis_client: Redis,
) -> None:
    queue = RQQueue(RedisBackend(redis_url), RedisStateStore(backend_of(redis_client)))
    job = running_job(7)
    redis_client.set(queue.keys.pull_lock(job.serial_key), "token-of-this-worker")
    interrupted = threading.Event()
    heartbeat = Heartbeat(queue, job.serial_key, "token-of-this-worker", lambda j: interrupted.set())
    heartbeat.job = job
    heartbeat.start()
    try:
        assert not interrupted.wait(2.5), "nothing asked to cancel yet"
        queue.request_cancel(job.pull.key)
        assert interrupted.wait(5), "the heartbeat did not pass the cancel request on"
    finally:
        heartbeat.stop()


def test_a_cancel_request_does_not_reach_jobs_queued_after_it(redis_url: str, redis_client: Redis) -> None:
    queue = RQQueue(RedisBackend(redis_url), RedisStateStore(backend_of(redis_client)))
    earlier = running_job(8)
    queue.request_cancel(earlier.pull.key)
    later = earlier.model_copy(update={"created_at": earlier.created_at + timedelta(minutes=1)})
    assert queue.cancel_requested(earlier)
    assert not queue.cancel_requested(later)
    assert not queue.cancel_requested(running_job(9))
