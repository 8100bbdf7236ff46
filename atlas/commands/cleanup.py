"""A closed pull request: delete its working copies and stored plans."""

from __future__ import annotations

import shutil
from pathlib import Path

from atlas.commands.outcome import CommandOutcome
from atlas.context import CommandContext
from atlas.models import Job, JobStatus


def run(job: Job, ctx: CommandContext) -> CommandOutcome:
    pull = job.pull
    removed = ctx.state.delete_plans(pull.repo.full_name, pull.number)
    for plan in removed:
        Path(plan.planfile).unlink(missing_ok=True)
    shutil.rmtree(ctx.plans_dir(pull), ignore_errors=True)
    ctx.working_copies.remove_pull(pull.repo.full_name, pull.number)
    ctx.state.save_pull(pull)
    return CommandOutcome(JobStatus.SUCCEEDED, f"deleted {len(removed)} plan(s) and the working copies")
