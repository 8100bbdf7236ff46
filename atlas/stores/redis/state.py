"""The state store on Redis: what `SQLiteStateStore` keeps, shared by every atlas process that reaches one Redis.

`--redis-url` puts deliveries, jobs, pull requests, plans, project states, comment records and
once-only notices here, so web processes and `atlas worker` processes on different hosts see the
same state. Each record lives under its own key below the backend's prefix (`--redis-key-prefix`):

```
{prefix}delivery:{id}               string, expires after DELIVERY_TTL_SECONDS
{prefix}job:{id}                    hash: body, status, description, started_at, finished_at, created, result
{prefix}jobs                        sorted set of job ids by creation time; one per status: jobs:{status}
{prefix}pull:{owner/name#number}    string: the pull request's JSON
{prefix}plans:{owner/name#number}   hash: ["dir","workspace"] -> PlanRecord JSON
{prefix}project-states:{...}        hash: ["dir","workspace"] -> ProjectState JSON
{prefix}comment-records:{...}       hash: ["kind","node id"] -> kind
{prefix}once:{key}                  string
{prefix}repos                       hash: owner/name -> Repo JSON (the repositories of saved pull requests)
{prefix}slot:{key}                  string, expires: a claimed scheduler slot
{prefix}drift                       hash: ["repo","dir","workspace"] -> DriftRecord JSON
{prefix}audit                       sorted set of AuditEntry JSON by time
```

Read-decide-write steps are optimistic transactions (`atlas.stores.redis.backend.transact`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TypeVar

from redis.client import Pipeline
from redis.typing import EncodableT, FieldT

from atlas.models import DriftRecord, Job, JobStatus, Project, PullRequest, Repo, utcnow
from atlas.stores.audit import AuditEntry
from atlas.stores.jobs import JobRecord
from atlas.stores.plans import PlanRecord
from atlas.stores.policy import PolicyApprovalRecord, PolicyCheckRecord
from atlas.stores.pulls import ProjectState
from atlas.stores.redis.backend import RedisBackend, project_field, pull_key, text, transact, watch

DELIVERY_TTL_SECONDS = 7 * 24 * 3600
"""How long a delivery id is remembered; GitHub redelivers only deliveries of the last three days."""

AUDIT_PAGE = 500
"""Audit entries read from Redis at a time while looking for those that match a filter."""

T = TypeVar("T")


_JOB_FIELDS = ("body", "status", "description", "started_at", "finished_at")

# Newest first from the given index sets, merged, with each job's fields: one consistent read.
_LIST_JOBS = """
local limit = tonumber(ARGV[1])
local picked = {}
for _, index in ipairs(KEYS) do
  local entries = redis.call('ZREVRANGE', index, 0, limit - 1, 'WITHSCORES')
  for i = 1, #entries, 2 do
    picked[#picked + 1] = {entries[i], tonumber(entries[i + 1])}
  end
end
table.sort(picked, function(a, b)
  if a[2] ~= b[2] then return a[2] > b[2] end
  return a[1] > b[1]
end)
local records = {}
for i = 1, math.min(limit, #picked) do
  records[i] = redis.call('HMGET', ARGV[2] .. picked[i][1], 'body', 'status', 'description', 'started_at',
                          'finished_at')
end
return records
"""


class RedisStateStore:
    """Every role of the state store on Redis; safe for any number of threads and processes sharing the Redis."""

    job_output_ttl_seconds = 30 * 24 * 3600

    def __init__(self, backend: RedisBackend) -> None:
        self.backend = backend
        self.redis = backend.redis
        self._key = backend.key
        self._list_jobs = self.redis.register_script(_LIST_JOBS)

    # Deliveries

    def claim_delivery(self, delivery_id: str, event: str) -> bool:
        return bool(self.redis.set(self.backend.delivery_key(delivery_id), event, nx=True, ex=DELIVERY_TTL_SECONDS))

    def release_delivery(self, delivery_id: str) -> None:
        self.redis.delete(self.backend.delivery_key(delivery_id))

    # Jobs

    def save_job(self, job: Job, status: JobStatus = JobStatus.QUEUED) -> None:
        key = self._key("job", job.id)
        created = job.created_at.timestamp()
        with self.redis.pipeline(transaction=True) as pipe:
            # Saving again replaces the record, as SQLite's INSERT OR REPLACE does.
            pipe.delete(key)
            pipe.hset(key, mapping={"body": job.model_dump_json(), "status": status.value, "description": "",
                                    "created": repr(created)})
            for other in JobStatus:
                pipe.zrem(self._key("jobs", other.value), job.id)
            pipe.zadd(self._key("jobs"), {job.id: created})
            pipe.zadd(self._key("jobs", status.value), {job.id: created})
            pipe.execute()

    def set_job_status(self, job_id: str, status: JobStatus, description: str = "") -> None:
        key = self._key("job", job_id)

        def step(pipe: Pipeline) -> None:
            watch(pipe, key)
            old, created = (text(value) for value in pipe.hmget(key, ["status", "created"]))
            if old is None or created is None:
                return  # an unknown job: nothing to update, as an UPDATE matching no row
            fields: dict[FieldT, EncodableT] = {"status": status.value, "description": description}
            if status is JobStatus.RUNNING:
                fields["started_at"] = utcnow().isoformat()
            elif status.finished:
                fields["finished_at"] = utcnow().isoformat()
            pipe.multi()
            pipe.hset(key, mapping=fields)
            pipe.zrem(self._key("jobs", old), job_id)
            pipe.zadd(self._key("jobs", status.value), {job_id: float(created)})

        transact(self.redis, step)

    def get_job(self, job_id: str) -> JobRecord | None:
        values = [text(value) for value in self.redis.hmget(self._key("job", job_id), list(_JOB_FIELDS))]
        return _job_record(values)

    def jobs(self, *, statuses: tuple[JobStatus, ...] = (), limit: int = 100) -> list[JobRecord]:
        if limit <= 0:
            return []
        indexes = [self._key("jobs", status.value) for status in dict.fromkeys(statuses)] or [self._key("jobs")]
        rows = self._list_jobs(keys=indexes, args=[limit, self._key("job", "")])
        records = (_job_record([text(value) for value in row]) for row in rows)
        return [record for record in records if record is not None]

    # Pull requests and plans

    def save_pull(self, pull: PullRequest) -> None:
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self._key("pull", pull.key), pull.model_dump_json())
            pipe.hset(self._key("repos"), pull.repo.key, pull.repo.model_dump_json())
            pipe.execute()

    def get_pull(self, repo: str, number: int) -> PullRequest | None:
        body = text(self.redis.get(self._key("pull", pull_key(repo, number))))
        return PullRequest.model_validate_json(body) if body else None

    def save_plan(self, plan: PlanRecord) -> None:
        key = self._key("plans", pull_key(plan.repo, plan.pull_number))
        self.redis.hset(key, project_field(plan.project), plan.model_dump_json())

    def plans(self, repo: str, number: int) -> list[PlanRecord]:
        bodies = self.redis.hvals(self._key("plans", pull_key(repo, number)))
        return _by_project([PlanRecord.model_validate_json(body) for body in bodies], lambda plan: plan.project)

    def delete_plans(self, repo: str, number: int, project: Project | None = None) -> list[PlanRecord]:
        key = self._key("plans", pull_key(repo, number))

        def step(pipe: Pipeline) -> list[PlanRecord]:
            watch(pipe, key)
            if project is None:
                bodies = list(pipe.hvals(key))
            else:
                body = pipe.hget(key, project_field(project))
                bodies = [body] if body is not None else []
            pipe.multi()
            if project is None:
                pipe.delete(key)
            else:
                pipe.hdel(key, project_field(project))
            return [PlanRecord.model_validate_json(body) for body in bodies]

        return _by_project(transact(self.redis, step), lambda plan: plan.project)

    # What happened to each project, and the comments atlas posted

    def set_project_state(self, repo: str, number: int, state: ProjectState) -> None:
        key = self._key("project-states", pull_key(repo, number))
        self.redis.hset(key, project_field(state.project), state.model_dump_json())

    def project_states(self, repo: str, number: int) -> list[ProjectState]:
        bodies = self.redis.hvals(self._key("project-states", pull_key(repo, number)))
        return _by_project([ProjectState.model_validate_json(body) for body in bodies], lambda state: state.project)

    def forget_pull(self, repo: str, number: int) -> None:
        pull = pull_key(repo, number)
        self.redis.delete(self._key("project-states", pull), self._key("comment-records", pull),
                          self._key("policy-checks", pull), self._key("policy-approvals", pull))

    def add_comment_record(self, repo: str, number: int, kind: str, node_id: str) -> None:
        key = self._key("comment-records", pull_key(repo, number))
        self.redis.hset(key, json.dumps([kind, node_id]), kind)

    def take_comment_records(self, repo: str, number: int, kind: str) -> list[str]:
        key = self._key("comment-records", pull_key(repo, number))

        def step(pipe: Pipeline) -> list[str]:
            watch(pipe, key)
            fields = [field for field, field_kind in pipe.hgetall(key).items() if text(field_kind) == kind]
            if fields:
                pipe.multi()
                pipe.hdel(key, *fields)
            return sorted(json.loads(field)[1] for field in fields)

        return transact(self.redis, step)

    # Policy checks and approvals

    def save_policy_check(self, record: PolicyCheckRecord) -> None:
        pull = pull_key(record.repo, record.pull_number)
        approvals = self._key("policy-approvals", pull)
        project = [record.project.dir, record.project.workspace]

        def step(pipe: Pipeline) -> None:
            watch(pipe, approvals)
            stale = [f for f in pipe.hkeys(approvals) if json.loads(text(f) or "[]")[:2] == project]
            pipe.multi()
            pipe.hset(self._key("policy-checks", pull), json.dumps(project), record.model_dump_json())
            if stale:
                pipe.hdel(approvals, *stale)

        transact(self.redis, step)

    def policy_checks(self, repo: str, number: int) -> list[PolicyCheckRecord]:
        bodies = self.redis.hvals(self._key("policy-checks", pull_key(repo, number)))
        records = [PolicyCheckRecord.model_validate_json(body) for body in bodies]
        return sorted(records, key=lambda r: (r.project.dir, r.project.workspace))

    def add_policy_approval(self, record: PolicyApprovalRecord) -> None:
        field = json.dumps([record.project.dir, record.project.workspace, record.policy_set, record.user.casefold()])
        self.redis.hset(self._key("policy-approvals", pull_key(record.repo, record.pull_number)), field,
                        record.model_dump_json())

    def remove_policy_approvals(self, repo: str, number: int, project: Project, user: str) -> int:
        key = self._key("policy-approvals", pull_key(repo, number))
        wanted = [project.dir, project.workspace]
        mine = [f for f in self.redis.hkeys(key) if _approval_of(json.loads(text(f) or "[]"), wanted, user)]
        return int(self.redis.hdel(key, *mine)) if mine else 0

    def policy_approvals(self, repo: str, number: int) -> list[PolicyApprovalRecord]:
        bodies = self.redis.hvals(self._key("policy-approvals", pull_key(repo, number)))
        records = [PolicyApprovalRecord.model_validate_json(body) for body in bodies]
        return sorted(records, key=lambda r: (r.project.dir, r.project.workspace, r.policy_set, r.user))


    def claim_once(self, key: str) -> bool:
        return bool(self.redis.set(self._key("once", key), utcnow().isoformat(), nx=True))

    def append_job_output(self, job_id: str, text: str) -> None:
        key = self._key("job-output", job_id)
        with self.redis.pipeline() as pipe:
            pipe.append(key, text)
            pipe.expire(key, self.job_output_ttl_seconds)
            # Outlives the output, so that its page can say it was deleted rather than never written.
            pipe.set(self._key("job-output-kept", job_id), "1", ex=self.job_output_ttl_seconds * 4)
            pipe.execute()

    def job_output_expired(self, job_id: str) -> bool:
        kept, output = self.redis.exists(self._key("job-output-kept", job_id)), self.redis.exists(
            self._key("job-output", job_id))
        return bool(kept) and not output

    def job_output(self, job_id: str) -> str | None:
        value = self.redis.get(self._key("job-output", job_id))
        return str(value) if value is not None else None

    def save_job_result(self, job_id: str, result: str) -> None:
        # Beside the job's status, so that the result lives exactly as long as the job's record.
        self.redis.hset(self._key("job", job_id), "result", result)

    def job_result(self, job_id: str) -> str | None:
        return text(self.redis.hget(self._key("job", job_id), "result"))

    def expire_job_output(self, before: datetime) -> int:
        # Redis expires job output by itself (job_output_ttl_seconds); nothing is left to sweep.
        return 0

    # Repositories, scheduled slots, drift checks and the audit log

    def known_repos(self) -> list[Repo]:
        bodies = self.redis.hgetall(self._key("repos"))
        return [Repo.model_validate_json(bodies[name]) for name in sorted(bodies)]

    def claim_slot(self, key: str, ttl_seconds: float) -> bool:
        ttl = max(int(ttl_seconds * 1000), 1)
        return bool(self.redis.set(self._key("slot", key), utcnow().isoformat(), nx=True, px=ttl))

    def save_drift(self, record: DriftRecord) -> None:
        field = json.dumps([record.repo, record.project.dir, record.project.workspace])
        self.redis.hset(self._key("drift"), field, record.model_dump_json())

    def drift_records(self, repo: str | None = None) -> list[DriftRecord]:
        records = [DriftRecord.model_validate_json(body) for body in self.redis.hvals(self._key("drift"))]
        if repo is not None:
            records = [record for record in records if record.repo == repo]
        return sorted(records, key=lambda record: (record.repo, record.project.dir, record.project.workspace))

    def record_audit(self, entry: AuditEntry) -> None:
        self.redis.zadd(self._key("audit"), {entry.model_dump_json(): entry.at.timestamp()})

    def audit_entries(
        self, *, repo: str | None = None, action: str | None = None, before: datetime | None = None, limit: int = 100
    ) -> list[AuditEntry]:
        found: list[AuditEntry] = []
        upper = f"({before.timestamp()!r}" if before is not None else "+inf"
        offset = 0
        # Filtering happens here, so read newest first in pages until enough entries match.
        while len(found) < limit:
            page = self.redis.zrevrangebyscore(self._key("audit"), upper, "-inf", start=offset, num=AUDIT_PAGE)
            if not page:
                break
            offset += len(page)
            for body in page:
                entry = AuditEntry.model_validate_json(text(body) or "")
                if (repo is None or entry.repo == repo) and (action is None or entry.action == action):
                    found.append(entry)
        found.sort(key=lambda entry: (entry.at, entry.id), reverse=True)
        return found[: max(limit, 0)]


def _approval_of(field: list[str], project: list[str], user: str) -> bool:
    """Whether a policy approval's field ([dir, workspace, set, user]) is the user's for the project."""
    return field[:2] == project and field[3:] == [user.casefold()]




def _job_record(values: list[str | None]) -> JobRecord | None:
    body, status, description, started_at, finished_at = values
    if body is None or status is None:
        return None
    return JobRecord(
        job=Job.model_validate_json(body),
        status=JobStatus(status),
        description=description or "",
        started_at=datetime.fromisoformat(started_at) if started_at else None,
        finished_at=datetime.fromisoformat(finished_at) if finished_at else None,
    )


def _by_project(items: Iterable[T], project_of: Callable[[T], Project]) -> list[T]:
    """Sorted by dir, then workspace, as the SQLite store orders them."""
    return sorted(items, key=lambda item: (project_of(item).dir, project_of(item).workspace))
