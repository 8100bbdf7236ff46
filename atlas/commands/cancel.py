"""`atlas cancel`: drop this pull request's queued commands and interrupt the running one.

It runs beside the pull request's queue (see `Job.serial_key`), so it never waits behind the
command it cancels. Queued commands are marked cancelled in the state store, so whichever process
would have run them skips them; a running terraform gets SIGINT first, so it releases its state
lock, then the process group is killed if it does not stop.
"""

from __future__ import annotations

from atlas.commands.context import CommandContext
from atlas.commands.outcome import CommandOutcome
from atlas.models import Job, JobStatus
from atlas.runtime.cancellation import CancelToken


def run(job: Job, ctx: CommandContext, cancel: CancelToken) -> CommandOutcome:
    pull = job.pull
    dropped = [
        record.job for record in ctx.state.jobs(statuses=(JobStatus.QUEUED,), limit=1000)
        if record.job.pull.key == pull.key and record.job.id != job.id and record.job.created_at <= job.created_at
    ]
    for queued in dropped:
        ctx.state.set_job_status(queued.id, JobStatus.CANCELLED, f"cancelled by {job.requested_by}")
    interrupted = [j for j in ctx.running.cancel_pull(pull.key) if j.id != job.id]
    if ctx.cancel_elsewhere is not None:
        # With rq workers the running job may be in another process: its heartbeat sees the request.
        local = {j.id for j in interrupted}
        elsewhere = [r.job for r in ctx.state.jobs(statuses=(JobStatus.RUNNING,), limit=1000)
                     if r.job.pull.key == pull.key and r.job.id != job.id and r.job.id not in local]
        if elsewhere:
            ctx.cancel_elsewhere(pull.key)
            interrupted += elsewhere
    if not dropped and not interrupted:
        body = "Nothing to cancel: no atlas command is running or queued for this pull request."
    else:
        lines = ["Cancelled:"]
        lines += [f"- the running `{j.command}` (job `{j.id}`): terraform was interrupted" for j in interrupted]
        lines += [f"- the queued `{j.command}` (job `{j.id}`)" for j in dropped]
        lines += ["", "Locks this pull request holds stay held; comment "
                      f"`{ctx.settings.comment_prefix[0]} unlock` to release them."]
        body = "\n".join(lines)
    ctx.vcs.post_comment(pull.repo, pull.number, body)
    return CommandOutcome(JobStatus.SUCCEEDED, f"cancelled {len(interrupted)} running, {len(dropped)} queued")
