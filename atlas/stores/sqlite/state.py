"""The embedded state store: every role of `StateStore` in one SQLite file under the data dir.

Safe for several threads and several processes on the same data dir (WAL, `BEGIN IMMEDIATE`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from atlas.models import DriftRecord, Job, JobStatus, Project, PullRequest, Repo, utcnow
from atlas.stores.audit import AuditEntry
from atlas.stores.jobs import JobRecord
from atlas.stores.plans import PlanRecord
from atlas.stores.policy import PolicyApprovalRecord, PolicyCheckRecord
from atlas.stores.pulls import ProjectState
from atlas.stores.sqlite.database import SQLiteDatabase

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
CREATE TABLE IF NOT EXISTS project_states (
    repo TEXT NOT NULL,
    number INTEGER NOT NULL,
    dir TEXT NOT NULL,
    workspace TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (repo, number, dir, workspace)
);
CREATE TABLE IF NOT EXISTS comment_records (
    repo TEXT NOT NULL,
    number INTEGER NOT NULL,
    kind TEXT NOT NULL,
    node_id TEXT NOT NULL,
    PRIMARY KEY (repo, number, kind, node_id)
);
CREATE TABLE IF NOT EXISTS job_output (
    job_id TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS job_output_by_age ON job_output (updated_at);
CREATE TABLE IF NOT EXISTS job_results (
    job_id TEXT PRIMARY KEY,
    result TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS job_output_expired (
    job_id TEXT PRIMARY KEY,
    expired_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS once_markers (
    key TEXT PRIMARY KEY,
    claimed_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS slot_claims (
    key TEXT PRIMARY KEY,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS drift (
    repo TEXT NOT NULL,
    dir TEXT NOT NULL,
    workspace TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (repo, dir, workspace)
);
CREATE TABLE IF NOT EXISTS audit (
    id TEXT PRIMARY KEY,
    at TEXT NOT NULL,
    repo TEXT NOT NULL,
    action TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_time ON audit (at);
CREATE TABLE IF NOT EXISTS plans (
    repo TEXT NOT NULL,
    number INTEGER NOT NULL,
    dir TEXT NOT NULL,
    workspace TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (repo, number, dir, workspace)
);
CREATE TABLE IF NOT EXISTS policy_checks (
    repo TEXT NOT NULL,
    number INTEGER NOT NULL,
    dir TEXT NOT NULL,
    workspace TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (repo, number, dir, workspace)
);
CREATE TABLE IF NOT EXISTS policy_approvals (
    repo TEXT NOT NULL,
    number INTEGER NOT NULL,
    dir TEXT NOT NULL,
    workspace TEXT NOT NULL,
    policy_set TEXT NOT NULL,
    user TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (repo, number, dir, workspace, policy_set, user)
);
"""


