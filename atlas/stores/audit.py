"""The audit log: who planned, applied, unlocked, checked for drift or remediated what, when, at which commit.

Every entry is kept in the state store (`StateStore.record_audit`), so the log is shared by every
atlas process and outlives pull requests; `/audit` and `GET /api/audit` read it back. Recording
never fails the action it records: a store that cannot be written is logged instead.

Commands are recorded by decorating their runner with `audited(action)`, which records every way
out of it (refusals and exceptions included) in one place.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Concatenate, ParamSpec, Protocol, TypeVar

from pydantic import BaseModel, Field

from atlas.models import Job, JobStatus, Project, new_id, utcnow

log = logging.getLogger(__name__)

P = ParamSpec("P")

MAX_TEXT = 60_000
"""Characters of a plan or an output kept in one entry; the rest is cut, saying so."""


class AuditAction(StrEnum):
    PLAN = "plan"
    APPLY = "apply"
    UNLOCK = "unlock"
    DRIFT_CHECK = "drift_check"
    REMEDIATION = "remediation"
    POLICY_CHECK = "policy_check"
    POLICY_APPROVAL = "policy_approval"
    POLICY_APPROVAL_WITHDRAWN = "policy_approval_withdrawn"


class AuditEntry(BaseModel):
    """One thing atlas did to a repository's infrastructure or its locks, and how it ended."""

    id: str = Field(default_factory=new_id)
    at: datetime = Field(default_factory=utcnow)
    action: AuditAction
    repo: str
    user: str
    """Who asked: the commenter, the pull request's author (autoplan), who merged, or `atlas` for a schedule."""
    outcome: str
    """A command's job status; a drift check's `DriftStatus`; a remediation's `RemediationStatus`."""
    sha: str = ""
    pull_number: int | None = None
    project: Project | None = None
    trigger: str = ""
    """What started it: autoplan, comment, merge, schedule, cli."""
    detail: str = ""
    job_id: str | None = None
    plan: str = ""
    output: str = ""


class _Outcome(Protocol):
    """How a command ended (`atlas.commands.outcome.CommandOutcome`; not imported, to keep this module a leaf)."""

    @property
    def status(self) -> JobStatus: ...

    @property
    def description(self) -> str: ...


Outcome = TypeVar("Outcome", bound=_Outcome)


class AuditWriter(Protocol):
    """Where entries are kept: every state store has it."""

    def record_audit(self, entry: AuditEntry) -> None: ...


class HasAuditLog(Protocol):
    """What recording needs of a command's context (its state store), and nothing more."""

    @property
    def state(self) -> AuditWriter: ...


Context = TypeVar("Context", bound=HasAuditLog)


def record(ctx: HasAuditLog, entry: AuditEntry) -> None:
    """Keep `entry` in the audit log; a failure to write it is logged, never raised."""
    try:
        ctx.state.record_audit(entry.model_copy(update={"plan": clip(entry.plan), "output": clip(entry.output)}))
    except Exception:
        log.exception("could not record %s of %s in the audit log", entry.action, entry.repo)


def clip(text: str, limit: int = MAX_TEXT) -> str:
    """`text`, cut to about `limit` characters with a note saying how much was left out."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n… ({len(text) - limit} more characters not kept)\n"


def entry_for_job(action: AuditAction, job: Job, outcome: str, detail: str) -> AuditEntry:
    """The entry of one command job: its pull request, the commit it ran at and who asked."""
    pull = job.pull
    after_merge = pull.merged and bool(pull.merge_commit_sha)
    if job.comment_id is not None:
        trigger = "comment"
    elif after_merge:
        trigger = "merge"
    else:
        trigger = str(job.command)
    return AuditEntry(
        action=action,
        repo=pull.repo.full_name,
        user=job.requested_by or (pull.merged_by if after_merge else "") or pull.author or "unknown",
        outcome=outcome,
        sha=pull.merge_commit_sha if after_merge else pull.head_sha,
        pull_number=pull.number,
        project=_targeted_project(job),
        trigger=trigger,
        detail=detail,
        job_id=job.id,
    )


def audited(
    action: AuditAction,
) -> Callable[
    [Callable[Concatenate[Job, Context, P], Outcome]], Callable[Concatenate[Job, Context, P], Outcome]
]:
    """Record every run of a command runner `run(job, ctx, …)` in the audit log, however it ends."""

    def decorate(
        run: Callable[Concatenate[Job, Context, P], Outcome],
    ) -> Callable[Concatenate[Job, Context, P], Outcome]:
        @functools.wraps(run)
        def recorded(job: Job, ctx: Context, /, *args: P.args, **kwargs: P.kwargs) -> Outcome:
            try:
                outcome = run(job, ctx, *args, **kwargs)
            except Exception as error:
                record(ctx, entry_for_job(action, job, JobStatus.FAILED.value, f"{type(error).__name__}: {error}"))
                raise
            record(ctx, entry_for_job(action, job, outcome.status.value, outcome.description))
            return outcome

        return recorded

    return decorate


def _targeted_project(job: Job) -> Project | None:
    """The project a comment named with `-d`/`-w` (None: every project of the pull request)."""
    args = job.args
    if args.dir is None:
        return None
    return Project(dir=args.dir, workspace=args.workspace or "default")
