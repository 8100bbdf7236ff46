"""Jobs that stopped without finishing: a worker died, or the server restarted in the middle.

Either way the pull request is told, its status turns to failure, and the next command works:
the per-PR ordering lock frees itself, and project locks stay with the pull request.
"""

from __future__ import annotations

import logging

from atlas.commands.context import CommandContext
from atlas.models import CommandName, Job, JobStatus
from atlas.render.comments import render_error_comment
from atlas.vcs import CommitState, VCSError

log = logging.getLogger(__name__)

STATUS_CONTEXTS = {
    CommandName.AUTOPLAN: "atlas/plan",
    CommandName.PLAN: "atlas/plan",
    CommandName.APPLY: "atlas/apply",
}


def report_interrupted(ctx: CommandContext, job: Job, why: str) -> None:
    """Tell the pull request that a job was interrupted and can be retried."""
    ctx.state.set_job_status(job.id, JobStatus.INTERRUPTED, why)
    pull = job.pull
    retry = "atlas plan" if job.command is CommandName.AUTOPLAN else f"atlas {str(job.command).replace('_', ' ')}"
    try:
        ctx.vcs.post_comment(pull.repo, pull.number, render_error_comment(
            f"atlas's `{job.command}` run was interrupted",
            f"{why}. Nothing is wrong with the pull request: comment `{retry}` to run it again. "
            "Locks this pull request holds stay held."))
        context = STATUS_CONTEXTS.get(job.command)
        if context and pull.head_sha:
            ctx.vcs.set_status(pull.repo, pull.head_sha, CommitState.FAILURE, context,
                               f"interrupted: comment `{retry}` to retry")
    except VCSError as error:
        log.warning("could not report interrupted job %s on %s: %s", job.id, pull.key, error)


def recover_after_restart(ctx: CommandContext) -> list[Job]:
    """At start-up (embedded mode): report jobs that were running, and return those still queued."""
    for record in ctx.state.jobs(statuses=(JobStatus.RUNNING,), limit=10_000):
        log.warning("job %s was running when the server stopped; reporting it as interrupted", record.job.id)
        report_interrupted(ctx, record.job, "The atlas server restarted while this command was running")
    queued = [record.job for record in ctx.state.jobs(statuses=(JobStatus.QUEUED,), limit=10_000)]
    return sorted(queued, key=lambda job: job.created_at)