class SQLiteStateStore:
    """The embedded state store: SQLite in WAL mode, one connection per thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = SQLiteDatabase(path, _SCHEMA)
        self._connection = self._db.connection
        self._transaction = self._db.transaction

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
                (pull.repo.key, pull.number, pull.model_dump_json(), utcnow().isoformat()),
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

    def set_project_state(self, repo: str, number: int, state: ProjectState) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO project_states (repo, number, dir, workspace, body) VALUES (?, ?, ?, ?, ?)",
                (repo, number, state.project.dir, state.project.workspace, state.model_dump_json()),
            )

    def project_states(self, repo: str, number: int) -> list[ProjectState]:
        rows = self._connection().execute(
            "SELECT body FROM project_states WHERE repo = ? AND number = ? ORDER BY dir, workspace", (repo, number)
        )
        return [ProjectState.model_validate_json(row[0]) for row in rows]

    def forget_pull(self, repo: str, number: int) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM project_states WHERE repo = ? AND number = ?", (repo, number))
            db.execute("DELETE FROM comment_records WHERE repo = ? AND number = ?", (repo, number))
            db.execute("DELETE FROM policy_checks WHERE repo = ? AND number = ?", (repo, number))
            db.execute("DELETE FROM policy_approvals WHERE repo = ? AND number = ?", (repo, number))

    def add_comment_record(self, repo: str, number: int, kind: str, node_id: str) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO comment_records (repo, number, kind, node_id) VALUES (?, ?, ?, ?)",
                (repo, number, kind, node_id),
            )

    def take_comment_records(self, repo: str, number: int, kind: str) -> list[str]:
        where = "repo = ? AND number = ? AND kind = ?"
        with self._transaction() as db:
            rows = db.execute(f"SELECT node_id FROM comment_records WHERE {where}", (repo, number, kind)).fetchall()
            db.execute(f"DELETE FROM comment_records WHERE {where}", (repo, number, kind))
        return [row[0] for row in rows]

    def save_policy_check(self, record: PolicyCheckRecord) -> None:
        key = (record.repo, record.pull_number, record.project.dir, record.project.workspace)
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO policy_checks (repo, number, dir, workspace, body) VALUES (?, ?, ?, ?, ?)",
                (*key, record.model_dump_json()))
            db.execute("DELETE FROM policy_approvals WHERE repo = ? AND number = ? AND dir = ? AND workspace = ?", key)

    def policy_checks(self, repo: str, number: int) -> list[PolicyCheckRecord]:
        rows = self._connection().execute(
            "SELECT body FROM policy_checks WHERE repo = ? AND number = ? ORDER BY dir, workspace", (repo, number))
        return [PolicyCheckRecord.model_validate_json(row[0]) for row in rows]

    def add_policy_approval(self, record: PolicyApprovalRecord) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO policy_approvals (repo, number, dir, workspace, policy_set, user, body) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (record.repo, record.pull_number, record.project.dir, record.project.workspace, record.policy_set,
                 record.user.casefold(), record.model_dump_json()))

    def remove_policy_approvals(self, repo: str, number: int, project: Project, user: str) -> int:
        with self._transaction() as db:
            cursor = db.execute(
                "DELETE FROM policy_approvals WHERE repo = ? AND number = ? AND dir = ? AND workspace = ? AND user = ?",
                (repo, number, project.dir, project.workspace, user.casefold()))
            return cursor.rowcount

    def policy_approvals(self, repo: str, number: int) -> list[PolicyApprovalRecord]:
        rows = self._connection().execute(
            "SELECT body FROM policy_approvals WHERE repo = ? AND number = ? ORDER BY dir, workspace, policy_set, user",
            (repo, number))
        return [PolicyApprovalRecord.model_validate_json(row[0]) for row in rows]


    def claim_once(self, key: str) -> bool:
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO once_markers (key, claimed_at) VALUES (?, ?)", (key, utcnow().isoformat())
            )
            return cursor.rowcount == 1

    def append_job_output(self, job_id: str, text: str) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO job_output (job_id, text, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (job_id) DO UPDATE SET text = job_output.text || excluded.text,"
                " updated_at = excluded.updated_at",
                (job_id, text, utcnow().isoformat()),
            )

    def job_output(self, job_id: str) -> str | None:
        row = self._connection().execute("SELECT text FROM job_output WHERE job_id = ?", (job_id,)).fetchone()
        return str(row[0]) if row else None

    def save_job_result(self, job_id: str, result: str) -> None:
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO job_results (job_id, result) VALUES (?, ?)", (job_id, result))

    def job_result(self, job_id: str) -> str | None:
        row = self._connection().execute("SELECT result FROM job_results WHERE job_id = ?", (job_id,)).fetchone()
        return str(row[0]) if row else None

    def expire_job_output(self, before: datetime) -> int:
        with self._transaction() as db:
            # A tombstone per job, so that its page can say the output was deleted, not never written.
            db.execute(
                "INSERT OR REPLACE INTO job_output_expired (job_id, expired_at)"
                " SELECT job_id, ? FROM job_output WHERE updated_at < ?",
                (utcnow().isoformat(), before.isoformat()),
            )
            return db.execute("DELETE FROM job_output WHERE updated_at < ?", (before.isoformat(),)).rowcount

    def job_output_expired(self, job_id: str) -> bool:
        row = self._connection().execute("SELECT 1 FROM job_output_expired WHERE job_id = ?", (job_id,)).fetchone()
        return row is not None

    def known_repos(self) -> list[Repo]:
        rows = self._connection().execute(
            "SELECT body FROM pulls WHERE rowid IN (SELECT MAX(rowid) FROM pulls GROUP BY repo) ORDER BY repo"
        )
        return [PullRequest.model_validate_json(row[0]).repo for row in rows]

    def claim_slot(self, key: str, ttl_seconds: float) -> bool:
        now = utcnow().timestamp()
        with self._transaction() as db:
            db.execute("DELETE FROM slot_claims WHERE expires_at <= ?", (now,))
            cursor = db.execute(
                "INSERT OR IGNORE INTO slot_claims (key, expires_at) VALUES (?, ?)", (key, now + ttl_seconds)
            )
            return cursor.rowcount == 1

    def save_drift(self, record: DriftRecord) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO drift (repo, dir, workspace, body) VALUES (?, ?, ?, ?)",
                (record.repo, record.project.dir, record.project.workspace, record.model_dump_json()),
            )

    def drift_records(self, repo: str | None = None) -> list[DriftRecord]:
        where, params = ("WHERE repo = ?", (repo,)) if repo is not None else ("", ())
        rows = self._connection().execute(f"SELECT body FROM drift {where} ORDER BY repo, dir, workspace", params)
        return [DriftRecord.model_validate_json(row[0]) for row in rows]

    def record_audit(self, entry: AuditEntry) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO audit (id, at, repo, action, body) VALUES (?, ?, ?, ?, ?)",
                (entry.id, _sortable(entry.at), entry.repo, entry.action.value, entry.model_dump_json()),
            )

    def audit_entries(
        self, *, repo: str | None = None, action: str | None = None, before: datetime | None = None, limit: int = 100
    ) -> list[AuditEntry]:
        conditions: list[str] = []
        params: list[object] = []
        for column, value in (("repo", repo), ("action", action)):
            if value is not None:
                conditions.append(f"{column} = ?")
                params.append(value)
        if before is not None:
            conditions.append("at < ?")
            params.append(_sortable(before))
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        params.append(max(limit, 0))
        rows = self._connection().execute(f"SELECT body FROM audit{where} ORDER BY at DESC, id DESC LIMIT ?", params)
        return [AuditEntry.model_validate_json(row[0]) for row in rows]


def _sortable(moment: datetime) -> str:
    """A UTC time as text that sorts in time order (fixed width, microseconds always written)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _job_record(row: tuple[str, str, str, str | None, str | None]) -> JobRecord:
    body, status, description, started_at, finished_at = row
    return JobRecord(
        job=Job.model_validate_json(body),
        status=JobStatus(status),
        description=description,
        started_at=datetime.fromisoformat(started_at) if started_at else None,
        finished_at=datetime.fromisoformat(finished_at) if finished_at else None,
    )
