"""`run_job`, which the queue calls: each command's runner, one module per command (`RUNNERS`).

What each command is (its spelling, arguments, whether it runs the pull request's code) is
declared in `atlas.vocabulary`; this is where each gets its runner.

A job moves queued → running → succeeded/failed/cancelled here. An API run (`Job.api`) goes to
`atlas.commands.api_run`, which answers its caller instead of the pull request. Before a command runs, a comment
command is acknowledged (the `--emoji-reaction`, eyes by default), its pull request refreshed from the API and its
author checked; a fork's pull request is refused unless the server allows forks. Whatever goes
wrong inside a command ends as a readable PR comment and a failed job, never as a traceback.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from atlas import metrics
from atlas.commands import api_run, apply, approve_policies, cancel, cleanup, plan, reply, state_ops, unlock
from atlas.commands.authorisation import refusal_for
from atlas.commands.context import CommandContext
from atlas.commands.outcome import CommandOutcome
from atlas.commands.reactions import acknowledge
from atlas.logs import job_context
from atlas.models import CommandName, Job, JobStatus
from atlas.render.comments import render_error_comment
from atlas.runtime.cancellation import CancelToken
from atlas.runtime.workingcopy import WorkingCopyError
from atlas.vcs import VCSError
from atlas.vocabulary import RUNS_PULL_REQUEST_CODE

log = logging.getLogger(__name__)

CommandRunner = Callable[[Job, CommandContext, CancelToken], CommandOutcome]

RUNNERS: dict[CommandName, CommandRunner] = {
    CommandName.AUTOPLAN: plan.run,
    CommandName.PLAN: plan.run,
    CommandName.APPLY: apply.run,
    CommandName.UNLOCK: unlock.run,
    CommandName.CANCEL: cancel.run,
    CommandName.IMPORT: state_ops.run,
    CommandName.STATE_RM: state_ops.run,
    CommandName.APPROVE_POLICIES: approve_policies.run,
    CommandName.HELP: reply.help_,
    CommandName.VERSION: reply.version,
    CommandName.REFUSE: reply.refuse,
    CommandName.CLEANUP: cleanup.run,
}

# A drift check is no pull request's command: `atlas.drift.jobs` runs it, and `atlas.bootstrap` routes it there.
assert set(RUNNERS) == set(CommandName) - {CommandName.DRIFT}, "every pull request command has its runner"


def run_job(job: Job, ctx: CommandContext) -> None:
    """Run one job to its end and record how it went."""
    with job_context(repo=job.pull.repo.full_name, pr=job.pull.number, job_id=job.id):
        record = ctx.state.get_job(job.id)
        if record is not None and record.status is JobStatus.CANCELLED:
            log.info("job %s was cancelled while queued; skipping it", job.id)
            return
        ctx.state.set_job_status(job.id, JobStatus.RUNNING)
        if job.installation_id is not None and ctx.remember_installation is not None:
            # The delivery named it: no process needs to look it up.
            ctx.remember_installation(job.pull.repo.full_name, job.installation_id)
        started = time.monotonic()
        token = ctx.running.start(job)
        try:
            _run_job(job, ctx, token)
        finally:
            ctx.running.finish(job)
            finished = ctx.state.get_job(job.id)
            metrics.record_job(job.command, finished.status if finished else JobStatus.FAILED,
                               time.monotonic() - started)
            job_log = ctx.settings.data_dir / "jobs" / f"{job.id}.log"
            if job_log.exists():
                # Kept in the state store, so the job's page outlives the log file and the pull request.
                ctx.state.append_job_output(job.id, ctx.job_log(job.id).read())


def _run_job(job: Job, ctx: CommandContext, token: CancelToken) -> None:
    log.info("job %s started: %s on %s", job.id, job.command, job.pull.key)
    try:
        acknowledge(job, ctx)
        if not job.pull.head_sha and job.command is not CommandName.REFUSE:
            job = job.model_copy(update={"pull": ctx.vcs.get_pull(job.pull.repo, job.pull.number)})
        if job.api is not None:
            # The caller is answered with the result: nothing is said on a pull request.
            outcome = api_run.run(job, ctx, token)
        else:
            outcome = _refusal(job, ctx) or RUNNERS[job.command](job, ctx, token)
    except (VCSError, WorkingCopyError) as error:
        _report_failure(job, ctx, str(error))
        return
    except Exception:
        log.exception("job %s failed unexpectedly", job.id)
        _report_failure(job, ctx, f"atlas hit an internal error while running `{job.command}`; "
                                  f"the server log has the details (job {job.id}).")
        return
    if token.cancelled and outcome.status is not JobStatus.CANCELLED:
        outcome = CommandOutcome(JobStatus.CANCELLED, f"cancelled: {outcome.description}")
    ctx.state.set_job_status(job.id, outcome.status, outcome.description)
    log.info("job %s %s: %s", job.id, outcome.status, outcome.description)


def _refusal(job: Job, ctx: CommandContext) -> CommandOutcome | None:
    """Refuse a command its author may not run, or a fork's code the server will not run."""
    waiting_for_merge_apply = job.pull.merged and bool(
        ctx.locks.for_pull(job.pull.repo.key, job.pull.number))
    if (job.comment_id is not None and not job.pull.is_open and job.command in RUNS_PULL_REQUEST_CODE
            and not (job.command is CommandName.APPLY and waiting_for_merge_apply)):
        ctx.vcs.post_comment(job.pull.repo, job.pull.number, render_error_comment(
            f"atlas does not run `{job.command}` on a closed pull request",
            "Its locks, plans and working copies were deleted when it was closed. Reopen it to plan again.",
        ))
        return CommandOutcome(JobStatus.SUCCEEDED, "refused: pull request is closed")
    if (job.comment_id is not None or job.from_check) and job.requested_by:
        refusal = refusal_for(job, ctx)
        if refusal:
            ctx.vcs.post_comment(job.pull.repo, job.pull.number, refusal)
            return CommandOutcome(JobStatus.SUCCEEDED, f"refused: {job.requested_by} may not run {job.command}")
    if job.pull.is_fork and not ctx.settings.allow_fork_prs and job.command in RUNS_PULL_REQUEST_CODE:
        # One comment per pull request: every push to a fork's pull request would repeat it.
        if ctx.state.claim_once(f"fork-refused:{job.pull.key}"):
            ctx.vcs.post_comment(job.pull.repo, job.pull.number, render_error_comment(
                "atlas does not run pull requests from forks",
                "Planning runs the pull request's code with this server's credentials, so this server "
                "only plans pull requests from branches of the repository itself. Push the branch to the "
                "repository, or ask an operator to set `--allow-fork-prs`.",
            ))
        return CommandOutcome(JobStatus.SUCCEEDED, "refused: pull request from a fork")
    return None


def _report_failure(job: Job, ctx: CommandContext, reason: str) -> None:
    ctx.state.set_job_status(job.id, JobStatus.FAILED, reason)
    log.warning("job %s failed: %s", job.id, reason)
    if job.command is CommandName.CLEANUP:
        return
    try:
        ctx.vcs.post_comment(job.pull.repo, job.pull.number,
                             render_error_comment(f"atlas could not run `{job.command}`", reason))
        if job.pull.head_sha and job.command in (CommandName.AUTOPLAN, CommandName.PLAN):
            plan.set_status(job, ctx, "failure", reason)
    except VCSError as error:
        log.warning("job %s: could not report the failure on the pull request: %s", job.id, error)
