"""`plan` (and autoplan): plan the pull request's projects and report each on the pull request.

The path of one plan, in order: pending status → working copy at the head (merged into the base
with `--checkout-strategy merge`) → the projects to plan → their locks, all taken in one step →
terraform per locked project (the others join the lock's waiting queue) → the comment, split when
long → the status, derived from every project's latest state.
"""

from __future__ import annotations

import logging
from pathlib import Path

from atlas.commands.locking import lock_holder_text, submit_handoff_plan
from atlas.commands.merge import show_json
from atlas.commands.outcome import CommandOutcome
from atlas.commands.settings_for import apply_on_merge_mode
from atlas.comment_commands import CommentError, resolve_dir
from atlas.comments import render_error_comment, render_plan_comment, split_comment
from atlas.context import CommandContext
from atlas.locks import ProjectLock
from atlas.logs import job_context
from atlas.models import CommandName, Job, JobStatus, PlanRecord, Project, ProjectResult, ProjectStatus, utcnow
from atlas.plan_compare import dump_changes, planned_changes
from atlas.plans import plan_project
from atlas.projects import ProjectMatch, find_projects, has_terraform_files
from atlas.state import ProjectPhase, ProjectState
from atlas.terraform import CancelToken
from atlas.vcs import CommitState

log = logging.getLogger(__name__)

STATUS_CONTEXT = "atlas/plan"


def run(job: Job, ctx: CommandContext, cancel: CancelToken) -> CommandOutcome:
    pull = job.pull
    ctx.state.save_pull(pull)
    set_status(job, ctx, CommitState.PENDING, "Planning…")
    joblog = ctx.job_log(job.id)
    if job.args.after_lock_release:
        ctx.vcs.post_comment(pull.repo, pull.number, (
            f"The lock on dir `{job.args.dir}` workspace `{job.args.workspace}` that this pull request was "
            "waiting for was released, and this pull request now holds it: atlas is planning it."
        ))

    workdir = ctx.working_copies.checkout(pull.repo, pull.number, "default", pull.head_sha, ctx.token, log=joblog)
    try:
        matches = _projects_to_plan(job, ctx, workdir)
    except CommentError as error:
        ctx.vcs.post_comment(pull.repo, pull.number, render_error_comment("atlas could not plan", error.message))
        _set_summary_status(job, ctx)
        return CommandOutcome(JobStatus.FAILED, error.message)
    if not matches:
        description = "no Terraform projects changed"
        set_status(job, ctx, CommitState.SUCCESS, description)
        return CommandOutcome(JobStatus.SUCCEEDED, description)

    attempt = ctx.locks.acquire(pull, [m.project for m in matches], job.requested_by or pull.author)
    held_by_others = {lock.project: lock for lock in attempt.conflicts}
    results: list[ProjectResult] = []
    base_notes: set[str] = set()
    for match in matches:
        project = match.project
        if project in held_by_others:
            results.append(_wait_for_lock(job, ctx, project, held_by_others[project]))
            continue
        if cancel.cancelled:
            break
        project_dir = workdir
        if project.workspace != "default":
            project_dir = ctx.working_copies.checkout(
                pull.repo, pull.number, project.workspace, pull.head_sha, ctx.token, log=joblog
            )
        if ctx.settings.checkout_strategy == "merge":
            base_sha = ctx.working_copies.merge_base_branch(
                pull.repo, pull.number, project.workspace, pull.base_ref, ctx.token, log=joblog
            )
            base_notes.add(f"This plan is of the result of merging this pull request into `{pull.base_ref}` "
                           f"at `{base_sha[:7]}` (`--checkout-strategy merge`).")
        with job_context(project=project.label):
            log.info("planning %s (%s)", project.label, match.reason)
            result = plan_project(ctx.terraform, project_dir, project, ctx.planfile(pull, project), joblog,
                                  cancel=cancel, extra_args=job.args.extra_args)
        results.append(result)
        _record(job, ctx, result)

    if cancel.cancelled:
        set_status(job, ctx, CommitState.FAILURE, "plan cancelled")
        return CommandOutcome(JobStatus.CANCELLED, "plan cancelled")
    _post_plan_comment(job, ctx, results, sorted(base_notes))
    return _set_summary_status(job, ctx)


def _projects_to_plan(job: Job, ctx: CommandContext, workdir: Path) -> list[ProjectMatch]:
    """Every project the pull request modifies, or the one the comment names."""
    args = job.args
    if job.command is CommandName.AUTOPLAN or not args.targets_one:
        return find_projects(workdir, ctx.vcs.changed_files(job.pull))
    if args.project:
        raise CommentError(
            f"there is no project named `{args.project}`: this repository's config defines no projects. "
            f"Name the directory instead, e.g. `{ctx.settings.comment_prefix[0]} plan -d DIR`."
        )
    directory = args.dir or "."
    resolve_dir(workdir, directory)
    if not has_terraform_files(workdir / directory):
        raise CommentError(f"directory `{directory}` holds no Terraform files (`*.tf`), so there is nothing to plan.")
    project = Project(dir=directory, workspace=args.workspace or "default")
    reason = "released lock" if args.after_lock_release else "named in the comment"
    return [ProjectMatch(project=project, reason=reason)]


