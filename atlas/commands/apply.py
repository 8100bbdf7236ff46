"""`atlas apply`: apply the plans saved by the pull request's last plan, in the same working copy.

Before anything runs, atlas refuses (with a comment that says why and what to do) when there is
no plan, when the pull request's head moved since the plan, when a server apply requirement fails,
or when another pull request holds a project's lock. Then each plan file is applied, the comment
and `atlas/apply` status report the result, and with `--automerge` a fully applied pull request
is merged.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from atlas.commands import apply_status, policy_check
from atlas.commands.audit import audited
from atlas.commands.check_runs import JobChecks
from atlas.commands.context import CommandContext
from atlas.commands.hooks import run_hooks
from atlas.commands.locking import lock_holder_text
from atlas.commands.merge import apply_merged
from atlas.commands.notifications import notify_apply
from atlas.commands.outcome import CommandOutcome, record_phase
from atlas.commands.plan import silences_no_projects
from atlas.commands.project_run import run_project_stage
from atlas.commands.reactions import react_for_repository
from atlas.commands.requirements import unmet
from atlas.config.raw import ConfigError
from atlas.config.repo_settings import RepoSettings, load_repo_settings
from atlas.config.server import POLICIES_PASSED
from atlas.config.valid import RepoLocksMode
from atlas.github.checks import APPLY
from atlas.models import CommandName, Job, JobStatus, ProjectResult, ProjectStatus
from atlas.render.comments import comment_parts, render_apply_comment, render_error_comment
from atlas.runtime.cancellation import CancelToken
from atlas.runtime.joblog import JobLog
from atlas.runtime.project_selection import ProjectPatternError, named_projects
from atlas.stores.audit import AuditAction
from atlas.stores.plans import ArtifactError, PlanRecord
from atlas.stores.pulls import ProjectPhase
from atlas.vcs import CommitState, VCSError

log = logging.getLogger(__name__)

STATUS_CONTEXT = apply_status.STATUS_CONTEXT


class ApplyRefused(Exception):
    """Apply cannot go ahead; the message tells the pull request why and what to do."""


class NothingToApply(ApplyRefused):
    """No plan (of the projects named) to apply: with `--silence-no-projects`, said to no one."""


@audited(AuditAction.APPLY)
def run(job: Job, ctx: CommandContext, cancel: CancelToken) -> CommandOutcome:
    pull = job.pull
    if pull.merged:
        return apply_merged(job, ctx, cancel)
    prefix = ctx.settings.comment_prefix[0]
    joblog = ctx.job_log(job.id)
    workdir = ctx.working_copies.path_for(pull.repo, pull.number, "default")
    if not (workdir / ".git").is_dir():
        workdir = ctx.working_copies.checkout(pull.repo, pull.number, "default", pull.head_sha,
                                              ctx.token_for(pull.repo), log=joblog)
    try:
        repo = load_repo_settings(ctx, pull, workdir)
        react_for_repository(job, ctx, repo)
        plans = _plans_to_apply(job, ctx, repo, prefix)
        _refuse_apply_only_on_merge(repo, plans)
        _check_requirements(job, ctx, repo, plans)
        _check_policies(job, ctx, repo, plans)
        _check_dependencies(job, ctx, repo, plans)
        _check_locks(job, ctx, repo, plans)
    except ConfigError as error:
        ctx.vcs.post_comment(pull.repo, pull.number, render_error_comment(
            "atlas could not read this repository's config", str(error)))
        return CommandOutcome(JobStatus.FAILED, str(error))
    except ApplyRefused as refusal:
        if isinstance(refusal, NothingToApply) and silences_no_projects(ctx, repo):
            log.info("%s: nothing to apply; no comment (--silence-no-projects): %s", pull.key, refusal)
            return CommandOutcome(JobStatus.SUCCEEDED, f"silenced: {refusal}")
        ctx.vcs.post_comment(pull.repo, pull.number, render_error_comment("atlas did not apply", str(refusal)))
        return CommandOutcome(JobStatus.SUCCEEDED, f"refused: {refusal}")

    if not run_hooks(ctx, job, repo.effective.pre_workflow_hooks, workdir, joblog, when="pre"):
        return CommandOutcome(JobStatus.FAILED, "a pre-workflow hook failed")
    _set_status(job, ctx, CommitState.PENDING, f"Applying {len(plans)} project(s)…")
    by_project = {plan.project: plan for plan in plans}
    runs = JobChecks(job, ctx, APPLY)
    runs.queue(by_project)
    results: list[ProjectResult] = []
    parallel = repo.flag(repo.effective.parallel_apply, False)
    for group in repo.ordered(list(by_project)):
        if cancel.cancelled:
            break
        workers = min(len(group), ctx.settings.parallel_pool_size) if parallel else 1
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="atlas-apply") as pool:
            group_results = list(pool.map(
                lambda project: _apply_checked(job, ctx, repo, by_project[project], joblog, cancel, runs), group))
        results.extend(group_results)
        if repo.effective.abort_on_execution_order_fail and any(not r.ok for r in group_results):
            break

    if cancel.cancelled:
        runs.cancel_rest()
    else:
        runs.skip_rest("A project in an earlier execution order group failed, so this one was not applied "
                       "(`abort_on_execution_order_fail`).")
    if "apply" not in repo.project(plans[0].project).silence_pr_comments:
        body = render_apply_comment(results, command_prefix=prefix, head_sha=pull.head_sha,
                                    job_url=ctx.job_url(job.id))
        skipped = len(plans) - len(results)
        if skipped:
            body += (f"\n\n{skipped} project(s) in later execution order groups were not applied, because a "
                     "project before them failed (`abort_on_execution_order_fail`).")
        for part in comment_parts(body, max_comments=ctx.settings.max_comments_per_command,
                                  job_url=ctx.job_url(job.id), limit=ctx.comment_limit(pull.repo)):
            ctx.vcs.post_comment(pull.repo, pull.number, part)
    applied = sum(1 for r in results if r.ok)
    description = f"{applied}/{len(plans)} projects applied"
    failed = applied < len(plans)
    _set_status(job, ctx, *apply_status.after_apply(
        job, ctx, CommitState.FAILURE if failed else CommitState.SUCCESS, description))
    run_hooks(ctx, job, repo.effective.post_workflow_hooks, workdir, joblog, when="post")
    if not failed and repo.flag(repo.effective.automerge, ctx.settings.automerge):
        _automerge(job, ctx, repo)
    return CommandOutcome(JobStatus.FAILED if failed else JobStatus.SUCCEEDED, description)


def _apply_checked(job: Job, ctx: CommandContext, repo: RepoSettings, plan: PlanRecord, joblog: JobLog,
                   cancel: CancelToken, runs: JobChecks) -> ProjectResult:
    runs.start(plan.project)
    result = apply_one(job, ctx, repo, plan, joblog, cancel)
    runs.complete(result)
    if result.ok:
        runs.retire_apply_button(plan.project)
    return result


def apply_one(job: Job, ctx: CommandContext, repo: RepoSettings, plan: PlanRecord, joblog: JobLog,
               cancel: CancelToken) -> ProjectResult:
    pull = job.pull
    workdir = ctx.working_copies.path_for(pull.repo, pull.number, plan.project.workspace)
    if not (workdir / ".git").is_dir():
        workdir = ctx.working_copies.checkout(pull.repo, pull.number, plan.project.workspace, plan.head_sha,
                                              ctx.token_for(pull.repo), log=joblog)
    try:
        planfile = _fetch_plan(ctx, job, plan)
    except ArtifactError as error:
        result = ProjectResult(project=plan.project, command=CommandName.APPLY, status=ProjectStatus.FAILED,
                               error=f"{error}. Plan again with `{ctx.settings.comment_prefix[0]} plan`.")
    else:
        result = run_project_stage(ctx, job, repo, plan.project, workdir, planfile, joblog, cancel,
                                   command=CommandName.APPLY, extra_args=())
        planfile.unlink(missing_ok=True)
    _record(job, ctx, plan, result)
    notify_apply(ctx, job, result, user=job.requested_by or pull.author)
    return result


def _fetch_plan(ctx: CommandContext, job: Job, plan: PlanRecord) -> Path:
    """The saved plan from the artifact store, checked against its checksum and the pull request's head."""
    pull = job.pull
    meta = ctx.artifacts.get(pull.repo.key, pull.number, plan.project)
    if meta is None:
        raise ArtifactError(f"the saved plan of dir `{plan.project.dir}` workspace `{plan.project.workspace}` "
                            "is gone from the plan store")
    meta.check(head_sha=pull.head_sha)
    destination = ctx.planfile(pull, plan.project).with_suffix(f".{job.id}.tfplan")
    return ctx.artifacts.fetch(meta, destination)


