"""A closed pull request (merged or not): release its locks, delete its plans and working copies."""

from __future__ import annotations

import shutil

from atlas.commands.context import CommandContext
from atlas.commands.merge import apply_on_merge, projects_applying_on_merge, settings_at_merge
from atlas.commands.outcome import CommandOutcome
from atlas.commands.unlock import project_line, release_pull
from atlas.config.raw import ConfigError
from atlas.models import Job, JobStatus
from atlas.render.comments import render_error_comment
from atlas.runtime.cancellation import CancelToken


def run(job: Job, ctx: CommandContext, cancel: CancelToken) -> CommandOutcome:
    if job.merged and job.pull.merge_commit_sha:
        try:
            repo = settings_at_merge(ctx, job)
        except ConfigError as error:
            ctx.vcs.post_comment(job.pull.repo, job.pull.number, render_error_comment(
                "atlas could not read the merged repository's config, so it applied nothing and keeps this "
                "pull request's locks", f"{error}\n\nFix the config in a new pull request, then comment "
                "`atlas apply` here, or `atlas unlock` to give up."))
            return CommandOutcome(JobStatus.FAILED, str(error))
        applying = projects_applying_on_merge(ctx, job.pull, repo)
        if applying:
            return apply_on_merge(job, ctx, cancel, repo, applying)
    pull = job.pull
    released, plans, left = release_pull(ctx, job)
    shutil.rmtree(ctx.plans_dir(pull), ignore_errors=True)
    ctx.working_copies.remove_pull(pull.repo, pull.number)
    ctx.state.forget_pull(pull.repo.key, pull.number)
    ctx.state.save_pull(pull)
    projects = sorted(released | plans, key=lambda p: (p.dir, p.workspace))
    if projects or left:
        how = "merged" if job.merged else "closed"
        lines = [f"This pull request was {how}: atlas deleted its locks, plans and working copies."]
        if projects:
            lines += ["", *[f"- {project_line(p)}" for p in projects]]
        ctx.vcs.post_comment(pull.repo, pull.number, "\n".join(lines))
    return CommandOutcome(JobStatus.SUCCEEDED, f"released {len(released)} lock(s), deleted {len(plans)} plan(s)")
