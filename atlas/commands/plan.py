"""`plan` (and autoplan): plan the pull request's projects and report each on the pull request.

The path of one plan, in order: pending status → working copy at the head (merged into the base
with `--checkout-strategy merge`) → the repository's settings (repos.yaml, then atlas.yaml or
atlantis.yaml from the head) → the projects to plan → their locks, all taken in one step →
pre-workflow hooks → each project's workflow plan stage, by execution order group (in parallel
with `parallel_plan`); a project locked elsewhere joins that lock's waiting queue → the comment,
split when long → per-project statuses and the combined `atlas/plan` → post-workflow hooks.
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
from atlas.commands.outcome import CommandOutcome, record_phase
from atlas.commands.project_run import run_project_stage
from atlas.commands.reactions import react_for_repository
from atlas.commands.requirements import unmet
from atlas.config.raw import ConfigError
from atlas.config.repo_settings import RepoSettings, load_repo_settings
from atlas.config.valid import RepoLocksMode
from atlas.github.checks import PLAN, POLICY_CHECK
from atlas.intake.comment_parser import CommentError, resolve_dir
from atlas.models import CommandName, Job, JobStatus, Project, ProjectResult, ProjectStatus
from atlas.policy.approvals import PolicyStanding
from atlas.render.comments import (
    comment_parts,
    render_changed_plans_comment,
    render_error_comment,
    render_plan_comment,
)
from atlas.runtime.cancellation import CancelToken
from atlas.runtime.joblog import JobLog
from atlas.runtime.lock_handoff import submit_handoff_plan
from atlas.runtime.plan_compare import dump_changes, planned_changes
from atlas.runtime.plans import show_json
from atlas.runtime.project_selection import ProjectPatternError, named_projects, projects_for_dir, select_projects
from atlas.runtime.projects import ProjectMatch, has_terraform_files
from atlas.stores.audit import AuditAction
from atlas.stores.locks import ProjectLock
from atlas.stores.plans import PlanRecord
from atlas.stores.pulls import ProjectPhase
from atlas.vcs import CommitState, VCSError

log = logging.getLogger(__name__)

STATUS_CONTEXT = "atlas/plan"


@audited(AuditAction.PLAN)
def run(job: Job, ctx: CommandContext, cancel: CancelToken) -> CommandOutcome:
    pull = job.pull
    label = ctx.settings.disable_autoplan_label
    if job.command is CommandName.AUTOPLAN and label and label in pull.labels:
        log.info("%s carries the label %r: not planning it by itself (--disable-autoplan-label)", pull.key, label)
        return CommandOutcome(JobStatus.SUCCEEDED, f"ignored: the pull request carries the label {label!r}")
    ctx.state.save_pull(pull)
    joblog = ctx.job_log(job.id)
    workdir = ctx.working_copies.checkout(pull.repo, pull.number, "default", pull.head_sha,
                                          ctx.token_for(pull.repo), log=joblog)
    try:
        repo = load_repo_settings(ctx, pull, workdir)
    except ConfigError as error:
        return _refuse(job, ctx, "atlas could not read this repository's config", str(error))
    react_for_repository(job, ctx, repo)
    if not repo.effective.policy.branch_matches(pull.base_ref):
        return CommandOutcome(JobStatus.SUCCEEDED, f"ignored: base branch {pull.base_ref} is not configured")

    try:
        matches = projects_to_plan(job, ctx, repo, workdir, configured_only=silences_no_projects(ctx, repo))
    except CommentError as error:
        return _refuse(job, ctx, "atlas could not plan", error.message)
    if not matches:
        description = "no Terraform projects changed"
        if ctx.settings.silence_vcs_status_no_plans or ctx.settings.silence_vcs_status_no_projects:
            log.info("%s: no project to plan; no status (--silence-vcs-status-no-plans/-projects)", pull.key)
        else:
            set_status(job, ctx, CommitState.SUCCESS, description)
            apply_status.after_plan(job, ctx)
        return CommandOutcome(JobStatus.SUCCEEDED, description)
    set_status(job, ctx, CommitState.PENDING, "Planning…")
    if job.args.after_lock_release:
        ctx.vcs.post_comment(pull.repo, pull.number, (
            f"The lock on dir `{job.args.dir}` workspace `{job.args.workspace}` that this pull request was "
            "waiting for was released, and this pull request now holds it: atlas is planning it."
        ))
    problems = unmet(ctx, pull, {r for m in matches for r in repo.project(m.project).plan_requirements},
                     ignore_contexts=(STATUS_CONTEXT,))
    if problems:
        return _refuse(job, ctx, "atlas did not plan",
                       "This repository requires, before plan:\n\n" + "\n".join(f"- {p}" for p in problems))
    if not run_hooks(ctx, job, repo.effective.pre_workflow_hooks, workdir, joblog, when="pre"):
        set_status(job, ctx, CommitState.FAILURE, "a pre-workflow hook failed")
        return CommandOutcome(JobStatus.FAILED, "a pre-workflow hook failed")

    projects = [m.project for m in matches]
    plan_runs, policy_runs = JobChecks(job, ctx, PLAN), JobChecks(job, ctx, POLICY_CHECK)
    plan_runs.queue(projects)
    policy_runs.queue(p for p in projects if policy_check.enabled_for(ctx, repo, p))
    lockable = [p for p in projects if repo.project(p).repo_locks_mode is RepoLocksMode.ON_PLAN]
    attempt = ctx.locks.acquire(pull, lockable, job.requested_by or pull.author, job_id=job.id)
    held_elsewhere = {lock.project: lock for lock in attempt.conflicts}
    results: dict[Project, ProjectResult] = {
        p: _wait_for_lock(job, ctx, p, held_elsewhere[p]) for p in projects if p in held_elsewhere}
    for waiting in results.values():
        plan_runs.complete(waiting)
    base_notes: set[str] = set()
    workdirs: dict[str, Path] = {"default": workdir}
    for workspace in dict.fromkeys(p.workspace for p in projects if p not in held_elsewhere):
        workdirs[workspace], note = _prepare_workspace(job, ctx, workspace, workdirs.get(workspace), joblog)
        if note:
            base_notes.add(note)
    standings: dict[Project, PolicyStanding] = {}
    parallel = repo.flag(repo.effective.parallel_plan, False)
    for group in repo.ordered([p for p in projects if p not in held_elsewhere]):
        if cancel.cancelled:
            break
        workers = min(len(group), ctx.settings.parallel_pool_size) if parallel else 1
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="atlas-plan") as pool:
            for project, result in zip(group, pool.map(
                    lambda p: _plan_one(job, ctx, repo, p, workdirs[p.workspace], joblog, cancel, plan_runs,
                                        policy_runs, standings), group),
                    strict=True):
                results[project] = result

    if cancel.cancelled:
        plan_runs.cancel_rest()
        policy_runs.cancel_rest()
        set_status(job, ctx, CommitState.FAILURE, "plan cancelled")
        return CommandOutcome(JobStatus.CANCELLED, "plan cancelled")
    policy_runs.skip_rest("The project waits for another pull request's lock, so it was not planned.")
    ordered = [results[p] for p in projects if p in results]
    if ctx.settings.discard_approval_on_plan and any(r.status is not ProjectStatus.LOCKED for r in ordered):
        _discard_approvals(job, ctx)
    if "plan" not in repo.project(projects[0]).silence_pr_comments:
        _post_plan_comment(job, ctx, ordered, sorted(base_notes))
    policy_check.report(ctx, job, [(r.project, standings[r.project]) for r in ordered if r.project in standings])
    for result in ordered:
        _set_project_status(job, ctx, result)
    outcome = _set_summary_status(job, ctx)
    run_hooks(ctx, job, repo.effective.post_workflow_hooks, workdir, joblog, when="post")
    return outcome


def _prepare_workspace(job: Job, ctx: CommandContext, workspace: str, checked_out: Path | None,
                       joblog: JobLog) -> tuple[Path, str]:
    """The working copy the workspace's projects plan in, checked out (and merged) once per job.

    `checked_out` is a copy this job already brought to the head; it is not checked out again.
    """
    pull = job.pull
    workdir = checked_out or ctx.working_copies.checkout(
        pull.repo, pull.number, workspace, pull.head_sha, ctx.token_for(pull.repo), log=joblog)
    if ctx.settings.checkout_strategy != "merge":
        return workdir, ""
    base_sha = ctx.working_copies.merge_base_branch(pull.repo, pull.number, workspace, pull.base_ref,
                                                    ctx.token_for(pull.repo), log=joblog)
    return workdir, (f"This plan is of the result of merging this pull request into `{pull.base_ref}` at "
                     f"`{base_sha[:7]}` (`--checkout-strategy merge`).")


def _plan_one(job: Job, ctx: CommandContext, repo: RepoSettings, project: Project, workdir: Path,
              joblog: JobLog, cancel: CancelToken, plan_runs: JobChecks, policy_runs: JobChecks,
              standings: dict[Project, PolicyStanding]) -> ProjectResult:
    """Plan one project in its workspace's working copy (prepared for this job), then check its policies;
    each reported on its check run."""
    planfile = ctx.planfile(job.pull, project)
    plan_runs.start(project)
    result = run_project_stage(ctx, job, repo, project, workdir, planfile, joblog, cancel,
                               command=CommandName.PLAN)
    record_plan(job, ctx, repo, result, workdir, joblog)
    plan_runs.complete(result, annotations_from=(workdir, joblog))
    if not policy_check.enabled_for(ctx, repo, project):
        return result
    if result.ok and result.summary is not None:
        policy_runs.start(project)
        standings[project] = policy_check.check_project(ctx, job, repo, project, workdir, planfile, joblog)
        policy_runs.complete_policy_check(project, standings[project])
    else:
        policy_runs.skip(project, "The plan did not succeed, so there is no plan to check against the policies.")
    return result


def silences_no_projects(ctx: CommandContext, repo: RepoSettings) -> bool:
    """`--silence-no-projects` is on and the repository's config lists projects (otherwise it changes nothing)."""
    return ctx.settings.silence_no_projects and repo.has_repo_config and bool(repo.effective.projects)


