"""`--pending-apply-status`: `atlas/apply` stays pending while a pull request has planned changes not yet applied.

Without it, `atlas/apply` appears only once someone applies. With it, every plan (comment or
autoplan) sets it: pending and naming how many projects wait, or successful when no planned change
waits; an apply that leaves other projects' changes unapplied keeps it pending. Branch protection
that requires `atlas/apply` then holds the merge until the changes are applied.
"""

from __future__ import annotations

from atlas.commands.context import CommandContext
from atlas.models import Job, Project
from atlas.stores.pulls import ProjectPhase
from atlas.vcs import CommitState

STATUS_CONTEXT = "atlas/apply"


def unapplied(ctx: CommandContext, job: Job) -> list[Project]:
    """Projects whose latest plan at the pull request's head has changes that are not applied."""
    pull = job.pull
    planned = {s.project for s in ctx.state.project_states(pull.repo.key, pull.number)
               if s.head_sha == pull.head_sha and s.phase is ProjectPhase.PLANNED}
    return sorted((plan.project for plan in ctx.state.plans(pull.repo.key, pull.number)
                   if plan.project in planned and plan.head_sha == pull.head_sha and plan.summary.has_changes),
                  key=lambda project: (project.dir, project.workspace))


def after_plan(job: Job, ctx: CommandContext) -> None:
    """Set `atlas/apply` from what the plans left to apply (when the server asks for it)."""
    if not ctx.settings.pending_apply_status:
        return
    waiting = unapplied(ctx, job)
    if waiting:
        set_status(job, ctx, CommitState.PENDING, f"{len(waiting)} project(s) with planned changes to apply")
    else:
        set_status(job, ctx, CommitState.SUCCESS, "no planned changes to apply")


def after_apply(job: Job, ctx: CommandContext, state: CommitState, description: str) -> tuple[CommitState, str]:
    """The apply's own status, kept pending while other projects' planned changes wait (when asked for)."""
    if not ctx.settings.pending_apply_status or state is not CommitState.SUCCESS:
        return state, description
    waiting = unapplied(ctx, job)
    if waiting:
        return CommitState.PENDING, f"{description}; {len(waiting)} project(s) with planned changes still to apply"
    return state, description


def set_status(job: Job, ctx: CommandContext, state: CommitState, description: str) -> None:
    """`atlas/apply` on the pull request's head."""
    ctx.vcs.set_status(job.pull.repo, job.pull.head_sha, state, STATUS_CONTEXT, description,
                       target_url=ctx.job_url(job.id), number=job.pull.number)
