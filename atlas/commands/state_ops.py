"""`atlas import ADDRESS ID` and `atlas state rm ADDRESS...`: change a project's state from the pull request.

Both run their workflow stage (`import`, `state_rm`) in the pull request's working copy, under the
project's lock, and discard the project's plan afterwards, since the state it was made against
changed: the comment says so and how to plan again.
"""

from __future__ import annotations

from atlas.commands.context import CommandContext
from atlas.commands.locking import lock_holder_text
from atlas.commands.outcome import CommandOutcome
from atlas.commands.plan import projects_to_plan
from atlas.commands.project_run import run_project_stage
from atlas.commands.reactions import react_for_repository
from atlas.commands.requirements import unmet
from atlas.config.raw import ConfigError
from atlas.config.repo_settings import load_repo_settings
from atlas.intake.comment_parser import CommentError
from atlas.models import CommandName, Job, JobStatus
from atlas.render.comments import fence_for, render_error_comment
from atlas.runtime.cancellation import CancelToken

TITLES = {CommandName.IMPORT: "Import", CommandName.STATE_RM: "State rm"}


def run(job: Job, ctx: CommandContext, cancel: CancelToken) -> CommandOutcome:
    pull, prefix = job.pull, ctx.settings.comment_prefix[0]
    joblog = ctx.job_log(job.id)
    workdir = ctx.working_copies.checkout(pull.repo, pull.number, "default", pull.head_sha,
                                          ctx.token_for(pull.repo), log=joblog)
    try:
        repo = load_repo_settings(ctx, pull, workdir)
        react_for_repository(job, ctx, repo)
        matches = projects_to_plan(job, ctx, repo, workdir)
        if len(matches) != 1:
            raise CommentError(f"`{prefix} {job.command.replace('_', ' ')}` changes one project's state: name it "
                               f"with `-d DIR` (and `-w WORKSPACE`) or `-p PROJECT`.")
    except (ConfigError, CommentError) as error:
        message = error.message if isinstance(error, CommentError) else str(error)
        ctx.vcs.post_comment(pull.repo, pull.number, render_error_comment(f"atlas did not run {job.command}", message))
        return CommandOutcome(JobStatus.FAILED, message)
    project = matches[0].project
    problems = unmet(ctx, pull, repo.project(project).import_requirements) if job.command is CommandName.IMPORT else []
    if problems:
        listed = "\n".join(f"- {p}" for p in problems)
        ctx.vcs.post_comment(pull.repo, pull.number, render_error_comment(
            "atlas did not import", f"This repository requires, before import:\n\n{listed}"))
        return CommandOutcome(JobStatus.SUCCEEDED, "refused: import requirements")
    attempt = ctx.locks.acquire(pull, [project], job.requested_by or pull.author, job_id=job.id)
    if attempt.conflicts:
        holder = attempt.conflicts[0]
        ctx.vcs.post_comment(pull.repo, pull.number, render_error_comment(
            f"atlas did not run {job.command}",
            f"dir `{project.dir}` workspace `{project.workspace}` is locked by {lock_holder_text(holder)}."))
        return CommandOutcome(JobStatus.SUCCEEDED, "refused: locked")

    project_dir = ctx.working_copies.checkout(pull.repo, pull.number, project.workspace, pull.head_sha,
                                              ctx.token_for(pull.repo),
                                              log=joblog)
    result = run_project_stage(ctx, job, repo, project, project_dir, ctx.planfile(pull, project), joblog, cancel)
    discarded = ctx.forget_plans(pull.repo.key, pull.number, project)
    output = result.output.strip() or result.error or ""
    fence = fence_for(output)
    lines = [f"Ran {TITLES[job.command]} for dir: `{project.dir}` workspace: `{project.workspace}`", "",
             f"{fence}\n{output}\n{fence}", ""]
    if result.ok:
        lines.append(("The plan of this project was discarded, because the state it was made against changed. "
                      if discarded else "") + f"To plan again, comment `{prefix} plan -d {project.dir}`.")
    else:
        reason = result.error.splitlines()[0] if result.error else "terraform failed"
        lines.insert(0, f"**{TITLES[job.command]} Failed**: {reason}\n")
    ctx.vcs.post_comment(pull.repo, pull.number, "\n".join(lines))
    return CommandOutcome(JobStatus.SUCCEEDED if result.ok else JobStatus.FAILED,
                          f"{job.command} {'succeeded' if result.ok else 'failed'} in {project.label}")