def projects_to_plan(job: Job, ctx: CommandContext, repo: RepoSettings, workdir: Path, *,
                     configured_only: bool = False) -> list[ProjectMatch]:
    """Every project the pull request modifies, or those the comment names.

    `configured_only` (`--silence-no-projects`): a `-d` or `-p` that names no project of the repo config
    selects nothing, rather than an unconfigured directory or an error comment.
    """
    args, pull = job.args, job.pull
    config = repo.effective if repo.has_repo_config else None
    if job.command is CommandName.AUTOPLAN or not args.targets_one:
        changed = ctx.vcs.changed_files(pull)
        return select_projects(workdir, changed, config, base_branch=pull.base_ref,
                               manual=job.command is not CommandName.AUTOPLAN)
    prefix = ctx.settings.comment_prefix[0]
    if args.project:
        if config is None:
            raise CommentError(
                f"there is no project named `{args.project}`: this repository has no atlas.yaml or atlantis.yaml "
                f"that names projects. Name the directory instead, e.g. `{prefix} plan -d DIR`.")
        regexp = ctx.settings.enable_regexp_cmd
        try:
            named = named_projects(config, args.project, regexp=regexp, base_branch=pull.base_ref)
        except ProjectPatternError as error:
            raise CommentError(str(error)) from None
        if not named and not configured_only:
            names = ", ".join(f"`{s.project.name}`" for s in config.projects if s.project.name) or "none"
            what = "whose whole name matches the regex" if regexp else "named"
            raise CommentError(f"there is no project {what} `{args.project}` in {repo.config_file} "
                               f"(projects with names: {names}).")
        return [ProjectMatch(project=s.project, reason="named in the comment") for s in named]
    directory = args.dir or "."
    resolve_dir(workdir, directory)
    if config is not None:
        configured = projects_for_dir(config, directory, args.workspace, base_branch=pull.base_ref)
        if configured or configured_only:
            return [ProjectMatch(project=s.project, reason="named in the comment") for s in configured]
    if not has_terraform_files(workdir / directory):
        raise CommentError(f"directory `{directory}` holds no Terraform files (`*.tf`), so there is nothing to plan.")
    project = Project(dir=directory, workspace=args.workspace or "default")
    reason = "released lock" if args.after_lock_release else "named in the comment"
    return [ProjectMatch(project=project, reason=reason)]


