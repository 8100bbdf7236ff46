"""Remediation: applying a drift check's plan to bring the infrastructure back to git, under the project's lock.

Only where a project's `drift:` says `remediate: true`, only when no pull request holds the
project's lock, and only when the plan destroys nothing (unless `remediate_destroy: true`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from atlas.commands.context import CommandContext
from atlas.drift.notifications import notify_remediation
from atlas.drift.report import record_remediation
from atlas.drift.targets import DRIFT_USER, DriftTarget
from atlas.drift.workdirs import DRIFT_PULL_NUMBER
from atlas.models import CommandName, DriftRecord, DriftStatus, Remediation, RemediationStatus
from atlas.runtime.joblog import JobLog
from atlas.runtime.lock_handoff import plan_for_new_holders
from atlas.runtime.steps import StepContext, run_stage
from atlas.stores.locks import lock_id_for

log = logging.getLogger(__name__)


def remediate(ctx: CommandContext, target: DriftTarget, workdir: Path, planfile: Path, joblog: JobLog,
              record: DriftRecord, *, user: str, trigger: str) -> DriftRecord:
    """Apply the check's plan, if nothing forbids it, holding the project's lock meanwhile."""
    project, repo = target.project, target.repo
    remediation = _refusal(ctx, target, record)
    if remediation is None:
        attempt = ctx.locks.acquire(target.pull, [project], DRIFT_USER)
        if attempt.conflicts:
            remediation = waiting(attempt.conflicts[0].pull_number)
        else:
            try:
                runner = ctx.runner_for(target.settings, workdir / project.dir)
                context = StepContext.for_pull(target.pull, project, user_name=DRIFT_USER)
                result = run_stage(target.settings.workflow.apply, command=CommandName.APPLY, runner=runner,
                                   workdir=workdir, project=project, planfile=planfile, log=joblog, context=context)
            finally:
                release = ctx.locks.release(lock_id_for(repo.full_name, project))
                plan_for_new_holders(ctx, release)
            if result.ok:
                remediation = Remediation(status=RemediationStatus.APPLIED, output=result.output,
                                          detail=f"applied the plan of {repo.default_branch} at {target.sha[:7]}")
            else:
                remediation = Remediation(status=RemediationStatus.FAILED, output=result.output,
                                          detail=(result.error or "terraform apply failed").strip())
    record_remediation(ctx, target, record, remediation, user=user, trigger=trigger)
    notify_remediation(ctx, target, remediation)
    update: dict[str, Any] = {"remediation": remediation}
    if remediation.status is RemediationStatus.APPLIED:
        update["status"] = DriftStatus.REMEDIATED
    log.info("remediation of %s %s: %s (%s)", repo.full_name, project.label, remediation.status, remediation.detail)
    return record.model_copy(update=update)


def _refusal(ctx: CommandContext, target: DriftTarget, record: DriftRecord) -> Remediation | None:
    """Why the plan may not be applied now (it destroys, or a pull request holds the lock), or None."""
    destroys = record.summary.destroy if record.summary is not None else 0
    if destroys and not target.settings.drift.remediate_destroy:
        return Remediation(status=RemediationStatus.REFUSED, detail=(
            f"the plan destroys {destroys} resource{'s' if destroys != 1 else ''}; atlas applies a plan that "
            "destroys only with `remediate_destroy: true`"))
    holder = ctx.locks.get(target.repo.full_name, target.project)
    if holder is not None:
        return waiting(holder.pull_number)
    return None


def waiting(pull_number: int) -> Remediation:
    if pull_number == DRIFT_PULL_NUMBER:
        return Remediation(status=RemediationStatus.WAITING, detail="another remediation of this project is running")
    return Remediation(status=RemediationStatus.WAITING, detail=(
        f"the project is locked by pull request #{pull_number}: remediation waits until that pull request is "
        "merged or closed (or unlocked), so that it does not apply underneath a change in review"))
