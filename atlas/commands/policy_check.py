"""Policy checks: each project's saved plan judged by the server's Rego policy sets, and the gate on applies.

After every plan of a project whose repository has policy checks on (`--enable-policy-checks`, and
repos.yaml `policy_check` not false), `check_project` hands `terraform show -json` of the saved plan
to every policy set of repos.yaml's `policies:` (the namespaces a `policy_check` step's `extra_args`
select), keeps the results in the state store, where every worker reads them, and records failures
in the audit log. A new check of a project clears the approvals of the one before.

`blocked` says which projects cannot be applied: a failing (or unloadable) set without
`approve_count` owners' approvals, or no check of the plan being applied.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import TypeAdapter

from atlas.commands.context import CommandContext
from atlas.config.repo_settings import RepoSettings
from atlas.config.server import POLICIES_PASSED
from atlas.models import Job, Project, PullRequest
from atlas.policy.approvals import PolicyApproval, PolicyStanding, refusal, standing
from atlas.policy.results import PolicySetResult
from atlas.policy.sets import PolicySets
from atlas.render.comments import split_comment
from atlas.render.policy_check import render_policy_check_comment
from atlas.runtime.joblog import JobLog
from atlas.runtime.plan_policies import evaluate_plan
from atlas.stores.audit import AuditAction, AuditEntry, record
from atlas.stores.policy import PolicyCheckRecord
from atlas.vcs import CommitState

STATUS_CONTEXT = "atlas/policy_check"

_RESULTS = TypeAdapter(list[PolicySetResult])


def policies_of(ctx: CommandContext) -> PolicySets | None:
    """The server's policy sets when policy checks are on, else None."""
    if not ctx.settings.enable_policy_checks:
        return None
    return ctx.server_config.policies


def enabled_for(ctx: CommandContext, repo: RepoSettings, project: Project) -> bool:
    """Whether the project's plans are policy checked (and its applies gated by the checks)."""
    return policies_of(ctx) is not None and repo.project(project).policy_check


def unjudged(ctx: CommandContext, repo: RepoSettings, project: Project) -> str | None:
    """A refusal when the project requires `policies_passed` but no policy check runs for it, else None:
    a requirement that nothing can judge is never taken as met."""
    settings = repo.project(project)
    if POLICIES_PASSED not in settings.apply_requirements or enabled_for(ctx, repo, project):
        return None
    why = ("this server runs without `--enable-policy-checks`" if policies_of(ctx) is None
           else "repos.yaml turns policy checks off for this repository (`policy_check: false`)")
    return (f"**policies_passed**: {project.label} requires its policies to pass before apply, but {why}, so no "
            "policy check judges its plan and the requirement cannot hold. The operator turns policy checks on, "
            "or removes `policies_passed` from the project's `apply_requirements`.")


def check_project(ctx: CommandContext, job: Job, repo: RepoSettings, project: Project, workdir: Path,
                  planfile: Path, joblog: JobLog) -> PolicyStanding:
    """Judge the project's saved plan, keep the results (clearing approvals) and weigh them."""
    policies = policies_of(ctx)
    assert policies is not None, "check_project runs only with policy checks on"
    pull = job.pull
    results = _evaluate(ctx, policies, repo, project, workdir, planfile, joblog)
    for result in results:
        joblog.write(f"atlas: policy set {result.policy_set}: {result.outcome.value}"
                     f" ({len(result.failures)} failures, {len(result.warnings)} warnings)")
        for problem in result.errors:
            joblog.write(f"atlas: policy set {result.policy_set}: {problem}")
    ctx.state.save_policy_check(PolicyCheckRecord(
        repo=pull.repo.key, pull_number=pull.number, project=project, head_sha=pull.head_sha,
        results=_RESULTS.dump_json(results).decode()))
    failing = [r for r in results if not r.passed]
    record(ctx.state, AuditEntry(
        action=AuditAction.POLICY_CHECK, repo=pull.repo.key, user=job.requested_by or pull.author,
        outcome="failed" if failing else "passed", sha=pull.head_sha, pull_number=pull.number, project=project,
        trigger=job.command.value, job_id=job.id,
        detail="; ".join(f"{r.policy_set}: {r.outcome.value}" for r in results),
        output="\n".join(f"{r.policy_set}: {m.message}" for r in failing for m in r.failures)
        + "".join(f"\n{r.policy_set}: {p}" for r in failing for p in r.errors)))
    return standing(results, (), policies, head_sha=pull.head_sha, pull_author=pull.author)


def gate_merge_plan(ctx: CommandContext, job: Job, repo: RepoSettings, project: Project, workdir: Path,
                    planfile: Path, joblog: JobLog) -> str | None:
    """Judge the plan of the merge commit before it is applied: a refusal when its policies fail and the
    owners did not approve those sets at the pull request's head; None when it may be applied."""
    policies = policies_of(ctx)
    if policies is None or not enabled_for(ctx, repo, project):
        unmet = unjudged(ctx, repo, project)
        return None if unmet is None else f"This server requires, before apply:\n\n- {unmet}"
    pull = job.pull
    results = _evaluate(ctx, policies, repo, project, workdir, planfile, joblog)
    approvals = [PolicyApproval(policy_set=a.policy_set, user=a.user, head_sha=a.head_sha)
                 for a in ctx.state.policy_approvals(pull.repo.key, pull.number) if a.project == project]
    verdict = standing(results, approvals, policies, head_sha=pull.head_sha, pull_author=pull.author)
    if verdict.allows_apply:
        return None
    record(ctx.state, AuditEntry(
        action=AuditAction.POLICY_CHECK, repo=pull.repo.key, user=pull.merged_by or pull.author,
        outcome="failed", sha=pull.merge_commit_sha, pull_number=pull.number, project=project, trigger="merge",
        job_id=job.id, detail="; ".join(f"{s.result.policy_set}: {s.result.outcome.value}" for s in verdict.blocking)))
    return refusal(project.label, verdict.blocking, command_prefix=ctx.settings.comment_prefix[0])


