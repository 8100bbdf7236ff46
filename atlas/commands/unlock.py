"""`atlas unlock`: drop this pull request's locks, plans and places in waiting queues."""

from __future__ import annotations

from atlas.commands.context import CommandContext
from atlas.commands.locking import plan_for_new_holders
from atlas.commands.outcome import CommandOutcome
from atlas.models import Job, JobStatus, Project
from atlas.runtime.terraform import CancelToken
from atlas.stores.audit import AuditAction, audited


@audited(AuditAction.UNLOCK)
def run(job: Job, ctx: CommandContext, cancel: CancelToken) -> CommandOutcome:
    pull = job.pull
    released, plans, left = release_pull(ctx, job)
    if not (released or plans or left):
        body = "This pull request holds no locks or plans, and waits for none; there was nothing to unlock."
    else:
        lines = ["Deleted the locks and plans of this pull request:", ""]
        lines += [f"- {project_line(p)}" for p in sorted(released | plans, key=lambda p: (p.dir, p.workspace))]
        if left:
            lines += ["", "It no longer waits for the locks of:", ""]
            lines += [f"- {project_line(p)}" for p in left]
        lines += ["", f"To plan again, comment `{ctx.settings.comment_prefix[0]} plan`."]
        body = "\n".join(lines)
    ctx.vcs.post_comment(pull.repo, pull.number, body)
    return CommandOutcome(JobStatus.SUCCEEDED, f"released {len(released)} lock(s), deleted {len(plans)} plan(s)")


def release_pull(ctx: CommandContext, job: Job) -> tuple[set[Project], set[Project], list[Project]]:
    """Release the pull request's locks (handing them to waiters), delete its plans, leave its queues."""
    pull = job.pull
    left = ctx.locks.leave_queues(pull.repo.full_name, pull.number)
    release = ctx.locks.release_pull(pull.repo.full_name, pull.number)
    plans = ctx.forget_plans(pull.repo.full_name, pull.number)
    plan_for_new_holders(ctx, release)
    return {lock.project for lock in release.released}, {plan.project for plan in plans}, left


def project_line(project: Project) -> str:
    return f"dir: `{project.dir}` workspace: `{project.workspace}`"
