"""Where a job's output is read from for its page, and how old output is expired.

While a job runs, its output grows in `<data-dir>/jobs/<id>.log` (`atlas.runtime.joblog`). Once it has
finished, the state store keeps a copy (`JobOutputStore`), which outlives a restart, the pull
request's close and a worker on another machine, until `--job-log-retention-days` expires it.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol, runtime_checkable

from atlas.commands.context import CommandContext
from atlas.models import JobStatus, utcnow
from atlas.stores.state import StateStore

log = logging.getLogger(__name__)

EXPIRY_SWEEP_SECONDS = 3600.0
"""How often the server drops job output older than the retention."""


@runtime_checkable
class JobOutputStore(Protocol):
    """The state store's part that keeps job output (SQLite table `job_output`; Redis `APPEND`)."""

    def append_job_output(self, job_id: str, text: str) -> None:
        """Add `text` to the end of the job's stored output."""
        ...

    def job_output(self, job_id: str) -> str | None:
        """The job's stored output, or None when none was stored or it expired."""
        ...

    def expire_job_output(self, before: datetime) -> int:
        """Forget output last written before `before`; how many jobs' output was dropped."""
        ...

    def job_output_expired(self, job_id: str) -> bool:
        """Whether the job's output was kept and has expired since (not: it never wrote any)."""
        ...


def log_path(ctx: CommandContext, job_id: str) -> Path:
    """The job's log file (the same file `CommandContext.job_log` writes)."""
    return ctx.settings.data_dir / "jobs" / f"{job_id}.log"


def output_store(state: StateStore) -> JobOutputStore | None:
    return state if isinstance(state, JobOutputStore) else None


def job_output(ctx: CommandContext, job_id: str) -> str | None:
    """The job's output: the state store's copy, else its log file; None when there is neither (expired)."""
    store = output_store(ctx.state)
    if store is not None:
        stored = store.job_output(job_id)
        if stored is not None:
            return stored
    try:
        return log_path(ctx, job_id).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None


def output_expired(ctx: CommandContext, job_id: str) -> bool:
    """Whether a job without output had some that expired, rather than never writing any."""
    store = output_store(ctx.state)
    return store is not None and store.job_output_expired(job_id)


def expire_job_output(ctx: CommandContext, retention: timedelta, now: datetime | None = None) -> int:
    """Drop job output older than `retention`: stored copies and log files; how many of them were dropped."""
    cutoff = (now or utcnow()) - retention
    store = output_store(ctx.state)
    dropped = store.expire_job_output(cutoff) if store is not None else 0
    unfinished = ctx.state.jobs(statuses=(JobStatus.QUEUED, JobStatus.RUNNING), limit=100_000)
    keep = {record.job.id for record in unfinished}
    jobs_dir = ctx.settings.data_dir / "jobs"
    for path in jobs_dir.glob("*.log") if jobs_dir.is_dir() else ():
        try:
            if path.stem not in keep and path.stat().st_mtime < cutoff.timestamp():
                path.unlink()
                dropped += 1
        except FileNotFoundError:
            continue
    return dropped


class OutputExpiry(threading.Thread):
    """Drops job output older than the retention, once an hour, for as long as the server runs."""

    def __init__(self, ctx: CommandContext, retention: timedelta) -> None:
        super().__init__(name="atlas-output-expiry", daemon=True)
        self.ctx = ctx
        self.retention = retention

    def run(self) -> None:
        while True:
            try:
                dropped = expire_job_output(self.ctx, self.retention)
                if dropped:
                    log.info("dropped %d job output(s) older than %s", dropped, self.retention)
            except Exception:
                log.exception("expiring old job output failed; retrying later")
            time.sleep(EXPIRY_SWEEP_SECONDS)