def _evaluate(ctx: CommandContext, policies: PolicySets, repo: RepoSettings, project: Project, workdir: Path,
              planfile: Path, joblog: JobLog) -> list[PolicySetResult]:
    settings = repo.project(project)
    runner = ctx.terraform_for(settings.terraform_version)
    return evaluate_plan(policies, settings, runner, workdir, planfile, joblog, ctx.policy_cache)


@dataclass(frozen=True)
class ProjectPolicy:
    """A project's latest policy check at the pull request's head, weighed against its approvals."""

    project: Project
    standing: PolicyStanding | None
    """None when there is no check of the plan at the head (plan again)."""


def current_standings(ctx: CommandContext, pull: PullRequest, projects: Iterable[Project]) -> list[ProjectPolicy]:
    """Each project's standing from the state store (shared by every worker)."""
    policies = policies_of(ctx)
    assert policies is not None
    checks = {c.project: c for c in ctx.state.policy_checks(pull.repo.key, pull.number)}
    by_project: dict[Project, list[PolicyApproval]] = {}
    for approval in ctx.state.policy_approvals(pull.repo.key, pull.number):
        by_project.setdefault(approval.project, []).append(PolicyApproval(
            policy_set=approval.policy_set, user=approval.user, head_sha=approval.head_sha))
    standings = []
    for project in projects:
        check = checks.get(project)
        if check is None or check.head_sha != pull.head_sha:
            standings.append(ProjectPolicy(project, None))
            continue
        results = _RESULTS.validate_json(check.results)
        standings.append(ProjectPolicy(project, standing(
            results, by_project.get(project, []), policies, head_sha=pull.head_sha, pull_author=pull.author)))
    return standings


def refusal_of(ctx: CommandContext, project: Project, project_standing: PolicyStanding) -> str:
    """Why the project's policies do not let it be applied (for a standing that does not allow it)."""
    return refusal(project.label, project_standing.blocking, command_prefix=ctx.settings.comment_prefix[0])


def blocked(ctx: CommandContext, repo: RepoSettings, pull: PullRequest, projects: Sequence[Project]) -> list[str]:
    """A refusal for each project whose policies do not let it be applied; empty when all may be."""
    prefix = ctx.settings.comment_prefix[0]
    gated = [p for p in projects if enabled_for(ctx, repo, p)]
    if not gated:
        return []
    refusals = []
    for entry in current_standings(ctx, pull, gated):
        if entry.standing is None:
            refusals.append(f"{entry.project.label} has no policy check of its plan at {pull.head_sha[:7]}: "
                            f"comment `{prefix} plan` to plan and check it again.")
        elif not entry.standing.allows_apply:
            refusals.append(refusal(entry.project.label, entry.standing.blocking, command_prefix=prefix))
    return refusals


def report(ctx: CommandContext, job: Job, checks: Sequence[tuple[Project, PolicyStanding]]) -> None:
    """The policy check comment (only on failures with --quiet-policy-checks) and the statuses:
    `atlas/policy_check: PROJECT` per project and `atlas/policy_check` over the pull request's head."""
    if not checks:
        return
    pull = job.pull
    failing = [project for project, s in checks if not s.allows_apply]
    if failing or not ctx.settings.quiet_policy_checks:
        body = render_policy_check_comment(checks, command_prefix=ctx.settings.comment_prefix[0],
                                           head_sha=pull.head_sha, job_url=ctx.job_url(job.id))
        for part in split_comment(body, ctx.comment_limit(pull.repo), label="atlas policy check"):
            ctx.vcs.post_comment(pull.repo, pull.number, part)
    for project, project_standing in checks:
        set_project_status(ctx, job, project, project_standing)
    set_summary_status(ctx, job)


def set_summary_status(ctx: CommandContext, job: Job) -> None:
    """`atlas/policy_check` from every project checked at the pull request's head, approvals counted."""
    pull = job.pull
    projects = [c.project for c in ctx.state.policy_checks(pull.repo.key, pull.number)
                if c.head_sha == pull.head_sha]
    standings = [e.standing for e in current_standings(ctx, pull, projects) if e.standing is not None]
    if not standings:
        return
    blocked_count = sum(1 for s in standings if not s.allows_apply)
    state = CommitState.FAILURE if blocked_count else CommitState.SUCCESS
    description = (f"{blocked_count}/{len(standings)} projects fail their policies, approval needed" if blocked_count
                   else f"{len(standings)} projects passed or approved")
    ctx.vcs.set_status(pull.repo, pull.head_sha, state, STATUS_CONTEXT, description, target_url=ctx.job_url(job.id),
                       number=pull.number)


def set_project_status(ctx: CommandContext, job: Job, project: Project, project_standing: PolicyStanding) -> None:
    state, description = _status_of(project_standing)
    ctx.vcs.set_status(job.pull.repo, job.pull.head_sha, state, f"{STATUS_CONTEXT}: {project.label}", description,
                       target_url=ctx.job_url(job.id), number=job.pull.number)


def _status_of(project_standing: PolicyStanding) -> tuple[CommitState, str]:
    if project_standing.allows_apply:
        approved = any(s.approved for s in project_standing.sets)
        return CommitState.SUCCESS, "policies approved" if approved else "policies passed"
    names = ", ".join(s.result.policy_set for s in project_standing.blocking)
    return CommitState.FAILURE, f"failed: {names}; approval needed"[:140]
