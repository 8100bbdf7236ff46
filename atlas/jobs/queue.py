"""The job queue: accepted deliveries become jobs here, and jobs run somewhere else.

`JobQueue` is the interface the webhook edge talks to: `atlas.jobs.embedded.EmbeddedQueue` runs
jobs on threads inside the server process, `atlas.jobs.rq.RQQueue` in `atlas worker` processes
through Redis. Both keep one rule: jobs of the same pull request run one after another, in the
order they were queued, while jobs of different pull requests run in parallel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from atlas.models import Job

JobExecutor = Callable[[Job], None]
"""Runs one job to its end; it records the job's outcome itself and should not raise."""


class QueueUnavailable(Exception):
    """The queue cannot take work now (shut down, or its backend is unreachable)."""


class JobQueue(Protocol):
    def enqueue(self, job: Job) -> None:
        """Record the job as queued and schedule it; raises QueueUnavailable when it cannot."""
        ...

    def depth(self) -> int:
        """How many jobs wait to start."""
        ...

    def running(self) -> list[str]:
        """Ids of the jobs running now."""
        ...

    def workers(self) -> int:
        """How many jobs can run at once: the embedded pool's threads, or the rq workers alive now."""
        ...

    def shutdown(self, wait: bool = True) -> None: ...