def _refuse(job: Job, ctx: CommandContext, title: str, details: str) -> CommandOutcome:
    ctx.vcs.post_comment(job.pull.repo, job.pull.number, render_error_comment(title, details))
    set_status(job, ctx, CommitState.FAILURE, title)
    return CommandOutcome(JobStatus.FAILED, f"{title}: {details.splitlines()[0]}")


def _wait_for_lock(job: Job, ctx: CommandContext, project: Project, holder: ProjectLock) -> ProjectResult:
    pull = job.pull
    position = ctx.locks.wait_for(pull, project, job.requested_by or pull.author)
    if position == 0:
        # Released between acquire and wait_for: this pull request holds it now, so plan it next.
        lock = ctx.locks.get(pull.repo.key, project)
        if lock is not None and lock.pull_number == pull.number:
            submit_handoff_plan(ctx, lock)
    record_phase(ctx, job, project, ProjectPhase.WAITING, f"#{holder.pull_number}")
    ahead = f" ({position - 1} pull request{'s' if position != 2 else ''} ahead of this one)" if position > 1 else ""
    why = ""
    holder_states = ctx.state.project_states(holder.repo, holder.pull_number)
    if any(s.project == project and s.phase is ProjectPhase.APPLY_FAILED for s in holder_states):
        why = (" That pull request's apply after merge failed, so the project may be half-applied; "
               "it keeps the lock until its apply is retried there or it is unlocked.")
    return ProjectResult(
        project=project, command=job.command, status=ProjectStatus.LOCKED,
        error=(f"This project is locked by {lock_holder_text(holder)}, so it was not planned.{why} "
               f"This pull request is waiting for the lock{ahead}: atlas will plan it here by itself "
               f"when the lock is released"),
    )


