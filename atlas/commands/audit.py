"""Commands in the audit log: each run of a command runner is recorded, however it ends.

Commands are recorded by decorating their runner with `audited(action)`, which records every way
out of it (refusals and exceptions included) in one place.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Concatenate, ParamSpec, Protocol, TypeVar

from atlas.commands.context import CommandContext
from atlas.models import Job, JobStatus, Project
from atlas.stores.audit import AuditAction, AuditEntry, record

P = ParamSpec("P")


class _Outcome(Protocol):
    """How a command ended (`atlas.commands.outcome.CommandOutcome`; not imported, to keep this module a leaf)."""

    @property
    def status(self) -> JobStatus: ...

    @property
    def description(self) -> str: ...


Outcome = TypeVar("Outcome", bound=_Outcome)


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
        repo=pull.repo.key,
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
    [Callable[Concatenate[Job, CommandContext, P], Outcome]], Callable[Concatenate[Job, CommandContext, P], Outcome]
]:
    """Record every run of a command runner `run(job, ctx, …)` in the audit log, however it ends."""

    def decorate(
        run: Callable[Concatenate[Job, CommandContext, P], Outcome],
    ) -> Callable[Concatenate[Job, CommandContext, P], Outcome]:
        @functools.wraps(run)
        def recorded(job: Job, ctx: CommandContext, /, *args: P.args, **kwargs: P.kwargs) -> Outcome:
            try:
                outcome = run(job, ctx, *args, **kwargs)
            except Exception as error:
                detail = f"{type(error).__name__}: {error}"
                record(ctx.state, entry_for_job(action, job, JobStatus.FAILED.value, detail))
                raise
            record(ctx.state, entry_for_job(action, job, outcome.status.value, outcome.description))
            return outcome

        return recorded

    return decorate


def _targeted_project(job: Job) -> Project | None:
    """The project a comment named with `-d`/`-w` (None: every project of the pull request)."""
    args = job.args
    if args.dir is None:
        return None
    return Project(dir=args.dir, workspace=args.workspace or "default")
