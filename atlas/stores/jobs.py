"""Jobs as the store remembers them (what each was asked to do and how it went) and their output."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from pydantic import BaseModel

from atlas.models import Job, JobStatus


class JobRecord(BaseModel):
    """A job as the store remembers it: what it was asked to do and how it went."""

    job: Job
    status: JobStatus
    description: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None


class JobStore(Protocol):
    def save_job(self, job: Job, status: JobStatus = JobStatus.QUEUED) -> None: ...

    def set_job_status(self, job_id: str, status: JobStatus, description: str = "") -> None: ...

    def get_job(self, job_id: str) -> JobRecord | None: ...

    def jobs(self, *, statuses: tuple[JobStatus, ...] = (), limit: int = 100) -> list[JobRecord]:
        """Newest first, optionally only those in the given statuses."""
        ...

    def append_job_output(self, job_id: str, text: str) -> None:
        """Keep a job's output in the store, so its page outlives the log file and the pull request."""
        ...

    def job_output(self, job_id: str) -> str | None: ...

    def save_job_result(self, job_id: str, result: str) -> None:
        """Keep what a job answers its caller (an API run's JSON answer), for whichever process asks."""
        ...

    def job_result(self, job_id: str) -> str | None:
        """The result `save_job_result` kept, or None."""
        ...

    def expire_job_output(self, before: datetime) -> int:
        """Forget the output of jobs last written before `before`; how many were forgotten."""
        ...

    def job_output_expired(self, job_id: str) -> bool:
        """Whether the job's output was kept and then expired (rather than never written)."""
        ...


class LiveOutput(Protocol):
    """A running job's output where every process can follow it, whichever host runs the job (Redis mode)."""

    def publish(self, job_id: str, text: str, end: int) -> None:
        """Append `text` (whole lines), which ends at byte `end` of the job's log."""
        ...

    def read(self, job_id: str, offset: int, after: str = "-") -> tuple[bytes, str]:
        """The output from byte `offset` on, read from the entry after `after` ("-": the first) on, as far as
        published; and the id of the last entry read, to pass as `after` next time."""
        ...
