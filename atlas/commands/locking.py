"""What commands share about locks: naming a lock's holder, and planning for the next in line."""

from __future__ import annotations

import logging

from atlas.commands.context import CommandContext
from atlas.models import CommandArgs, CommandName, Job, PullRequest
from atlas.stores.locks import ProjectLock, Release

log = logging.getLogger(__name__)


def lock_holder_text(lock: ProjectLock) -> str:
    """`pull request #12` as a link, for comments that say who holds a lock."""
    link = f"[#{lock.pull_number}]({lock.pull_url})" if lock.pull_url else f"#{lock.pull_number}"
    return f"pull request {link}"


def plan_for_new_holders(ctx: CommandContext, release: Release) -> None:
    """Queue a plan for each pull request a released lock passed to (it was waiting for it)."""
    for lock in release.handed_over:
        submit_handoff_plan(ctx, lock)


def submit_handoff_plan(ctx: CommandContext, lock: ProjectLock) -> None:
    """Queue the plan of a handed-over lock once, whichever process notices the handoff first."""
    if ctx.submit is None:
        return
    if ctx.state.claim_once(f"handoff:{lock.id}:{lock.pull_number}:{lock.created_at.isoformat()}"):
        known = ctx.state.get_pull(lock.repo, lock.pull_number)
        repo = known.repo if known else lock.vcs_repo()
        # An empty head sha makes the job read the pull request's current head from the API.
        pull = PullRequest(repo=repo, number=lock.pull_number, head_sha="", head_ref="", base_ref="", author="")
        args = CommandArgs(dir=lock.project.dir, workspace=lock.project.workspace, after_lock_release=True)
        ctx.submit(Job(command=CommandName.PLAN, pull=pull, args=args, requested_by=lock.user))
        log.info("queued the plan of %s for %s, which was waiting for its lock", lock.project.label, lock.pull_key)
    ctx.locks.mark_handoff_planned(lock.id)
