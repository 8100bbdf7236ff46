"""The embedded queue: one pull request's jobs in order, different pull requests at once."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from atlas.jobs.embedded import EmbeddedQueue
from atlas.jobs.queue import QueueUnavailable
from atlas.models import CommandName, Job, JobStatus, PullRequest, Repo
from atlas.stores.sqlite.state import SQLiteStateStore

REPO = Repo(
    full_name="acme/infra", clone_url="http://git.invalid/acme/infra.git", html_url="http://git.invalid/acme/infra"
)


def job(number: int) -> Job:
    pull = PullRequest(repo=REPO, number=number, head_sha="a" * 40, head_ref="x", base_ref="main", author="me")
    return Job(command=CommandName.AUTOPLAN, pull=pull)


def test_jobs_of_one_pull_request_run_one_after_another_in_order(tmp_path: Path) -> None:
    state = SQLiteStateStore(tmp_path / "atlas.db")
    events: list[tuple[str, str]] = []
    overlap = threading.Event()
    running = threading.Lock()

    def execute(j: Job) -> None:
        if not running.acquire(blocking=False):
            overlap.set()
            return
        events.append(("start", j.id))
        time.sleep(0.05)
        events.append(("end", j.id))
        running.release()

    queue = EmbeddedQueue(execute, state, workers=4)
    jobs = [job(1) for _ in range(5)]
    for j in jobs:
        queue.enqueue(j)
    assert queue.wait_idle(10)
    assert not overlap.is_set()
    assert [e for e in events if e[0] == "start"] == [("start", j.id) for j in jobs]


def test_different_pull_requests_run_in_parallel(tmp_path: Path) -> None:
    state = SQLiteStateStore(tmp_path / "atlas.db")
    barrier = threading.Barrier(3, timeout=5)

    def execute(j: Job) -> None:
        barrier.wait()  # only passes when three jobs run at the same time

    queue = EmbeddedQueue(execute, state, workers=3)
    for number in (1, 2, 3):
        queue.enqueue(job(number))
    assert queue.wait_idle(10)
    assert not barrier.broken


def test_queued_job_is_recorded_before_it_runs(tmp_path: Path) -> None:
    state = SQLiteStateStore(tmp_path / "atlas.db")
    release = threading.Event()
    queue = EmbeddedQueue(lambda j: release.wait(5), state, workers=1)
    first, second = job(1), job(1)
    queue.enqueue(first)
    queue.enqueue(second)
    assert queue.depth() == 1
    record = state.get_job(second.id)
    assert record is not None and record.status is JobStatus.QUEUED
    release.set()
    assert queue.wait_idle(10)


def test_a_job_that_raises_is_recorded_failed_and_the_next_job_still_runs(tmp_path: Path) -> None:
    state = SQLiteStateStore(tmp_path / "atlas.db")
    ran: list[str] = []

    def execute(j: Job) -> None:
        ran.append(j.id)
        if len(ran) == 1:
            raise RuntimeError("boom")

    queue = EmbeddedQueue(execute, state, workers=1)
    first, second = job(1), job(1)
    queue.enqueue(first)
    queue.enqueue(second)
    assert queue.wait_idle(10)
    assert ran == [first.id, second.id]
    record = state.get_job(first.id)
    assert record is not None and record.status is JobStatus.FAILED


def test_shut_down_queue_refuses_work(tmp_path: Path) -> None:
    queue = EmbeddedQueue(lambda j: None, SQLiteStateStore(tmp_path / "atlas.db"))
    queue.shutdown()
    try:
        queue.enqueue(job(1))
    except QueueUnavailable as error:
        assert "shutting down" in str(error)
    else:
        raise AssertionError("enqueue after shutdown should raise QueueUnavailable")
