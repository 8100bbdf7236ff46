"""`plan` (and autoplan): plan the pull request's projects and report each on the pull request.

The path of one plan, in order: pending status → changed files → working copy at the head sha →
projects those files touch → terraform per project → the comment (split when long) → final status.
"""

from __future__ import annotations

import logging

from atlas.commands.outcome import CommandOutcome
from atlas.comments import render_plan_comment, split_comment
from atlas.context import CommandContext
from atlas.logs import job_context
from atlas.models import Job, JobStatus, PlanRecord, ProjectResult
from atlas.plans import plan_project
from atlas.projects import find_projects
from atlas.vcs import CommitState

log = logging.getLogger(__name__)

STATUS_CONTEXT = "atlas/plan"


def run(job: Job, ctx: CommandContext) -> CommandOutcome:
    pull = job.pull
    ctx.state.save_pull(pull)
    _set_status(job, ctx, CommitState.PENDING, "Planning…")
    joblog = ctx.job_log(job.id)

    changed = ctx.vcs.changed_files(pull)
    workdir = ctx.working_copies.checkout(pull.repo, pull.number, "default", pull.head_sha, ctx.token, log=joblog)
    matches = find_projects(workdir, changed)
    if not matches:
        description = "no Terraform projects changed"
        _set_status(job, ctx, CommitState.SUCCESS, description)
        return CommandOutcome(JobStatus.SUCCEEDED, description)

    results: list[ProjectResult] = []
    for match in matches:
        project = match.project
        project_dir = workdir
        if project.workspace != "default":
            project_dir = ctx.working_copies.checkout(
                pull.repo, pull.number, project.workspace, pull.head_sha, ctx.token, log=joblog
            )
        planfile = ctx.planfile(pull, project)
        with job_context(project=project.label):
            log.info("planning %s (%s)", project.label, match.reason)
            result = plan_project(ctx.terraform, project_dir, project, planfile, joblog)
        results.append(result)
        if result.ok and result.summary is not None:
            ctx.state.save_plan(PlanRecord(
                repo=pull.repo.full_name, pull_number=pull.number, project=project,
                head_sha=pull.head_sha, planfile=str(planfile), summary=result.summary, job_id=job.id,
            ))
        else:
            ctx.state.delete_plans(pull.repo.full_name, pull.number, project)
            planfile.unlink(missing_ok=True)

    body = render_plan_comment(results, command_prefix=ctx.settings.comment_prefix[0], head_sha=pull.head_sha)
    for part in split_comment(body):
        ctx.vcs.post_comment(pull.repo, pull.number, part)

    planned = sum(1 for r in results if r.ok)
    failed = len(results) - planned
    description = f"{planned}/{len(results)} projects planned" + (f", {failed} failed" if failed else "")
    state = CommitState.SUCCESS if failed == 0 else CommitState.FAILURE
    _set_status(job, ctx, state, description)
    return CommandOutcome(JobStatus.SUCCEEDED if failed == 0 else JobStatus.FAILED, description)


def set_failed_status(job: Job, ctx: CommandContext, reason: str) -> None:
    """Mark the plan status failed when the command could not run at all."""
    _set_status(job, ctx, CommitState.FAILURE, reason)


def _set_status(job: Job, ctx: CommandContext, state: CommitState, description: str) -> None:
    # GitHub truncates nothing: a status description over 140 characters is refused with 422.
    if len(description) > 140:
        description = description[:139] + "…"
    ctx.vcs.set_status(job.pull.repo, job.pull.head_sha, state, STATUS_CONTEXT, description)