def record_plan(job: Job, ctx: CommandContext, repo: RepoSettings, result: ProjectResult, workdir: Path,
            joblog: JobLog) -> None:
    pull, project = job.pull, result.project
    planfile = ctx.planfile(pull, project)
    if result.ok and result.summary is not None:
        changes = ""
        if repo.apply_on_merge(project) != "false":
            # What was reviewed, kept to compare with the plan of the merge commit.
            changes = dump_changes(planned_changes(show_json(ctx.terraform, workdir, project, planfile, joblog)))
        record = PlanRecord.for_file(
            planfile, repo=pull.repo.key, pull_number=pull.number, project=project, head_sha=pull.head_sha,
            terraform_version=repo.project(project).terraform_version or "", job_id=job.id, summary=result.summary,
            changes=changes)
        # The file is shared with every worker (the apply may run on another host); the record says what it is.
        ctx.artifacts.put(record, planfile)
        ctx.state.save_plan(record)
        phase, detail = ProjectPhase.PLANNED, result.summary.line
    else:
        ctx.forget_plans(pull.repo.key, pull.number, project)
        planfile.unlink(missing_ok=True)
        phase, detail = ProjectPhase.PLAN_FAILED, result.error or "plan failed"
    record_phase(ctx, job, project, phase, detail)


