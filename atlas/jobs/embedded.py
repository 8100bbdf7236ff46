"""The embedded job queue: a bounded pool of threads in the server process, serial per pull request."""

from __future__ import annotations

import logging
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor

from atlas.jobs.queue import JobExecutor, QueueUnavailable
from atlas.models import Job, JobStatus
from atlas.stores.jobs import JobStore

log = logging.getLogger(__name__)


class EmbeddedQueue:
    """A bounded pool of worker threads in the server process, serial per pull request."""

    def __init__(self, execute: JobExecutor, state: JobStore, workers: int = 4) -> None:
        self._execute = execute
        self._state = state
        self._workers = workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="atlas-job")
        self._lock = threading.Lock()
        # Jobs waiting behind a running job of the same pull request, keyed by Job.serial_key.
        self._waiting: dict[str, deque[Job]] = {}
        self._running: dict[str, str] = {}
        self._idle = threading.Condition(self._lock)
        self._closed = False

    def enqueue(self, job: Job) -> None:
        with self._lock:
            if self._closed:
                raise QueueUnavailable("the job queue is shutting down")
            self._state.save_job(job, JobStatus.QUEUED)
            if job.serial_key in self._running:
                self._waiting.setdefault(job.serial_key, deque()).append(job)
                return
            self._running[job.serial_key] = job.id
        self._pool.submit(self._run_chain, job)

    def _run_chain(self, job: Job) -> None:
        """Run a job, then the jobs of the same pull request that queued behind it."""
        next_job: Job | None = job
        while next_job is not None:
            try:
                self._execute(next_job)
            except Exception:  # the executor reports its own failures; this is the last guard
                log.exception("job %s raised", next_job.id)
                self._state.set_job_status(next_job.id, JobStatus.FAILED, "internal error")
            with self._lock:
                waiting = self._waiting.get(next_job.serial_key)
                if waiting:
                    next_job = waiting.popleft()
                    self._running[next_job.serial_key] = next_job.id
                else:
                    self._waiting.pop(next_job.serial_key, None)
                    del self._running[next_job.serial_key]
                    next_job = None
                    self._idle.notify_all()

    def depth(self) -> int:
        with self._lock:
            return sum(len(q) for q in self._waiting.values())

    def running(self) -> list[str]:
        with self._lock:
            return list(self._running.values())

    def workers(self) -> int:
        return self._workers

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no job runs or waits (tests and graceful shutdown use it)."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._running, timeout=timeout)

    def shutdown(self, wait: bool = True) -> None:
        with self._lock:
            self._closed = True
        self._pool.shutdown(wait=wait)
