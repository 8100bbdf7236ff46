"""The command runners: one module per command, and `run_job`, which the queue calls.

A job moves queued → running → succeeded/failed here. Whatever goes wrong inside a command ends as
a readable PR comment and a failed job, never as a traceback on the pull request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from atlas.commands import cleanup, plan
from atlas.commands.outcome import CommandOutcome
from atlas.comments import render_error_comment
from atlas.context import CommandContext
from atlas.logs import job_context
from atlas.models import CommandName, Job, JobStatus
from atlas.vcs import VCSError
from atlas.workingcopy import WorkingCopyError

log = logging.getLogger(__name__)

CommandRunner = Callable[[Job, CommandContext], CommandOutcome]

RUNNERS: dict[CommandName, CommandRunner] = {
    CommandName.AUTOPLAN: plan.run,
    CommandName.PLAN: plan.run,
    CommandName.CLEANUP: cleanup.run,
}


def run_job(job: Job, ctx: CommandContext) -> None:
    """Run one job to its end and record how it went."""
    with job_context(repo=job.pull.repo.full_name, pr=job.pull.number, job_id=job.id):
        _run_job(job, ctx)


def _run_job(job: Job, ctx: CommandContext) -> None:
    ctx.state.set_job_status(job.id, JobStatus.RUNNING)
    log.info("job %s started: %s on %s", job.id, job.command, job.pull.key)
    try:
        outcome = RUNNERS[job.command](job, ctx)
    except (VCSError, WorkingCopyError) as error:
        _report_failure(job, ctx, str(error))
        return
    except Exception:
        log.exception("job %s failed unexpectedly", job.id)
        _report_failure(job, ctx, f"atlas hit an internal error while running `{job.command}`; "
                                  f"the server log has the details (job {job.id}).")
        return
    ctx.state.set_job_status(job.id, outcome.status, outcome.description)
    log.info("job %s %s: %s", job.id, outcome.status, outcome.description)


def _report_failure(job: Job, ctx: CommandContext, reason: str) -> None:
    ctx.state.set_job_status(job.id, JobStatus.FAILED, reason)
    log.warning("job %s failed: %s", job.id, reason)
    if job.command is CommandName.CLEANUP:
        return
    try:
        ctx.vcs.post_comment(job.pull.repo, job.pull.number,
                             render_error_comment(f"atlas could not run `{job.command}`", reason))
        plan.set_failed_status(job, ctx, reason)
    except VCSError as error:
        log.warning("job %s: could not report the failure on the pull request: %s", job.id, error)
