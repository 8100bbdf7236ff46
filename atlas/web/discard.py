"""An operator's "discard plan and unlock" from the lock page: the lock goes, the plan goes, the PR is told.

Like `atlas unlock` on one project: the lock passes to the first pull request waiting for it (which
atlas then plans), the holder's saved plan of that project is deleted so it cannot be applied
without a new plan, and the holder's pull request gets a comment saying so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from atlas.commands.context import CommandContext
from atlas.commands.locking import plan_for_new_holders
from atlas.stores import audit
from atlas.stores.locks import ProjectLock
from atlas.vcs import VCSError

log = logging.getLogger(__name__)


class LockChanged(Exception):
    """The lock is gone or changed hands since the operator looked at it; nothing was released."""


@dataclass
class Discarded:
    """What discarding did, for the page that reports it."""

    lock: ProjectLock
    plans_deleted: int
    heir: int | None = None
    comment_error: str | None = None


def holder_token(lock: ProjectLock) -> str:
    """Names one holding of a lock: a form posted for it must not release a later holder's lock."""
    return f"{lock.pull_number}@{lock.created_at.isoformat()}"


def discard_and_unlock(ctx: CommandContext, lock_id: str, holder: str, operator: str | None) -> Discarded:
    """Release the lock `holder` still holds, delete that project's plan and tell the pull request."""
    lock = ctx.locks.get_by_id(lock_id)
    if lock is None or holder_token(lock) != holder:
        raise LockChanged
    release = ctx.locks.release(lock_id)
    if not release.released:
        raise LockChanged
    lock = release.released[0]
    plans = ctx.forget_plans(lock.repo, lock.pull_number, lock.project)
    heir = release.handed_over[0].pull_number if release.handed_over else None
    result = Discarded(lock=lock, plans_deleted=len(plans), heir=heir)
    audit.record(ctx, audit.AuditEntry(
        action=audit.AuditAction.UNLOCK, repo=lock.repo, user=operator or "operator", outcome="released",
        pull_number=lock.pull_number, project=lock.project, trigger="web",
        detail=f"discard plan and unlock from the lock page; {len(plans)} plan(s) discarded"
               + (f"; handed over to #{heir}" if heir else ""),
    ))
    try:
        ctx.vcs.post_comment(lock.vcs_repo(), lock.pull_number, unlock_comment(ctx, lock, heir, operator))
    except VCSError as error:
        result.comment_error = str(error)
        log.warning("released lock %s, but telling %s failed: %s", lock_id, lock.pull_key, error)
    plan_for_new_holders(ctx, release)
    log.info("%s released the lock of %s on %s from the web page", operator or "an operator", lock.pull_key,
             lock.project.label)
    return result


def unlock_comment(ctx: CommandContext, lock: ProjectLock, heir: int | None, operator: str | None) -> str:
    """What the pull request whose lock was removed reads."""
    who = f"an operator (`{operator}`)" if operator else "an operator"
    project = f"`{lock.project.dir}` (workspace `{lock.project.workspace}`)"
    text = (
        f"**Lock removed**: {who} released this pull request's lock on {project} from atlas's lock page, "
        "and discarded its plan of that project.\n\n"
    )
    if heir is not None:
        text += f"The lock passed to #{heir}, which was waiting for it. "
    else:
        text += "Other pull requests can now plan and apply this project. "
    return text + f"Comment `{ctx.settings.comment_prefix[0]} plan` to plan it here again."
