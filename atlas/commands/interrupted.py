"""Jobs that stopped without finishing: a worker died, or the server restarted in the middle.

Either way the pull request is told, its status turns to failure (and the check runs it left open
are completed as cancelled), and the next command works:
the per-PR ordering lock frees itself. Project locks the pull request held before the job stay
held; of those the job took itself, each one whose plan the pull request has (or which an apply
took, as the apply may have changed the infrastructure halfway) stays with the pull request, and
the others are released, passing to the next pull request waiting; the comment says which.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from atlas.commands import api_run
from atlas.commands.check_runs import cancel_interrupted
from atlas.commands.context import CommandContext
from atlas.models import CommandName, Job, JobStatus
from atlas.render.comments import render_error_comment
from atlas.runtime.lock_handoff import plan_for_new_holders
from atlas.stores.locks import ProjectLock
from atlas.vcs import CommitState, VCSError

log = logging.getLogger(__name__)

STATUS_CONTEXTS = {
    CommandName.AUTOPLAN: "atlas/plan",
    CommandName.PLAN: "atlas/plan",
    CommandName.APPLY: "atlas/apply",
}


def report_interrupted(ctx: CommandContext, job: Job, why: str) -> None:
    """Settle the locks the job took, and tell the pull request that it was interrupted and can be retried."""
    ctx.state.set_job_status(job.id, JobStatus.INTERRUPTED, why)
    if job.api is not None:
        # Its caller is told, through the answer it waits for or asks for; the pull request is not.
        settle_locks(ctx, job)
        api_run.record_interrupted(ctx, job, why)
        return
    pull = job.pull
    retry = "atlas plan" if job.command is CommandName.AUTOPLAN else f"atlas {str(job.command).replace('_', ' ')}"
    released, kept = settle_locks(ctx, job)
    try:
        ctx.vcs.post_comment(pull.repo, pull.number, render_error_comment(
            f"atlas's `{job.command}` run was interrupted",
            f"{why}. Nothing is wrong with the pull request: comment `{retry}` to run it again. "
            + _locks_text(released, kept)))
        context = STATUS_CONTEXTS.get(job.command)
        if context and pull.head_sha:
            ctx.vcs.set_status(pull.repo, pull.head_sha, CommitState.FAILURE, context,
                               f"interrupted: comment `{retry}` to retry")
    except VCSError as error:
        log.warning("could not report interrupted job %s on %s: %s", job.id, pull.key, error)
    cancel_interrupted(ctx, job, why)


def settle_locks(ctx: CommandContext, job: Job) -> tuple[list[ProjectLock], list[ProjectLock]]:
    """The locks only `job` held (it took them): (released, kept by the pull request)."""
    pull = job.pull
    taken = [lock for lock in ctx.locks.for_pull(pull.repo.key, pull.number) if lock.job_id == job.id]
    if not taken:
        return [], []
    planned = {plan.project for plan in ctx.state.plans(pull.repo.key, pull.number)}
    released: list[ProjectLock] = []
    kept: list[ProjectLock] = []
    for lock in taken:
        keep = job.command is CommandName.APPLY or lock.project in planned
        try:
            release = ctx.locks.settle_job_lock(lock.id, job.id, release=not keep)
        except Exception:
            log.exception("could not settle lock %s of interrupted job %s", lock.id, job.id)
            continue
        if keep:
            kept.append(lock)
        elif release.released:
            released.append(lock)
            plan_for_new_holders(ctx, release)
    return released, kept


def _locks_text(released: list[ProjectLock], kept: list[ProjectLock]) -> str:
    if not released and not kept:
        return "Locks this pull request holds stay held."
    lines = []
    for lock in released:
        lines.append(f"- Released the lock of `{lock.project.dir}` (workspace `{lock.project.workspace}`), "
                     "which this run had taken and has no plan of.")
    for lock in kept:
        lines.append(f"- Kept the lock of `{lock.project.dir}` (workspace `{lock.project.workspace}`) for this "
                     "pull request, which has a plan of it (or an apply of it was cut short).")
    return "Of the locks this run took:\n\n" + "\n".join(lines) + "\n\nOther locks this pull request holds stay held."


InterruptedReport = Callable[[CommandContext, Job, str], None]
"""Reports one job that stopped without finishing, with why (`report_interrupted`, for commands)."""


def recover_after_restart(ctx: CommandContext, report: InterruptedReport = report_interrupted) -> list[Job]:
    """At start-up (embedded mode): report jobs that were running with `report`, and return those still queued."""
    for record in ctx.state.jobs(statuses=(JobStatus.RUNNING,), limit=10_000):
        log.warning("job %s was running when the server stopped; reporting it as interrupted", record.job.id)
        report(ctx, record.job, "The atlas server restarted while this command was running")
    queued = [record.job for record in ctx.state.jobs(statuses=(JobStatus.QUEUED,), limit=10_000)]
    return sorted(queued, key=lambda job: job.created_at)
