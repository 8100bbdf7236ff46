"""Unlocking: `atlas unlock` on a pull request, and an operator's "discard plan and unlock" of one lock.

`atlas unlock` drops the pull request's locks, plans and places in waiting queues. The operator's
action (`atlas locks unlock` and the lock page's button) releases one lock: the lock passes to the
first pull request waiting for it (which atlas then plans), the holder's saved plan of that project
is deleted so that it cannot be applied without a new plan, the audit log keeps it, and the
holder's pull request is told in a comment.
"""

from __future__ import annotations

from dataclasses import dataclass

from atlas.commands.audit import audited
from atlas.commands.context import CommandContext
from atlas.commands.outcome import CommandOutcome
from atlas.models import Job, JobStatus, Project
from atlas.render.comments import render_error_comment
from atlas.runtime.cancellation import CancelToken
from atlas.runtime.lock_handoff import plan_for_new_holders
from atlas.stores import audit
from atlas.stores.audit import AuditAction
from atlas.stores.locks import ProjectLock
from atlas.vcs import VCSError


@audited(AuditAction.UNLOCK)
def run(job: Job, ctx: CommandContext, cancel: CancelToken) -> CommandOutcome:
    pull = job.pull
    label = ctx.settings.disable_unlock_label
    if label and label in pull.labels:
        ctx.vcs.post_comment(pull.repo, pull.number, render_error_comment(
            "atlas did not unlock this pull request",
            f"It carries the label `{label}`, and this server does not unlock pull requests with that label by "
            "comment (`--disable-unlock-label`). Remove the label and comment again, or ask an operator to "
            "discard the lock from atlas's lock pages.",
        ))
        return CommandOutcome(JobStatus.SUCCEEDED, f"refused: the pull request carries the label {label!r}")
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
    left = ctx.locks.leave_queues(pull.repo.key, pull.number)
    release = ctx.locks.release_pull(pull.repo.key, pull.number)
    plans = ctx.forget_plans(pull.repo.key, pull.number)
    plan_for_new_holders(ctx, release)
    return {lock.project for lock in release.released}, {plan.project for plan in plans}, left


def project_line(project: Project) -> str:
    return f"dir: `{project.dir}` workspace: `{project.workspace}`"


# --- an operator's "discard plan and unlock" -------------------------------------------------------


class LockChanged(Exception):
    """The lock is gone or changed hands since the operator looked at it; nothing was released."""


@dataclass
class Discarded:
    """What discarding did, for the page or the command line that reports it."""

    lock: ProjectLock
    plans_deleted: int
    handed_over: ProjectLock | None = None
    told: bool = False
    """Whether the pull request was told in a comment (not without a GitHub token, or when commenting failed)."""
    comment_error: str | None = None

    @property
    def heir(self) -> int | None:
        """The pull request the lock passed to."""
        return self.handed_over.pull_number if self.handed_over is not None else None


def holder_token(lock: ProjectLock) -> str:
    """Names one holding of a lock: a form posted for it must not release a later holder's lock."""
    return f"{lock.pull_number}@{lock.created_at.isoformat()}"


def discard_and_unlock(
    ctx: CommandContext, lock_id: str, *, operator: str | None, trigger: str, holder: str | None = None
) -> Discarded:
    """Release the lock (only if `holder` still holds it, when given), delete that project's plan, audit it and
    tell the pull request; LockChanged when there is no such lock (or it changed hands).

    The caller reports the result (the page in the server's log, the command line on its terminal).
    """
    lock = ctx.locks.get_by_id(lock_id)
    if lock is None or (holder is not None and holder_token(lock) != holder):
        raise LockChanged
    release = ctx.locks.release(lock_id)
    if not release.released:
        raise LockChanged
    lock = release.released[0]
    plans = ctx.forget_plans(lock.repo, lock.pull_number, lock.project)
    result = Discarded(lock=lock, plans_deleted=len(plans),
                       handed_over=release.handed_over[0] if release.handed_over else None)
    audit.record(ctx.state, audit.AuditEntry(
        action=AuditAction.UNLOCK, repo=lock.repo, user=operator or "operator", outcome="released",
        pull_number=lock.pull_number, project=lock.project, trigger=trigger,
        detail=f"discarded {len(plans)} plan(s) and released the lock"
               + (f"; handed over to #{result.heir}" if result.heir else ""),
    ))
    if ctx.can_write_to_github:
        try:
            ctx.vcs.post_comment(lock.vcs_repo(), lock.pull_number, unlock_comment(ctx, lock, result.heir, operator))
        except VCSError as error:
            result.comment_error = str(error)
        else:
            result.told = True
    plan_for_new_holders(ctx, release)
    return result


def unlock_comment(ctx: CommandContext, lock: ProjectLock, heir: int | None, operator: str | None) -> str:
    """What the pull request whose lock an operator removed reads."""
    who = f"an operator (`{operator}`)" if operator else "an operator"
    project = f"`{lock.project.dir}` (workspace `{lock.project.workspace}`)"
    text = (
        f"**Lock removed**: {who} released this pull request's lock on {project}, "
        "and discarded its plan of that project.\n\n"
    )
    if heir is not None:
        text += f"The lock passed to #{heir}, which was waiting for it. "
    else:
        text += "Other pull requests can now plan and apply this project. "
    return text + f"Comment `{ctx.settings.comment_prefix[0]} plan` to plan it here again."
