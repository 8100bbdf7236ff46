"""Commands that only answer: `help`, `version`, and the refusal of a comment atlas will not run."""

from __future__ import annotations

from atlas import __version__
from atlas.commands.context import CommandContext
from atlas.commands.outcome import CommandOutcome
from atlas.models import Job, JobStatus
from atlas.render.comments import render_usage
from atlas.runtime.cancellation import CancelToken
from atlas.runtime.terraform import TerraformError


def help_(job: Job, ctx: CommandContext, cancel: CancelToken) -> CommandOutcome:
    settings = ctx.settings
    ctx.vcs.post_comment(job.pull.repo, job.pull.number,
                         render_usage(settings.comment_prefix[0], allowed=settings.allow_commands))
    return CommandOutcome(JobStatus.SUCCEEDED, "answered help")


def version(job: Job, ctx: CommandContext, cancel: CancelToken) -> CommandOutcome:
    try:
        terraform = f"terraform {ctx.terraform.version()}"
    except TerraformError as error:
        terraform = f"terraform unavailable ({error})"
    ctx.vcs.post_comment(job.pull.repo, job.pull.number, f"atlas {__version__}, {terraform}")
    return CommandOutcome(JobStatus.SUCCEEDED, "answered version")


def refuse(job: Job, ctx: CommandContext, cancel: CancelToken) -> CommandOutcome:
    ctx.vcs.post_comment(job.pull.repo, job.pull.number, job.message)
    return CommandOutcome(JobStatus.SUCCEEDED, "refused the comment")