def _plans_to_apply(job: Job, ctx: CommandContext, repo: RepoSettings, prefix: str) -> list[PlanRecord]:
    pull, args = job.pull, job.args
    if ctx.settings.disable_apply_all and not (args.dir or args.project):
        raise ApplyRefused(
            f"This server does not apply every project at once (`--disable-apply-all`). Name the project: "
            f"`{prefix} apply -d DIR` (with `-w WORKSPACE` for a workspace other than default) or "
            f"`{prefix} apply -p PROJECT`."
        )
    plans = ctx.state.plans(pull.repo.key, pull.number)
    if args.project:
        regexp = ctx.settings.enable_regexp_cmd
        try:
            named = named_projects(repo.effective, args.project, regexp=regexp, base_branch=pull.base_ref) \
                if repo.has_repo_config else []
        except ProjectPatternError as error:
            raise ApplyRefused(str(error)) from None
        if not named:
            what = "whose whole name matches the regex" if regexp else "named"
            raise NothingToApply(f"There is no project {what} `{args.project}` in this repository's config. "
                                 f"Name the directory instead, e.g. `{prefix} apply -d DIR`.")
        if ctx.settings.disable_apply_all and len(named) > 1:
            raise ApplyRefused(
                f"`-p {args.project}` names {len(named)} projects, and this server applies one project at a time "
                f"(`--disable-apply-all`): name one of " + ", ".join(f"`{s.project.name}`" for s in named) + ".")
        wanted = {s.project for s in named}
        plans = [p for p in plans if p.project in wanted]
        if not plans:
            raise ApplyRefused(f"Project `{args.project}` has no plan in this pull request. "
                               f"Comment `{prefix} plan -p {args.project}` first.")
    if args.dir or args.workspace:
        directory, workspace = args.dir or ".", args.workspace or "default"
        plans = [p for p in plans if p.project.dir == directory and p.project.workspace == workspace]
        if not plans:
            raise NothingToApply(
                f"There is no plan for dir `{directory}` workspace `{workspace}` in this pull request. "
                f"Comment `{prefix} plan -d {directory}" + (f" -w {workspace}" if workspace != "default" else "")
                + "` first."
            )
    if not plans:
        raise NothingToApply(f"This pull request has no plan to apply. Comment `{prefix} plan` first.")
    stale = [p for p in plans if p.head_sha != pull.head_sha]
    if stale:
        old = ", ".join(sorted({p.head_sha[:7] for p in stale}))
        raise ApplyRefused(
            f"The plan was made at commit {old}, but the pull request's head is now {pull.head_sha[:7]}: "
            f"a plan is only valid for the commit it was made at. atlas plans new pushes by itself; "
            f"review the new plan (or comment `{prefix} plan`), then apply."
        )
    return plans


