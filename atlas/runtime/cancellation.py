"""Which jobs are running in this process, and how to interrupt them (`atlas cancel`).

A running job registers its `CancelToken`; the terraform runner watches the token and interrupts
terraform cleanly (SIGINT to the process group first, so terraform releases its state lock). Jobs
still queued are cancelled through the state store instead: `run_job` skips a job whose record says
it was cancelled, in whichever process it would have run.
"""

from __future__ import annotations

import threading

from atlas.models import Job


class CancelToken:
    """Asks a running command to stop; shared between the job that runs and whoever cancels it."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until cancelled or `timeout` passes; True when cancelled."""
        return self._event.wait(timeout)


class RunningJobs:
    """The jobs this process is running now, by pull request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, tuple[Job, CancelToken]] = {}

    def start(self, job: Job) -> CancelToken:
        token = CancelToken()
        with self._lock:
            self._running[job.id] = (job, token)
        return token

    def finish(self, job: Job) -> None:
        with self._lock:
            self._running.pop(job.id, None)

    def cancel_pull(self, pull_key: str) -> list[Job]:
        """Interrupt every running job of one pull request; the jobs that were interrupted."""
        with self._lock:
            targets = [(job, token) for job, token in self._running.values() if job.pull.key == pull_key]
        for _, token in targets:
            token.cancel()
        return [job for job, _ in targets]
