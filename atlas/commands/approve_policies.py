"""`atlas approve_policies`: an owner approves the failing policy sets of the pull request's projects
(all of them, or the one `-d`/`-w`/`-p` selects); `--clear-policy-approval` withdraws their approvals.

Who may approve a set: a top-level owner of repos.yaml's `policies:` or an owner of the set, by
login or by membership of an owner team of the repository's organisation, and not the pull
request's author when the set has `prevent_self_approve`. Approvals are kept in the state store for
the head commit they were given at, so a worker that applies sees them, and a new plan clears them.
"""

from __future__ import annotations

from atlas.commands.check_runs import JobChecks
from atlas.commands.context import CommandContext
from atlas.commands.outcome import CommandOutcome
from atlas.commands.policy_check import current_standings, policies_of, set_project_status, set_summary_status
from atlas.github.checks import POLICY_CHECK
from atlas.models import Job, JobStatus, Project
from atlas.policy.approvals import describe_owners
from atlas.policy.sets import PolicySets
from atlas.runtime.cancellation import CancelToken
from atlas.stores.audit import AuditAction, AuditEntry, record
from atlas.stores.policy import PolicyApprovalRecord


def run(job: Job, ctx: CommandContext, cancel: CancelToken) -> CommandOutcome:
    pull, args = job.pull, job.args
    prefix = ctx.settings.comment_prefix[0]
    user = job.requested_by or pull.author
    policies = policies_of(ctx)
    if policies is None:
        return _reply(job, ctx, JobStatus.FAILED, (
            "This atlas server does not run policy checks (`--enable-policy-checks` and repos.yaml `policies:`), "
            "so there is nothing to approve."))
    checked = [c.project for c in ctx.state.policy_checks(pull.repo.key, pull.number)
               if c.head_sha == pull.head_sha]
    projects = [p for p in checked if _selected(job, p)]
    if not projects:
        which = " selected by the comment" if (args.dir or args.project or args.workspace) else ""
        return _reply(job, ctx, JobStatus.FAILED, (
            f"There is no policy check of this pull request's plan at `{pull.head_sha[:7]}`{which}: "
            f"comment `{prefix} plan` first."))

    if args.clear_policy_approval:
        removed = sum(ctx.state.remove_policy_approvals(pull.repo.key, pull.number, p, user) for p in projects)
        for project in projects:
            _audit(ctx, job, AuditAction.POLICY_APPROVAL_WITHDRAWN, project, user, "withdrawn", "")
        withdrawn = [f"Withdrew {removed} policy approval(s) by @{user}." if removed
                     else f"@{user} had no policy approvals here to withdraw."]
        withdrawn += _standing_lines(ctx, job, projects, prefix)
        _set_status(job, ctx, projects)
        return _reply(job, ctx, JobStatus.SUCCEEDED, "\n".join(withdrawn))

    teams = _teams_of(ctx, job, policies, user)
    lines: list[str] = []
    approved_any = False
    for entry in current_standings(ctx, pull, projects):
        if entry.standing is None:
            continue
        for set_standing in entry.standing.sets:
            if set_standing.result.passed:
                continue
            name = set_standing.result.policy_set
            policy_set = policies.get(name)
            if policy_set is None:
                continue
            if policy_set.prevent_self_approve and user.casefold() == pull.author.casefold():
                lines.append(f"- {entry.project.label}: @{user} cannot approve `{name}`: it prevents the pull "
                             f"request's author from approving (`prevent_self_approve`); can approve: "
                             f"{describe_owners(set_standing.owners)}.")
                continue
            if not policies.can_approve(policy_set, user, teams, pull_author=pull.author):
                lines.append(f"- {entry.project.label}: @{user} is not an owner of `{name}`; can approve: "
                             f"{describe_owners(set_standing.owners)}.")
                continue
            ctx.state.add_policy_approval(PolicyApprovalRecord(
                repo=pull.repo.key, pull_number=pull.number, project=entry.project, policy_set=name,
                user=user, head_sha=pull.head_sha))
            _audit(ctx, job, AuditAction.POLICY_APPROVAL, entry.project, user, "approved", name)
            approved_any = True
    head = ("Recorded the policy approvals of @" + user + ":" if approved_any
            else f"No policy approval by @{user} was recorded:")
    body = "\n".join([head, "", *lines, *_standing_lines(ctx, job, projects, prefix)])
    _set_status(job, ctx, projects)
    return _reply(job, ctx, JobStatus.SUCCEEDED if approved_any else JobStatus.FAILED, body)


def _selected(job: Job, project: Project) -> bool:
    args = job.args
    if args.project and project.name != args.project:
        return False
    if args.dir is not None and project.dir != args.dir:
        return False
    return not ((args.workspace or (args.dir and "default")) and project.workspace != (args.workspace or "default"))


def _teams_of(ctx: CommandContext, job: Job, policies: PolicySets, user: str) -> tuple[str, ...]:
    """The owner teams (of the repository's organisation) the user belongs to."""
    slugs = dict.fromkeys([*policies.owners.teams, *(t for s in policies.policy_sets for t in s.owners.teams)])
    org = job.pull.repo.owner
    return tuple(slug for slug in slugs if ctx.vcs_for(job.pull.repo).is_team_member(org, slug, user))


def _standing_lines(ctx: CommandContext, job: Job, projects: list[Project], prefix: str) -> list[str]:
    lines = [""]
    for entry in current_standings(ctx, job.pull, projects):
        if entry.standing is None:
            continue
        if entry.standing.allows_apply:
            lines.append(f"- {entry.project.label}: its policies allow apply now.")
        else:
            waiting = "; ".join(s.describe() for s in entry.standing.blocking)
            lines.append(f"- {entry.project.label}: still blocked by {waiting}.")
    return lines


def _set_status(job: Job, ctx: CommandContext, projects: list[Project]) -> None:
    """The statuses and, with check runs, a new `atlas/policy_check` run per project (GitHub shows the latest)."""
    standings = [(e.project, e.standing) for e in current_standings(ctx, job.pull, projects) if e.standing is not None]
    runs = JobChecks(job, ctx, POLICY_CHECK)
    runs.queue(project for project, _ in standings)
    for project, standing in standings:
        set_project_status(ctx, job, project, standing)
        runs.complete_policy_check(project, standing)
    set_summary_status(ctx, job)


def _audit(ctx: CommandContext, job: Job, action: AuditAction, project: Project, user: str, outcome: str,
           policy_set: str) -> None:
    pull = job.pull
    record(ctx.state, AuditEntry(action=action, repo=pull.repo.key, user=user, outcome=outcome, sha=pull.head_sha,
                           pull_number=pull.number, project=project, trigger="comment", job_id=job.id,
                           detail=policy_set))


def _reply(job: Job, ctx: CommandContext, status: JobStatus, body: str) -> CommandOutcome:
    ctx.vcs.post_comment(job.pull.repo, job.pull.number, body)
    return CommandOutcome(status, body.splitlines()[0])