def _refuse_apply_only_on_merge(repo: RepoSettings, plans: list[PlanRecord]) -> None:
    only = [p.project for p in plans if repo.apply_on_merge(p.project) == "only"]
    if only:
        names = ", ".join(f"`{p.label}`" for p in only)
        raise ApplyRefused(
            f"Applies of {names} happen on merge (`apply_on_merge: only`): merge this pull request once its "
            "plan is reviewed, and atlas applies the merged result."
        )


def _check_requirements(job: Job, ctx: CommandContext, repo: RepoSettings, plans: list[PlanRecord]) -> None:
    requirements = {r for plan in plans for r in repo.project(plan.project).apply_requirements}
    # Judged by the policy check (`_check_policies`) where one runs; refused where none does.
    requirements.discard(POLICIES_PASSED)
    failures = unmet(ctx, job.pull, requirements, ignore_contexts=(STATUS_CONTEXT,))
    failures += [f for f in (policy_check.unjudged(ctx, repo, plan.project) for plan in plans) if f]
    if failures:
        raise ApplyRefused("This server requires, before apply:\n\n" + "\n".join(f"- {f}" for f in failures))


def _check_policies(job: Job, ctx: CommandContext, repo: RepoSettings, plans: list[PlanRecord]) -> None:
    """Policy checks gate applies (`policies_passed`, implied when they are on): failing sets need approvals."""
    refusals = policy_check.blocked(ctx, repo, job.pull, [plan.project for plan in plans])
    if refusals:
        raise ApplyRefused("\n\n".join(refusals))


