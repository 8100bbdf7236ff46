"""The rq queue end to end: jobs queued in Redis run in real `atlas worker` processes, in order per pull request.

Workers run the recording executor of `tests.redis_plugin`, so each job leaves start and end events
in Redis instead of running terraform.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
from redis import Redis

from atlas.jobs.queue import QueueUnavailable
from atlas.jobs.reaper import Reaper
from atlas.jobs.rq import ABANDONED, RQQueue, run_queued
from atlas.models import Job, JobStatus, Project
from atlas.stores.locks import ProjectLock
from atlas.stores.redis.backend import RedisBackend
from atlas.stores.redis.locks import RedisLockStore
from atlas.stores.redis.state import RedisStateStore
from tests.redis_backends import backend_of

if TYPE_CHECKING:
    from tests.redis_plugin import JobEvents, RedisServer, WorkerProcess

pytest_plugins = ["tests.redis_plugin"]

StartWorker = Callable[..., "WorkerProcess"]
MakeJob = Callable[..., Job]
Eventually = Callable[..., Any]


@pytest.fixture
def state(redis_client: Redis) -> RedisStateStore:
    return RedisStateStore(backend_of(redis_client))


@pytest.fixture
def queue(redis_url: str, state: RedisStateStore) -> RQQueue:
    return RQQueue(RedisBackend(redis_url), state)


def status_of(state: RedisStateStore, job: Job) -> JobStatus | None:
    record = state.get_job(job.id)
    return record.status if record else None


@pytest.fixture
def wait_finished(state: RedisStateStore, eventually: Eventually) -> Callable[..., None]:
    def wait(jobs: list[Job], timeout: float = 60) -> None:
        eventually(lambda: all(status_of(state, job) in (JobStatus.SUCCEEDED, JobStatus.FAILED) for job in jobs),
                   timeout, f"{len(jobs)} jobs finishing")

    return wait


def assert_one_at_a_time_in_order(job_events: JobEvents, jobs: list[Job]) -> None:
    """The jobs (of one pull request) started in the order given, each after the previous one ended."""
    ids = {job.id for job in jobs}
    timeline = [(entry["event"], entry["job"]) for entry in job_events.all() if entry["job"] in ids]
    expected = [(event, job.id) for job in jobs for event in ("start", "end")]
    assert timeline == expected, "jobs of one pull request overlapped or ran out of order"


# --- order, parallelism, bookkeeping -------------------------------------------------------------


def test_jobs_of_one_pull_request_run_one_at_a_time_in_order_across_two_workers(
    start_worker: StartWorker, queue: RQQueue, recorded_job: MakeJob, job_events: JobEvents,
    wait_finished: Callable[..., None],
) -> None:
    for worker in (start_worker(), start_worker()):
        worker.wait_for_log("listening on queue")
    first: list[Job] = []
    second: list[Job] = []
    for round_ in range(6):
        first.append(recorded_job(1, sleep=0.3))
        second.append(recorded_job(2, sleep=0.3))
        queue.enqueue(first[-1])
        queue.enqueue(second[-1])
        if round_ % 2:
            # Let a pull request's queue run dry now and then, so its next job may go to either worker.
            time.sleep(0.7)

    wait_finished(first + second)

    assert_one_at_a_time_in_order(job_events, first)
    assert_one_at_a_time_in_order(job_events, second)
    starts = {entry["job"]: entry for entry in job_events.of("start")}
    ends = {entry["job"]: entry for entry in job_events.of("end")}
    overlapping = [
        (one.id, two.id)
        for one in first
        for two in second
        if starts[one.id]["time"] < ends[two.id]["time"] and starts[two.id]["time"] < ends[one.id]["time"]
    ]
    assert overlapping, "the two pull requests never ran at the same time"
    assert len({entry["pid"] for entry in starts.values()}) == 2, "both workers ran jobs"
    assert queue.depth() == 0 and queue.running() == []


def test_depth_and_running_jobs_are_read_from_redis_by_any_process(
    start_worker: StartWorker, queue: RQQueue, redis_url: str, state: RedisStateStore, recorded_job: MakeJob,
    eventually: Eventually, wait_finished: Callable[..., None],
) -> None:
    jobs = [recorded_job(1, sleep=30), recorded_job(1), recorded_job(2)]
    for job in jobs:
        queue.enqueue(job)
    elsewhere = RQQueue(RedisBackend(redis_url), RedisStateStore(RedisBackend(redis_url)))
    assert (elsewhere.depth(), elsewhere.running()) == (3, [])
    assert [status_of(state, job) for job in jobs] == [JobStatus.QUEUED] * 3

    start_worker(concurrency=2)

    eventually(lambda: elsewhere.running() == [jobs[0].id] and elsewhere.depth() == 1, 30,
               "the long job running and the second one waiting behind it")
    wait_finished([jobs[2]])
    assert status_of(state, jobs[1]) is JobStatus.QUEUED


def test_a_job_that_raises_is_failed_and_the_next_job_of_its_pull_request_still_runs(
    start_worker: StartWorker, queue: RQQueue, state: RedisStateStore, recorded_job: MakeJob,
    wait_finished: Callable[..., None],
) -> None:
    failing, following = recorded_job(1, fail=True), recorded_job(1)
    queue.enqueue(failing)
    queue.enqueue(following)
    start_worker()

    wait_finished([failing, following])

    record = state.get_job(failing.id)
    assert record is not None and (record.status, record.description) == (JobStatus.FAILED, "internal error")
    assert status_of(state, following) is JobStatus.SUCCEEDED


def test_a_job_whose_wake_up_was_lost_still_runs_once_the_dead_lock_expires(
    start_worker: StartWorker, queue: RQQueue, redis_client: Redis, recorded_job: MakeJob,
    wait_finished: Callable[..., None],
) -> None:
    job = recorded_job(1)
    queue.enqueue(job)
    # As if a worker had died between two jobs of the pull request: its lock is still held for a
    # moment, and the rq job that would have woken the FIFO is gone.
    redis_client.set(queue.keys.pull_lock(job.serial_key), "dead-worker:token", px=1000)
    queue.rq_queue.empty()  # type: ignore[no-untyped-call]
    redis_client.delete(queue.keys.wake(job.serial_key))

    start_worker()

    wait_finished([job], timeout=20)


# --- dead workers -------------------------------------------------------------------------------


def test_a_job_whose_worker_is_killed_is_reported_within_20_s_and_its_pull_request_moves_on(
    start_worker: StartWorker, queue: RQQueue, state: RedisStateStore, redis_client: Redis, recorded_job: MakeJob,
    job_events: JobEvents, eventually: Eventually, wait_finished: Callable[..., None],
) -> None:
    workers = [start_worker(), start_worker()]
    for worker in workers:
        worker.wait_for_log("listening on queue")
    locks = RedisLockStore(backend_of(redis_client))
    long, next_one = recorded_job(1, sleep=120), recorded_job(1)
    locks.acquire(long.pull, [Project(dir="app")], "me")
    queue.enqueue(long)
    queue.enqueue(next_one)
    started = eventually(lambda: job_events.of("start"), 60, "the long job starting")[0]
    # Each `atlas worker` leads the process group of its worker processes.
    running_it = next(worker for worker in workers if os.getpgid(started["pid"]) == worker.pid)

    running_it.kill()
    killed_at = time.monotonic()

    eventually(lambda: status_of(state, long) is JobStatus.INTERRUPTED, 20, "the killed job being reported")
    assert time.monotonic() - killed_at < 20
    record = state.get_job(long.id)
    assert record is not None and record.description == ABANDONED
    abandoned = eventually(lambda: job_events.of("abandoned"), 5, "on_abandoned being called")
    wait_finished([next_one], timeout=20)
    assert [entry["job"] for entry in abandoned] == [long.id]
    assert [entry["job"] for entry in job_events.of("abandoned")] == [long.id], "one reaper reported it"
    [next_start] = [entry for entry in job_events.of("start") if entry["job"] == next_one.id]
    assert next_start["pid"] != started["pid"]
    held: ProjectLock | None = locks.get("acme/infra", Project(dir="app"))
    assert held is not None and held.pull_number == 1, "the pull request keeps its project locks"
    assert queue.running() == []


def test_a_worker_that_stalls_past_its_heartbeat_is_reported_and_interrupted_when_it_resumes(
    start_worker: StartWorker, queue: RQQueue, state: RedisStateStore, recorded_job: MakeJob,
    job_events: JobEvents, eventually: Eventually, wait_finished: Callable[..., None],
) -> None:
    for worker in (start_worker(), start_worker()):
        worker.wait_for_log("listening on queue")
    stalled, next_one = recorded_job(1, sleep=120), recorded_job(1)
    queue.enqueue(stalled)
    queue.enqueue(next_one)
    pid = eventually(lambda: job_events.of("start"), 60, "the first job starting")[0]["pid"]

    os.kill(pid, signal.SIGSTOP)
    try:
        eventually(lambda: status_of(state, stalled) is JobStatus.INTERRUPTED, 20, "the stalled job being reported")
        wait_finished([next_one], timeout=20)
    finally:
        os.kill(pid, signal.SIGCONT)

    interrupted = eventually(lambda: job_events.of("interrupted"), 10, "the stale job being interrupted")
    assert [(entry["job"], entry["pid"]) for entry in interrupted] == [(stalled.id, pid)]
    assert status_of(state, stalled) is JobStatus.INTERRUPTED


# --- Redis down ---------------------------------------------------------------------------------


def test_with_redis_down_queueing_fails_at_once_with_queue_unavailable(
    private_redis: RedisServer, recorded_job: MakeJob
) -> None:
    url = private_redis.url()
    queue = RQQueue(RedisBackend(url), RedisStateStore(RedisBackend(url)))
    queue.enqueue(recorded_job(1))
    private_redis.stop()

    began = time.monotonic()
    with pytest.raises(QueueUnavailable) as raised:
        queue.enqueue(recorded_job(1))
    assert time.monotonic() - began < 3
    assert f"Redis at redis://127.0.0.1:{private_redis.port}/0 is unreachable" in str(raised.value)
    with pytest.raises(QueueUnavailable):
        queue.depth()


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never answers, like a Redis that hangs."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        port: int = server.getsockname()[1]
        yield port


def test_with_redis_hanging_queueing_fails_within_seconds(silent_server: int, recorded_job: MakeJob) -> None:
    url = f"redis://127.0.0.1:{silent_server}/0"
    queue = RQQueue(RedisBackend(url), RedisStateStore(RedisBackend(url)))

    began = time.monotonic()
    with pytest.raises(QueueUnavailable, match="unreachable"):
        queue.enqueue(recorded_job(1))

    assert time.monotonic() - began < 8, "a webhook must get its 503 before GitHub gives up after 10 s"


def test_a_shut_down_queue_refuses_work(queue: RQQueue, recorded_job: MakeJob) -> None:
    queue.shutdown()
    with pytest.raises(QueueUnavailable, match="shutting down"):
        queue.enqueue(recorded_job(1))


def test_the_job_function_refuses_to_run_outside_atlas_worker(recorded_job: MakeJob) -> None:
    with pytest.raises(RuntimeError, match="atlas worker"):
        run_queued(recorded_job(1).model_dump_json())


# --- deliveries claimed with their jobs; abandoned jobs reported even when their reaper dies -------


def test_a_delivery_is_claimed_with_its_job_in_one_step_and_a_redelivery_queues_nothing(
    queue: RQQueue, state: RedisStateStore, recorded_job: MakeJob
) -> None:
    first, again = recorded_job(1), recorded_job(1)

    assert queue.enqueue_delivery(first, "delivery-1", "pull_request") is True
    assert queue.enqueue_delivery(again, "delivery-1", "pull_request") is False

    assert queue.depth() == 1
    assert status_of(state, first) is JobStatus.QUEUED
    assert state.get_job(again.id) is None, "a redelivery leaves no record behind"
    assert not state.claim_delivery("delivery-1", "pull_request"), "the claim is the state store's claim"


def test_a_delivery_another_process_claimed_is_not_queued(
    queue: RQQueue, state: RedisStateStore, recorded_job: MakeJob
) -> None:
    assert state.claim_delivery("delivery-2", "issue_comment")
    job = recorded_job(2)

    assert queue.enqueue_delivery(job, "delivery-2", "issue_comment") is False
    assert queue.depth() == 0 and state.get_job(job.id) is None


def test_with_redis_down_a_delivery_is_refused_and_nothing_claims_it(
    private_redis: RedisServer, recorded_job: MakeJob
) -> None:
    url = private_redis.url()
    queue = RQQueue(RedisBackend(url), RedisStateStore(RedisBackend(url)))
    private_redis.stop()

    with pytest.raises(QueueUnavailable, match="unreachable"):
        queue.enqueue_delivery(recorded_job(1), "delivery-3", "pull_request")


def running_without_heartbeat(redis_client: Redis, queue: RQQueue, state: RedisStateStore, job: Job) -> None:
    """`job` as a worker that died mid-job leaves it: recorded as running, no heartbeat."""
    state.save_job(job, JobStatus.RUNNING)
    redis_client.hset(queue.keys.running, job.id, job.model_dump_json())
    redis_client.hset(queue.keys.running_owner, job.id, "dead-worker-token")


def test_a_job_whose_reaper_died_before_reporting_it_is_reported_by_the_next_reaper(
    redis_url: str, queue: RQQueue, state: RedisStateStore, redis_client: Redis, recorded_job: MakeJob
) -> None:
    job = recorded_job(1)
    running_without_heartbeat(redis_client, queue, state, job)
    reported: list[str] = []
    another = RQQueue(RedisBackend(redis_url), state, report_claim_seconds=0.5)

    # A reaper takes the job for reporting, and dies before it reports (reapers run in workers).
    assert [claimed.id for claimed in queue.reap_abandoned()] == [job.id]
    assert status_of(state, job) is JobStatus.INTERRUPTED
    assert Reaper(another, lambda j: reported.append(j.id)).sweep() == [], "a fresh claim is its reaper's"

    time.sleep(0.6)
    assert [j.id for j in Reaper(another, lambda j: reported.append(j.id)).sweep()] == [job.id]
    assert reported == [job.id]
    assert Reaper(another, lambda j: reported.append(j.id)).sweep() == [], "reported once, then forgotten"
    assert reported == [job.id] and queue.running() == []
