"""Per-project locks on Redis: `SQLiteLockStore`'s locks, queues and handoffs, atomic across hosts.

Every step that reads and then writes (taking several locks at once, queueing for one, releasing
and handing over to the first waiter) is one optimistic transaction (`transact`): it WATCHes what
it reads, and its writes are dropped and the step retried when another process changed any of it.
So of several pull requests racing for the same projects exactly one gets them all, and a released
lock passes to its first waiter before any racer can take it, as with SQLite.

```
{prefix}lock:{lock id}              string: the ProjectLock's JSON
{prefix}locks                       set of every lock id
{prefix}pull-locks:{owner/name#n}   set of the lock ids a pull request holds
{prefix}waiters:{lock id}           sorted set of waiting pull request numbers, by `waiter-seq`
{prefix}waits:{owner/name#n}        hash: lock id -> the ProjectLock the pull request would take
{prefix}waiter-seq                  counter that orders the waiting queues
{prefix}handoffs                    hash: lock id -> {pull_number, handed_at} not yet planned
```
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from pydantic import BaseModel
from redis.client import Pipeline

from atlas.models import Project, PullRequest, utcnow
from atlas.stores.locks import LockAttempt, ProjectLock, Release, lock_id_for
from atlas.stores.redis.backend import RedisBackend, pull_key, text, transact, watch


class Handoff(BaseModel):
    """A lock that passed to a waiting pull request, which has not been planned for it yet."""

    pull_number: int
    handed_at: datetime


class RedisLockStore:
    """`LockStore` on Redis; safe for any number of threads and processes sharing the Redis."""

    def __init__(self, backend: RedisBackend) -> None:
        self.backend = backend
        self.redis = backend.redis
        self._key = backend.key

    def _lock_key(self, lock_id: str) -> str:
        return self._key("lock", lock_id)

    def _waits_key(self, repo: str, number: int) -> str:
        return self._key("waits", pull_key(repo, number))

    # Taking locks

    def acquire(self, pull: PullRequest, projects: Sequence[Project], user: str, job_id: str = "") -> LockAttempt:
        wanted = _unique(ProjectLock.of(pull, project, user, job_id) for project in projects)
        if not wanted:
            return LockAttempt()

        def step(pipe: Pipeline) -> LockAttempt:
            keys = [self._lock_key(lock.id) for lock in wanted]
            watch(pipe, *keys)
            attempt = LockAttempt()
            for lock, held in zip(wanted, _locks(pipe.mget(keys)), strict=True):
                if held is None:
                    attempt.acquired.append(lock)
                elif held.repo == lock.repo and held.pull_number == lock.pull_number:
                    attempt.acquired.append(held.model_copy(update={"head_sha": lock.head_sha}))
                else:
                    attempt.conflicts.append(held)
            pipe.multi()
            for lock in attempt.acquired:
                self._put(pipe, lock)
                # Holding the lock, it no longer waits for it.
                self._unqueue(pipe, lock.id, lock.repo, lock.pull_number)
            return attempt

        return transact(self.redis, step)

    def wait_for(self, pull: PullRequest, project: Project, user: str) -> int:
        waiter = ProjectLock.of(pull, project, user)
        lock_key, waiters_key = self._lock_key(waiter.id), self._key("waiters", waiter.id)
        member = str(waiter.pull_number)

        def step(pipe: Pipeline) -> int:
            watch(pipe, lock_key, waiters_key)
            held = _lock(pipe.get(lock_key))
            if held is None:
                # Released between the refused acquire and now: nobody would ever hand it over,
                # so the waiter takes it, and is planned like any waiter a lock passes to.
                pipe.multi()
                self._put(pipe, waiter)
                self._record_handoff(pipe, waiter)
                return 0
            if held.repo == waiter.repo and held.pull_number == waiter.pull_number:
                return 0
            rank = pipe.zrank(waiters_key, member)
            seq: int | None = None
            if isinstance(rank, int):
                position = rank + 1
            else:
                # The counter only grows, so a newcomer always queues last.
                seq = pipe.incr(self._key("waiter-seq"))
                position = pipe.zcard(waiters_key) + 1
            pipe.multi()
            if seq is not None:
                pipe.zadd(waiters_key, {member: seq})
            # An existing entry keeps its place; only what it knows of the pull request is refreshed.
            pipe.hset(self._waits_key(waiter.repo, waiter.pull_number), waiter.id, waiter.model_dump_json())
            return position

        return transact(self.redis, step)

    def waiting(self, repo: str, project: Project) -> list[int]:
        return _numbers(self.redis.zrange(self._key("waiters", lock_id_for(repo, project)), 0, -1))

    def waiting_for_pull(self, repo: str, number: int) -> list[Project]:
        return _projects(_locks(self.redis.hvals(self._waits_key(repo, number))))

    def leave_queues(self, repo: str, number: int) -> list[Project]:
        waits_key = self._waits_key(repo, number)

        def step(pipe: Pipeline) -> list[Project]:
            watch(pipe, waits_key)
            waited = _locks(pipe.hvals(waits_key))
            pipe.multi()
            self._leave_queues(pipe, repo, number, [lock.id for lock in waited if lock is not None])
            return _projects(waited)

        return transact(self.redis, step)

    # Releasing locks

    def release_pull(self, repo: str, number: int) -> Release:
        waits_key, held_key = self._waits_key(repo, number), self._key("pull-locks", pull_key(repo, number))

        def step(pipe: Pipeline) -> Release:
            watch(pipe, waits_key, held_key)
            waited = [text(lock_id) or "" for lock_id in pipe.hkeys(waits_key)]
            held_ids = sorted(text(lock_id) or "" for lock_id in pipe.smembers(held_key))
            held = self._watch_locks(pipe, held_ids)
            ours = sorted(
                (lock for lock in held if lock.repo == repo and lock.pull_number == number),
                key=lambda lock: (lock.project.dir, lock.project.workspace),
            )
            # It leaves the queues first, so that no lock released below can pass to it.
            heirs = self._watch_heirs(pipe, ours, leaving=number)
            pipe.multi()
            self._leave_queues(pipe, repo, number, waited)
            pipe.delete(held_key)
            return self._release(pipe, ours, heirs)

        return transact(self.redis, step)

    def release(self, lock_id: str) -> Release:
        def step(pipe: Pipeline) -> Release:
            held = self._watch_locks(pipe, [lock_id])
            heirs = self._watch_heirs(pipe, held)
            pipe.multi()
            return self._release(pipe, held, heirs)

        return transact(self.redis, step)

    def settle_job_lock(self, lock_id: str, job_id: str, *, release: bool) -> Release:
        def step(pipe: Pipeline) -> Release:
            held = [lock for lock in self._watch_locks(pipe, [lock_id]) if job_id and lock.job_id == job_id]
            heirs = self._watch_heirs(pipe, held) if release else {}
            pipe.multi()
            if release:
                return self._release(pipe, held, heirs)
            for lock in held:
                self._put(pipe, lock.model_copy(update={"job_id": ""}))
            return Release()

        return transact(self.redis, step)

    def pending_handoffs(self) -> list[ProjectLock]:
        handoffs_key = self._key("handoffs")

        def step(pipe: Pipeline) -> list[tuple[datetime, ProjectLock]]:
            watch(pipe, handoffs_key)
            handoffs = {
                text(lock_id) or "": Handoff.model_validate_json(body)
                for lock_id, body in pipe.hgetall(handoffs_key).items()
            }
            locks = self._watch_locks(pipe, list(handoffs))
            # A handoff whose lock has changed hands since is moot.
            return [
                (handoffs[lock.id].handed_at, lock)
                for lock in locks
                if lock.pull_number == handoffs[lock.id].pull_number
            ]

        pending = transact(self.redis, step)
        pending.sort(key=lambda item: (item[0], item[1].repo, item[1].project.dir, item[1].project.workspace))
        return [lock for _, lock in pending]

    def mark_handoff_planned(self, lock_id: str) -> None:
        self.redis.hdel(self._key("handoffs"), lock_id)

    # Reading

    def get(self, repo: str, project: Project) -> ProjectLock | None:
        return self.get_by_id(lock_id_for(repo, project))

    def get_by_id(self, lock_id: str) -> ProjectLock | None:
        return _lock(self.redis.get(self._lock_key(lock_id)))

    def for_pull(self, repo: str, number: int) -> list[ProjectLock]:
        held = self.redis.smembers(self._key("pull-locks", pull_key(repo, number)))
        locks = self._read_locks(sorted(text(lock_id) or "" for lock_id in held))
        return sorted(locks, key=lambda lock: (lock.project.dir, lock.project.workspace))

    def all(self) -> list[ProjectLock]:
        locks = self._read_locks(sorted(text(lock_id) or "" for lock_id in self.redis.smembers(self._key("locks"))))
        return sorted(locks, key=lambda lock: (lock.repo, lock.project.dir, lock.project.workspace))

    def count(self) -> int:
        return int(self.redis.scard(self._key("locks")))

    # Steps shared by the transactions above

    def _read_locks(self, ids: list[str]) -> list[ProjectLock]:
        if not ids:
            return []
        return [lock for lock in _locks(self.redis.mget([self._lock_key(lock_id) for lock_id in ids])) if lock]

    def _watch_locks(self, pipe: Pipeline, ids: list[str]) -> list[ProjectLock]:
        """The locks with these ids that exist, watched (before MULTI)."""
        if not ids:
            return []
        keys = [self._lock_key(lock_id) for lock_id in ids]
        watch(pipe, *keys)
        return [lock for lock in _locks(pipe.mget(keys)) if lock is not None]

    def _watch_heirs(
        self, pipe: Pipeline, locks: list[ProjectLock], leaving: int | None = None
    ) -> dict[str, ProjectLock]:
        """The waiter each lock would pass to (the first in its queue but `leaving`), watched (before MULTI)."""
        heirs: dict[str, ProjectLock] = {}
        for lock in locks:
            waiters_key = self._key("waiters", lock.id)
            watch(pipe, waiters_key)
            first = next(
                (number for number in _numbers(pipe.zrange(waiters_key, 0, 1)) if number != leaving), None
            )
            if first is None:
                continue
            waits_key = self._waits_key(lock.repo, first)
            watch(pipe, waits_key)
            heir = _lock(pipe.hget(waits_key, lock.id))
            if heir is not None:
                heirs[lock.id] = heir.model_copy(update={"created_at": utcnow()})
        return heirs

    def _release(self, pipe: Pipeline, locks: list[ProjectLock], heirs: dict[str, ProjectLock]) -> Release:
        """Queue the writes that remove `locks` and pass each to its heir (after MULTI)."""
        release = Release(released=locks)
        for lock in locks:
            pipe.delete(self._lock_key(lock.id))
            pipe.srem(self._key("locks"), lock.id)
            pipe.srem(self._key("pull-locks", pull_key(lock.repo, lock.pull_number)), lock.id)
            pipe.hdel(self._key("handoffs"), lock.id)
            heir = heirs.get(lock.id)
            if heir is None:
                continue
            self._unqueue(pipe, heir.id, heir.repo, heir.pull_number)
            self._put(pipe, heir)
            self._record_handoff(pipe, heir)
            release.handed_over.append(heir)
        return release

    def _put(self, pipe: Pipeline, lock: ProjectLock) -> None:
        pipe.set(self._lock_key(lock.id), lock.model_dump_json())
        pipe.sadd(self._key("locks"), lock.id)
        pipe.sadd(self._key("pull-locks", pull_key(lock.repo, lock.pull_number)), lock.id)

    def _record_handoff(self, pipe: Pipeline, lock: ProjectLock) -> None:
        handoff = Handoff(pull_number=lock.pull_number, handed_at=lock.created_at)
        pipe.hset(self._key("handoffs"), lock.id, handoff.model_dump_json())

    def _unqueue(self, pipe: Pipeline, lock_id: str, repo: str, number: int) -> None:
        pipe.zrem(self._key("waiters", lock_id), str(number))
        pipe.hdel(self._waits_key(repo, number), lock_id)

    def _leave_queues(self, pipe: Pipeline, repo: str, number: int, lock_ids: Iterable[str]) -> None:
        for lock_id in lock_ids:
            pipe.zrem(self._key("waiters", lock_id), str(number))
        pipe.delete(self._waits_key(repo, number))


def _unique(locks: Iterable[ProjectLock]) -> list[ProjectLock]:
    """The locks in order, each project once (a project named twice is one lock)."""
    seen: dict[str, ProjectLock] = {}
    for lock in locks:
        seen.setdefault(lock.id, lock)
    return list(seen.values())


def _numbers(members: Iterable[object]) -> list[int]:
    return [int(text(member) or 0) for member in members]


def _lock(body: object) -> ProjectLock | None:
    value = text(body)
    return ProjectLock.model_validate_json(value) if value else None


def _locks(bodies: Iterable[object]) -> list[ProjectLock | None]:
    return [_lock(body) for body in bodies]


def _projects(locks: Iterable[ProjectLock | None]) -> list[Project]:
    projects = [lock.project for lock in locks if lock is not None]
    return sorted(projects, key=lambda project: (project.dir, project.workspace))