def _check_dependencies(job: Job, ctx: CommandContext, repo: RepoSettings, plans: list[PlanRecord]) -> None:
    """`depends_on`: a project applies only after the projects it names (in this apply or before)."""
    pull = job.pull
    applying = {plan.project for plan in plans}
    applied = {s.project for s in ctx.state.project_states(pull.repo.key, pull.number)
               if s.phase is ProjectPhase.APPLIED and s.head_sha == pull.head_sha}
    planned = {p.project for p in ctx.state.plans(pull.repo.key, pull.number)}
    blocking: list[str] = []
    for plan in plans:
        for dependency in repo.depends_on(plan.project):
            if dependency in applied or dependency in applying or dependency not in planned:
                continue
            blocking.append(f"`{plan.project.label}` depends on `{dependency.label}`, which is not applied yet")
    if blocking:
        raise ApplyRefused("; ".join(blocking) + ". Apply those first, or apply everything with a bare "
                           f"`{ctx.settings.comment_prefix[0]} apply`.")


def _check_locks(job: Job, ctx: CommandContext, repo: RepoSettings, plans: list[PlanRecord]) -> None:
    """Apply only what this pull request holds; a free project is taken (`repo_locks: on_apply`, races)."""
    lockable = [p.project for p in plans if repo.project(p.project).repo_locks_mode is not RepoLocksMode.DISABLED]
    attempt = ctx.locks.acquire(job.pull, lockable, job.requested_by or job.pull.author, job_id=job.id)
    if attempt.conflicts:
        held = "; ".join(f"dir `{lock.project.dir}` workspace `{lock.project.workspace}` is locked by "
                         f"{lock_holder_text(lock)}" for lock in attempt.conflicts)
        raise ApplyRefused(f"{held}. Apply after that pull request is merged or closed, or unlocked.")


def _record(job: Job, ctx: CommandContext, plan: PlanRecord, result: ProjectResult) -> None:
    pull = job.pull
    if result.ok:
        ctx.forget_plans(pull.repo.key, pull.number, plan.project)
        phase, detail = ProjectPhase.APPLIED, result.summary.line if result.summary else "applied"
    else:
        phase, detail = ProjectPhase.APPLY_FAILED, result.error or "apply failed"
    record_phase(ctx, job, plan.project, phase, detail)


def _automerge(job: Job, ctx: CommandContext, repo: RepoSettings) -> None:
    """Merge once every project of the pull request at this head is applied (`--automerge-method`).

    Then, when its projects ask for it (`delete_source_branch_on_merge`, per project, at the top of
    the repo config or in repos.yaml), delete the pull request's branch, unless it lives in a fork.
    """
    pull = job.pull
    states = [s for s in ctx.state.project_states(pull.repo.key, pull.number) if s.head_sha == pull.head_sha]
    if not states or any(s.phase is not ProjectPhase.APPLIED for s in states):
        return
    method = ctx.settings.automerge_method
    try:
        ctx.vcs.merge(pull.repo, pull.number, pull.head_sha, method)
    except VCSError as error:
        ctx.vcs.post_comment(pull.repo, pull.number, render_error_comment(
            "atlas could not merge this pull request (--automerge)", str(error)))
        return
    how = f" (--automerge-method {method})" if method else ""
    said = f"Automatically merged{how} because every project of this pull request was applied."
    if all(repo.project(s.project).delete_source_branch_on_merge for s in states) and not pull.is_fork:
        try:
            ctx.vcs.delete_branch(pull.repo, pull.head_ref)
        except VCSError as error:
            log.warning("%s: could not delete branch %s after merge: %s", pull.key, pull.head_ref, error)
            said += f" atlas could not delete the branch `{pull.head_ref}` (delete_source_branch_on_merge): {error}"
        else:
            said += f" Deleted the branch `{pull.head_ref}` (delete_source_branch_on_merge)."
    ctx.vcs.post_comment(pull.repo, pull.number, said)


def _set_status(job: Job, ctx: CommandContext, state: CommitState, description: str) -> None:
    apply_status.set_status(job, ctx, state, description)
