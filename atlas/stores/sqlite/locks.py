"""The embedded lock store: `LockStore` in SQLite tables beside the state store's, in `<data-dir>/atlas.db`."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

from atlas.models import Project, PullRequest, utcnow
from atlas.stores.locks import LockAttempt, ProjectLock, Release, lock_id_for
from atlas.stores.sqlite.database import SQLiteDatabase

_SCHEMA = """
CREATE TABLE IF NOT EXISTS locks (
    id TEXT PRIMARY KEY,
    repo TEXT NOT NULL,
    dir TEXT NOT NULL,
    workspace TEXT NOT NULL,
    pull_number INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS locks_by_pull ON locks (repo, pull_number);
CREATE INDEX IF NOT EXISTS locks_in_order ON locks (repo, dir, workspace);
CREATE TABLE IF NOT EXISTS lock_waiters (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    lock_id TEXT NOT NULL,
    repo TEXT NOT NULL,
    pull_number INTEGER NOT NULL,
    body TEXT NOT NULL,
    UNIQUE (lock_id, repo, pull_number)
);
CREATE INDEX IF NOT EXISTS lock_waiters_by_pull ON lock_waiters (repo, pull_number);
CREATE TABLE IF NOT EXISTS lock_handoffs (
    lock_id TEXT PRIMARY KEY,
    pull_number INTEGER NOT NULL,
    handed_at TEXT NOT NULL
);
"""


class SQLiteLockStore:
    """The embedded lock store: SQLite in WAL mode, one connection per thread, one transaction per call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = SQLiteDatabase(path, _SCHEMA)
        self._connection = self._db.connection
        self._transaction = self._db.transaction

    # Taking locks

    def acquire(self, pull: PullRequest, projects: Sequence[Project], user: str, job_id: str = "") -> LockAttempt:
        wanted = _unique(ProjectLock.of(pull, project, user, job_id) for project in projects)
        attempt = LockAttempt()
        if not wanted:
            return attempt
        with self._transaction() as db:
            for lock in wanted:
                held = _get(db, lock.id)
                if held is None:
                    _insert(db, lock)
                    attempt.acquired.append(lock)
                elif held.repo == lock.repo and held.pull_number == lock.pull_number:
                    kept = held.model_copy(update={"head_sha": lock.head_sha})
                    db.execute("UPDATE locks SET body = ? WHERE id = ?", (kept.model_dump_json(), kept.id))
                    attempt.acquired.append(kept)
                else:
                    attempt.conflicts.append(held)
                    continue
                # Holding the lock, it no longer waits for it.
                db.execute(
                    "DELETE FROM lock_waiters WHERE lock_id = ? AND repo = ? AND pull_number = ?",
                    (lock.id, lock.repo, lock.pull_number),
                )
        return attempt

    def wait_for(self, pull: PullRequest, project: Project, user: str) -> int:
        waiter = ProjectLock.of(pull, project, user)
        with self._transaction() as db:
            held = _get(db, waiter.id)
            if held is None:
                # Released between the refused acquire and now: nobody would ever hand it over,
                # so the waiter takes it, and is planned like any waiter a lock passes to.
                _insert(db, waiter)
                _record_handoff(db, waiter)
                return 0
            if held.repo == waiter.repo and held.pull_number == waiter.pull_number:
                return 0
            # An existing entry keeps its place; only what it knows of the pull request is refreshed.
            db.execute(
                "INSERT INTO lock_waiters (lock_id, repo, pull_number, body) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (lock_id, repo, pull_number) DO UPDATE SET body = excluded.body",
                (waiter.id, waiter.repo, waiter.pull_number, waiter.model_dump_json()),
            )
            row = db.execute(
                "SELECT COUNT(*) FROM lock_waiters WHERE lock_id = ? AND seq <= "
                "(SELECT seq FROM lock_waiters WHERE lock_id = ? AND repo = ? AND pull_number = ?)",
                (waiter.id, waiter.id, waiter.repo, waiter.pull_number),
            ).fetchone()
            position: int = row[0]
            return position

    def waiting(self, repo: str, project: Project) -> list[int]:
        rows = self._connection().execute(
            "SELECT pull_number FROM lock_waiters WHERE lock_id = ? ORDER BY seq", (lock_id_for(repo, project),)
        )
        return [row[0] for row in rows]

    def waiting_for_pull(self, repo: str, number: int) -> list[Project]:
        rows = self._connection().execute(
            "SELECT body FROM lock_waiters WHERE repo = ? AND pull_number = ?", (repo, number)
        ).fetchall()
        return _projects(rows)

    def leave_queues(self, repo: str, number: int) -> list[Project]:
        with self._transaction() as db:
            rows = _leave_queues(db, repo, number)
        return _projects(rows)

    # Releasing locks

    def release_pull(self, repo: str, number: int) -> Release:
        with self._transaction() as db:
            # First out of the queues, so that no lock released below can pass to this pull request.
            _leave_queues(db, repo, number)
            rows = db.execute(
                "SELECT body FROM locks WHERE repo = ? AND pull_number = ? ORDER BY dir, workspace", (repo, number)
            ).fetchall()
            return _release(db, [ProjectLock.model_validate_json(row[0]) for row in rows])

    def release(self, lock_id: str) -> Release:
        with self._transaction() as db:
            held = _get(db, lock_id)
            return _release(db, [held] if held is not None else [])

    def settle_job_lock(self, lock_id: str, job_id: str, *, release: bool) -> Release:
        with self._transaction() as db:
            held = _get(db, lock_id)
            if held is None or not job_id or held.job_id != job_id:
                return Release()
            if release:
                return _release(db, [held])
            kept = held.model_copy(update={"job_id": ""})
            db.execute("UPDATE locks SET body = ? WHERE id = ?", (kept.model_dump_json(), kept.id))
            return Release()

    def pending_handoffs(self) -> list[ProjectLock]:
        # Joined on the pull request too: a handoff whose lock has changed hands since is moot.
        rows = self._connection().execute(
            "SELECT locks.body FROM lock_handoffs JOIN locks"
            " ON locks.id = lock_handoffs.lock_id AND locks.pull_number = lock_handoffs.pull_number"
            " ORDER BY lock_handoffs.handed_at, locks.repo, locks.dir, locks.workspace"
        )
        return [ProjectLock.model_validate_json(row[0]) for row in rows]

    def mark_handoff_planned(self, lock_id: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM lock_handoffs WHERE lock_id = ?", (lock_id,))

    # Reading

    def get(self, repo: str, project: Project) -> ProjectLock | None:
        return self.get_by_id(lock_id_for(repo, project))

    def get_by_id(self, lock_id: str) -> ProjectLock | None:
        return _get(self._connection(), lock_id)

    def for_pull(self, repo: str, number: int) -> list[ProjectLock]:
        rows = self._connection().execute(
            "SELECT body FROM locks WHERE repo = ? AND pull_number = ? ORDER BY dir, workspace", (repo, number)
        )
        return [ProjectLock.model_validate_json(row[0]) for row in rows]

    def all(self) -> list[ProjectLock]:
        rows = self._connection().execute("SELECT body FROM locks ORDER BY repo, dir, workspace")
        return [ProjectLock.model_validate_json(row[0]) for row in rows]

    def count(self) -> int:
        row = self._connection().execute("SELECT COUNT(*) FROM locks").fetchone()
        total: int = row[0]
        return total


def _unique(locks: Iterable[ProjectLock]) -> list[ProjectLock]:
    """The locks in order, each project once (a project named twice is one lock)."""
    seen: dict[str, ProjectLock] = {}
    for lock in locks:
        seen.setdefault(lock.id, lock)
    return list(seen.values())


def _get(db: sqlite3.Connection, lock_id: str) -> ProjectLock | None:
    row = db.execute("SELECT body FROM locks WHERE id = ?", (lock_id,)).fetchone()
    return ProjectLock.model_validate_json(row[0]) if row else None


def _insert(db: sqlite3.Connection, lock: ProjectLock) -> None:
    db.execute(
        "INSERT INTO locks (id, repo, dir, workspace, pull_number, body) VALUES (?, ?, ?, ?, ?, ?)",
        (lock.id, lock.repo, lock.project.dir, lock.project.workspace, lock.pull_number, lock.model_dump_json()),
    )


def _record_handoff(db: sqlite3.Connection, lock: ProjectLock) -> None:
    db.execute(
        "INSERT OR REPLACE INTO lock_handoffs (lock_id, pull_number, handed_at) VALUES (?, ?, ?)",
        (lock.id, lock.pull_number, lock.created_at.isoformat()),
    )


def _leave_queues(db: sqlite3.Connection, repo: str, number: int) -> list[tuple[str]]:
    rows: list[tuple[str]] = db.execute(
        "SELECT body FROM lock_waiters WHERE repo = ? AND pull_number = ?", (repo, number)
    ).fetchall()
    db.execute("DELETE FROM lock_waiters WHERE repo = ? AND pull_number = ?", (repo, number))
    return rows


def _release(db: sqlite3.Connection, locks: list[ProjectLock]) -> Release:
    """Remove `locks` and pass each to the first pull request waiting for it, inside the caller's transaction."""
    release = Release(released=locks)
    for lock in locks:
        db.execute("DELETE FROM locks WHERE id = ?", (lock.id,))
        db.execute("DELETE FROM lock_handoffs WHERE lock_id = ?", (lock.id,))
        first = db.execute(
            "SELECT seq, body FROM lock_waiters WHERE lock_id = ? ORDER BY seq LIMIT 1", (lock.id,)
        ).fetchone()
        if first is None:
            continue
        db.execute("DELETE FROM lock_waiters WHERE seq = ?", (first[0],))
        heir = ProjectLock.model_validate_json(first[1]).model_copy(update={"created_at": utcnow()})
        _insert(db, heir)
        _record_handoff(db, heir)
        release.handed_over.append(heir)
    return release


def _projects(rows: Iterable[tuple[str]]) -> list[Project]:
    projects = [ProjectLock.model_validate_json(row[0]).project for row in rows]
    return sorted(projects, key=lambda project: (project.dir, project.workspace))