def _post_plan_comment(job: Job, ctx: CommandContext, results: list[ProjectResult], notes: list[str]) -> None:
    pull = job.pull
    if ctx.settings.hide_prev_plan_comments:
        for node_id in ctx.state.take_comment_records(pull.repo.key, pull.number, "plan"):
            try:
                ctx.vcs.hide_comment(node_id, "OUTDATED", repo=pull.repo)
            except Exception as error:  # hiding is cosmetic; the new plan must still be posted
                log.warning("could not hide an earlier plan comment: %s", error)
    render = render_changed_plans_comment if ctx.settings.hide_unchanged_plan_comments else render_plan_comment
    body = render(results, command_prefix=ctx.settings.comment_prefix[0], head_sha=pull.head_sha,
                  job_url=ctx.job_url(job.id))
    if body is None:
        log.info("%s: no project's plan has changes; no comment (--hide-unchanged-plan-comments)", pull.key)
        return
    if notes:
        body = "\n".join(notes) + "\n\n" + body
    for part in comment_parts(body, max_comments=ctx.settings.max_comments_per_command, job_url=ctx.job_url(job.id),
                              limit=ctx.comment_limit(pull.repo)):
        posted = ctx.vcs.post_comment(pull.repo, pull.number, part)
        if posted.node_id:
            ctx.state.add_comment_record(pull.repo.key, pull.number, "plan", posted.node_id)


def _discard_approvals(job: Job, ctx: CommandContext) -> None:
    """A new plan was made: what was approved is no longer what would be applied (`--discard-approval-on-plan`)."""
    pull = job.pull
    message = (f"atlas planned this pull request again at {pull.head_sha[:7]}, so earlier approvals no longer "
               "cover what would be applied (--discard-approval-on-plan).")
    try:
        dismissed = ctx.vcs.dismiss_approvals(pull.repo, pull.number, message)
    except VCSError as error:
        log.warning("%s: could not dismiss approvals after a new plan: %s", pull.key, error)
        return
    if dismissed:
        log.info("%s: dismissed the approvals of %s after a new plan", pull.key, ", ".join(dismissed))


def _set_project_status(job: Job, ctx: CommandContext, result: ProjectResult) -> None:
    """`atlas/plan: DIR/WORKSPACE` (or the project's name) beside the combined status."""
    if result.status is ProjectStatus.LOCKED:
        state, description = CommitState.PENDING, "waiting for the lock"
    elif result.ok:
        state, description = CommitState.SUCCESS, result.summary.line if result.summary else "planned"
    else:
        state, description = CommitState.FAILURE, (result.error or "plan failed").splitlines()[0]
    label = result.project.name or f"{result.project.dir}/{result.project.workspace}"
    ctx.vcs.set_status(job.pull.repo, job.pull.head_sha, state, f"{STATUS_CONTEXT}: {label}", description,
                       target_url=ctx.job_url(job.id), number=job.pull.number)


def _set_summary_status(job: Job, ctx: CommandContext) -> CommandOutcome:
    """`atlas/plan` from the latest state of every project of the pull request at this head."""
    pull = job.pull
    states = [s for s in ctx.state.project_states(pull.repo.key, pull.number) if s.head_sha == pull.head_sha]
    planned = sum(1 for s in states if s.phase in (ProjectPhase.PLANNED, ProjectPhase.APPLIED))
    failed = sum(1 for s in states if s.phase in (ProjectPhase.PLAN_FAILED, ProjectPhase.APPLY_FAILED))
    waiting = [s for s in states if s.phase is ProjectPhase.WAITING]
    total = len(states)
    apply_status.after_plan(job, ctx)
    if waiting:
        holders = ", ".join(sorted({s.detail for s in waiting}))
        description = f"waiting for the lock held by {holders}; {planned}/{total} projects planned"
        set_status(job, ctx, CommitState.PENDING, description)
        return CommandOutcome(JobStatus.SUCCEEDED, description)
    description = f"{planned}/{total} projects planned" + (f", {failed} failed" if failed else "")
    set_status(job, ctx, CommitState.FAILURE if failed else CommitState.SUCCESS, description)
    return CommandOutcome(JobStatus.FAILED if failed else JobStatus.SUCCEEDED, description)


def set_status(job: Job, ctx: CommandContext, state: CommitState | str, description: str) -> None:
    ctx.vcs.set_status(job.pull.repo, job.pull.head_sha, CommitState(state), STATUS_CONTEXT, description,
                       target_url=ctx.job_url(job.id), number=job.pull.number)
