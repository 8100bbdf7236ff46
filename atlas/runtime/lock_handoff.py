"""When a released lock passes to a pull request that waited for it: that pull request's plan is queued, once.

Commands (unlock, apply after merge, cleanup), drift remediation and the operator's "discard plan
and unlock" all release locks; each hands what it released to `plan_for_new_holders`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from atlas.models import CommandArgs, CommandName, Job, PullRequest
from atlas.stores.locks import LockStore, ProjectLock, Release

log = logging.getLogger(__name__)


class HandoffRecords(Protocol):
    """What the state store keeps for handoffs: a claim per handoff, and the pull requests atlas has seen."""

    def claim_once(self, key: str) -> bool: ...

    def get_pull(self, repo: str, number: int) -> PullRequest | None: ...


class HandoffContext(Protocol):
    """What queuing a handoff's plan needs; a command's context is one."""

    @property
    def locks(self) -> LockStore: ...

    @property
    def state(self) -> HandoffRecords: ...

    @property
    def submit(self) -> Callable[[Job], None] | None: ...


def plan_for_new_holders(ctx: HandoffContext, release: Release) -> None:
    """Queue a plan for each pull request a released lock passed to (it was waiting for it)."""
    for lock in release.handed_over:
        submit_handoff_plan(ctx, lock)


def submit_handoff_plan(ctx: HandoffContext, lock: ProjectLock) -> None:
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
