"""Where atlas keeps what must outlive a request: deliveries, jobs, pull requests and plans.

`StateStore` is the interface; `SQLiteStateStore` is the embedded default (one file under the
data dir, safe for several threads and several processes on the same data dir). A later issue adds
a Redis implementation behind the same interface.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel

from atlas.models import Job, JobStatus, PlanRecord, Project, PullRequest, utcnow


class JobRecord(BaseModel):
    """A job as the store remembers it: what it was asked to do and how it went."""

    job: Job
    status: JobStatus
    description: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None


class StateStore(Protocol):
    def claim_delivery(self, delivery_id: str, event: str) -> bool:
        """Record a delivery id; False when it was already claimed (a redelivery)."""
        ...

    def release_delivery(self, delivery_id: str) -> None:
        """Forget a claimed delivery whose work could not be queued, so a redelivery runs it."""
        ...

    def save_job(self, job: Job, status: JobStatus = JobStatus.QUEUED) -> None: ...

    def set_job_status(self, job_id: str, status: JobStatus, description: str = "") -> None: ...

    def get_job(self, job_id: str) -> JobRecord | None: ...

    def jobs(self, *, statuses: tuple[JobStatus, ...] = (), limit: int = 100) -> list[JobRecord]:
        """Newest first, optionally only those in the given statuses."""
        ...

    def save_pull(self, pull: PullRequest) -> None: ...

    def get_pull(self, repo: str, number: int) -> PullRequest | None: ...

    def save_plan(self, plan: PlanRecord) -> None:
        """Store the latest plan of a project of a pull request, replacing an earlier one."""
        ...

    def plans(self, repo: str, number: int) -> list[PlanRecord]: ...

    def delete_plans(self, repo: str, number: int, project: Project | None = None) -> list[PlanRecord]:
        """Forget the pull request's plans (or one project's); returns what was removed."""
        ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    id TEXT PRIMARY KEY,
    event TEXT NOT NULL,
    received_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    pull_key TEXT NOT NULL,
    command TEXT NOT NULL,
    status TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    body TEXT NOT NULL,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT
);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, created_at);
CREATE TABLE IF NOT EXISTS pulls (
    repo TEXT NOT NULL,
    number INTEGER NOT NULL,
    body TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (repo, number)
);
CREATE TABLE IF NOT EXISTS plans (
    repo TEXT NOT NULL,
    number INTEGER NOT NULL,
    dir TEXT NOT NULL,
    workspace TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (repo, number, dir, workspace)
);
"""


class SQLiteStateStore:
    """The embedded state store: SQLite in WAL mode, one connection per thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        # executescript commits on its own, so it cannot run inside _transaction().
        self._connection().executescript(_SCHEMA)

    def _connection(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE below), so a
            # read-modify-write never interleaves with another process's write.
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=30000")
            self._local.db = db
        return db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def claim_delivery(self, delivery_id: str, event: str) -> bool:
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO deliveries (id, event, received_at) VALUES (?, ?, ?)",
                (delivery_id, event, utcnow().isoformat()),
            )
            return cursor.rowcount == 1

    def release_delivery(self, delivery_id: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM deliveries WHERE id = ?", (delivery_id,))

    def save_job(self, job: Job, status: JobStatus = JobStatus.QUEUED) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO jobs (id, pull_key, command, status, body, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (job.id, job.serial_key, job.command.value, status.value, job.model_dump_json(),
                 job.created_at.isoformat()),
            )

    def set_job_status(self, job_id: str, status: JobStatus, description: str = "") -> None:
        now = utcnow().isoformat()
        with self._transaction() as db:
            if status is JobStatus.RUNNING:
                db.execute(
                    "UPDATE jobs SET status = ?, description = ?, started_at = ? WHERE id = ?",
                    (status.value, description, now, job_id),
                )
            elif status.finished:
                db.execute(
                    "UPDATE jobs SET status = ?, description = ?, finished_at = ? WHERE id = ?",
                    (status.value, description, now, job_id),
                )
            else:
                db.execute(
                    "UPDATE jobs SET status = ?, description = ? WHERE id = ?",
                    (status.value, description, job_id),
                )

    def get_job(self, job_id: str) -> JobRecord | None:
        row = self._connection().execute(
            "SELECT body, status, description, started_at, finished_at FROM jobs WHERE id = ?", (job_id,)
        ).fetchone()
        return _job_record(row) if row else None

    def jobs(self, *, statuses: tuple[JobStatus, ...] = (), limit: int = 100) -> list[JobRecord]:
        query = "SELECT body, status, description, started_at, finished_at FROM jobs"
        params: list[object] = []
        if statuses:
            query += f" WHERE status IN ({','.join('?' * len(statuses))})"
            params.extend(s.value for s in statuses)
        query += " ORDER BY created_at DESC LIMIT ?"
        params.append(limit)
        return [_job_record(row) for row in self._connection().execute(query, params)]

    def save_pull(self, pull: PullRequest) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO pulls (repo, number, body, updated_at) VALUES (?, ?, ?, ?)",
                (pull.repo.full_name, pull.number, pull.model_dump_json(), utcnow().isoformat()),
            )

    def get_pull(self, repo: str, number: int) -> PullRequest | None:
        row = self._connection().execute(
            "SELECT body FROM pulls WHERE repo = ? AND number = ?", (repo, number)
        ).fetchone()
        return PullRequest.model_validate_json(row[0]) if row else None

    def save_plan(self, plan: PlanRecord) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO plans (repo, number, dir, workspace, body, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (plan.repo, plan.pull_number, plan.project.dir, plan.project.workspace,
                 plan.model_dump_json(), plan.created_at.isoformat()),
            )

    def plans(self, repo: str, number: int) -> list[PlanRecord]:
        rows = self._connection().execute(
            "SELECT body FROM plans WHERE repo = ? AND number = ? ORDER BY dir, workspace", (repo, number)
        )
        return [PlanRecord.model_validate_json(row[0]) for row in rows]

    def delete_plans(self, repo: str, number: int, project: Project | None = None) -> list[PlanRecord]:
        where = "repo = ? AND number = ?"
        params: tuple[object, ...] = (repo, number)
        if project is not None:
            where += " AND dir = ? AND workspace = ?"
            params += (project.dir, project.workspace)
        with self._transaction() as db:
            rows = db.execute(f"SELECT body FROM plans WHERE {where}", params).fetchall()
            db.execute(f"DELETE FROM plans WHERE {where}", params)
        return [PlanRecord.model_validate_json(row[0]) for row in rows]


def _job_record(row: tuple[str, str, str, str | None, str | None]) -> JobRecord:
    body, status, description, started_at, finished_at = row
    return JobRecord(
        job=Job.model_validate_json(body),
        status=JobStatus(status),
        description=description,
        started_at=datetime.fromisoformat(started_at) if started_at else None,
        finished_at=datetime.fromisoformat(finished_at) if finished_at else None,
    )