def _wait_for_lock(job: Job, ctx: CommandContext, project: Project, holder: ProjectLock) -> ProjectResult:
    pull = job.pull
    position = ctx.locks.wait_for(pull, project, job.requested_by or pull.author)
    if position == 0:
        # Released between acquire and wait_for: this pull request holds it now, so plan it next.
        lock = ctx.locks.get(pull.repo.full_name, project)
        if lock is not None and lock.pull_number == pull.number:
            submit_handoff_plan(ctx, lock)
    ctx.state.set_project_state(pull.repo.full_name, pull.number, ProjectState(
        project=project, phase=ProjectPhase.WAITING, head_sha=pull.head_sha, job_id=job.id,
        detail=f"#{holder.pull_number}", updated_at=utcnow(),
    ))
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


def _record(job: Job, ctx: CommandContext, result: ProjectResult) -> None:
    pull, project = job.pull, result.project
    planfile = ctx.planfile(pull, project)
    if result.ok and result.summary is not None:
        changes = ""
        if apply_on_merge_mode(ctx, pull, project) != "false":
            # What was reviewed, kept to compare with the plan of the merge commit.
            workdir = ctx.working_copies.path_for(pull.repo.full_name, pull.number, project.workspace)
            changes = dump_changes(planned_changes(show_json(ctx.terraform, workdir, project, planfile,
                                                             ctx.job_log(job.id))))
        ctx.state.save_plan(PlanRecord(
            repo=pull.repo.full_name, pull_number=pull.number, project=project,
            head_sha=pull.head_sha, planfile=str(planfile), summary=result.summary, job_id=job.id,
            changes=changes,
        ))
        phase, detail = ProjectPhase.PLANNED, result.summary.line
    else:
        ctx.state.delete_plans(pull.repo.full_name, pull.number, project)
        planfile.unlink(missing_ok=True)
        phase, detail = ProjectPhase.PLAN_FAILED, (result.error or "plan failed").splitlines()[0]
    ctx.state.set_project_state(pull.repo.full_name, pull.number, ProjectState(
        project=project, phase=phase, head_sha=pull.head_sha, job_id=job.id, detail=detail, updated_at=utcnow(),
    ))


def _post_plan_comment(job: Job, ctx: CommandContext, results: list[ProjectResult], notes: list[str]) -> None:
    pull = job.pull
    if ctx.settings.hide_prev_plan_comments:
        for node_id in ctx.state.take_comment_records(pull.repo.full_name, pull.number, "plan"):
            try:
                ctx.vcs.hide_comment(node_id, "OUTDATED")
            except Exception as error:  # hiding is cosmetic; the new plan must still be posted
                log.warning("could not hide an earlier plan comment: %s", error)
    body = render_plan_comment(results, command_prefix=ctx.settings.comment_prefix[0], head_sha=pull.head_sha)
    if notes:
        body = "\n".join(notes) + "\n\n" + body
    for part in split_comment(body):
        posted = ctx.vcs.post_comment(pull.repo, pull.number, part)
        if posted.node_id:
            ctx.state.add_comment_record(pull.repo.full_name, pull.number, "plan", posted.node_id)


def _set_summary_status(job: Job, ctx: CommandContext) -> CommandOutcome:
    """`atlas/plan` from the latest state of every project of the pull request at this head."""
    pull = job.pull
    states = [s for s in ctx.state.project_states(pull.repo.full_name, pull.number) if s.head_sha == pull.head_sha]
    planned = sum(1 for s in states if s.phase in (ProjectPhase.PLANNED, ProjectPhase.APPLIED))
    failed = sum(1 for s in states if s.phase in (ProjectPhase.PLAN_FAILED, ProjectPhase.APPLY_FAILED))
    waiting = [s for s in states if s.phase is ProjectPhase.WAITING]
    total = len(states)
    if waiting:
        holders = ", ".join(sorted({s.detail for s in waiting}))
        description = f"waiting for the lock held by {holders}; {planned}/{total} projects planned"
        set_status(job, ctx, CommitState.PENDING, description)
        return CommandOutcome(JobStatus.SUCCEEDED, description)
    description = f"{planned}/{total} projects planned" + (f", {failed} failed" if failed else "")
    set_status(job, ctx, CommitState.FAILURE if failed else CommitState.SUCCESS, description)
    return CommandOutcome(JobStatus.FAILED if failed else JobStatus.SUCCEEDED, description)


def set_status(job: Job, ctx: CommandContext, state: CommitState | str, description: str) -> None:
    ctx.vcs.set_status(job.pull.repo, job.pull.head_sha, CommitState(state), STATUS_CONTEXT, description)
