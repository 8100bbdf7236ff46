"""Remediation: applying a drift check's plan to bring the infrastructure back to git, under the project's lock.

Only where a project's `drift:` says `remediate: true`, only when no pull request holds the
project's lock, only when the plan destroys nothing (unless `remediate_destroy: true`), and, with
policy checks on for the repository, only when the plan passes every policy set: a remediation has
no pull request in which owners could approve a failure, so a failing (or unloadable) set refuses it.
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
from atlas.policy.results import PolicyOutcome, PolicySetResult
from atlas.runtime.cancellation import CancelToken
from atlas.runtime.joblog import JobLog
from atlas.runtime.lock_handoff import plan_for_new_holders
from atlas.runtime.plan_policies import evaluate_plan
from atlas.runtime.steps import StepContext, run_stage
from atlas.stores import audit
from atlas.stores.audit import AuditAction, AuditEntry
from atlas.stores.locks import lock_id_for

log = logging.getLogger(__name__)


def remediate(ctx: CommandContext, target: DriftTarget, workdir: Path, planfile: Path, joblog: JobLog,
              record: DriftRecord, *, user: str, trigger: str, job_id: str = "",
              cancel: CancelToken | None = None) -> DriftRecord:
    """Apply the check's plan, if nothing forbids it, holding the project's lock meanwhile.

    The lock carries `job_id`, the queued drift check's, so that the lock is released if its worker dies;
    `cancel` stops the apply when the worker lost the job.
    """
    project, repo = target.project, target.repo
    remediation = _refusal(ctx, target, record)
    if remediation is None:
        remediation = _policy_refusal(ctx, target, workdir, planfile, joblog, user=user, trigger=trigger)
    if remediation is None:
        attempt = ctx.locks.acquire(target.pull, [project], DRIFT_USER, job_id=job_id)
        if attempt.conflicts:
            remediation = waiting(attempt.conflicts[0].pull_number)
        else:
            try:
                runner = ctx.runner_for(target.settings, workdir / project.dir)
                context = StepContext.for_pull(target.pull, project, user_name=DRIFT_USER)
                result = run_stage(target.settings.workflow.apply, command=CommandName.APPLY, runner=runner,
                                   workdir=workdir, project=project, planfile=planfile, log=joblog, context=context,
                                   cancel=cancel)
            finally:
                release = ctx.locks.release(lock_id_for(repo.key, project))
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
    holder = ctx.locks.get(target.repo.key, target.project)
    if holder is not None:
        return waiting(holder.pull_number)
    return None


def _policy_refusal(ctx: CommandContext, target: DriftTarget, workdir: Path, planfile: Path, joblog: JobLog,
                    *, user: str, trigger: str) -> Remediation | None:
    """With policy checks on for the project, a refusal when a policy set fails (or cannot be evaluated) on the plan."""
    policies = ctx.server_config.policies
    if not ctx.settings.enable_policy_checks or policies is None or not target.settings.policy_check:
        return None
    runner = ctx.runner_for(target.settings, workdir / target.project.dir)
    results = evaluate_plan(policies, target.settings, runner, workdir, planfile, joblog, ctx.policy_cache)
    failing = [result for result in results if not result.passed]
    audit.record(ctx.state, AuditEntry(
        action=AuditAction.POLICY_CHECK, repo=target.repo.key, user=user, trigger=trigger,
        outcome="failed" if failing else "passed", sha=target.sha, project=target.project,
        detail="; ".join(f"{r.policy_set}: {r.outcome.value}" for r in results),
        output="\n".join(f"{r.policy_set}: {line}" for r in failing for line in _problems(r))))
    if not failing:
        return None
    reasons = "; ".join(f"`{r.policy_set}` ({_why(r)})" for r in failing)
    return Remediation(status=RemediationStatus.REFUSED, detail=(
        f"the plan fails its policy check: {reasons}. A remediation has no pull request in which owners could "
        "approve the failure, so atlas applies it only when every policy set passes; bring the project back "
        "through a pull request instead"))


def _problems(result: PolicySetResult) -> list[str]:
    return [m.message for m in result.failures] + [str(p) for p in result.errors]


def _why(result: PolicySetResult) -> str:
    kind = "could not be evaluated" if result.outcome is PolicyOutcome.ERROR else "failed"
    problems = _problems(result)
    shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
    return f"{kind}: {shown}" if shown else kind


def waiting(pull_number: int) -> Remediation:
    if pull_number == DRIFT_PULL_NUMBER:
        return Remediation(status=RemediationStatus.WAITING, detail="another remediation of this project is running")
    return Remediation(status=RemediationStatus.WAITING, detail=(
        f"the project is locked by pull request #{pull_number}: remediation waits until that pull request is "
        "merged or closed (or unlocked), so that it does not apply underneath a change in review"))
