"""Pre- and post-workflow hooks from repos.yaml: commands run in the clone around each command.

Their output goes to the job log. A failing pre-workflow hook stops the command, and a failing
post-workflow hook is reported; both say so on the pull request. They run the pull request's
checkout, so they run in the sandbox terraform runs in, with only the working copy writable.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from atlas.commands.context import CommandContext
from atlas.config.server import WorkflowHook
from atlas.models import Job
from atlas.render.comments import render_error_comment
from atlas.runtime.joblog import JobLog
from atlas.runtime.sandbox import RunScope


def run_hooks(ctx: CommandContext, job: Job, hooks: Sequence[WorkflowHook], workdir: Path, log: JobLog,
              *, when: str) -> bool:
    """Run the hooks that apply to this command; False (after commenting) when one failed."""
    pull = job.pull
    env = {
        "BASE_REPO_NAME": pull.repo.name, "BASE_REPO_OWNER": pull.repo.owner,
        "HEAD_BRANCH_NAME": pull.head_ref, "HEAD_COMMIT": pull.head_sha, "BASE_BRANCH_NAME": pull.base_ref,
        "PULL_NUM": str(pull.number), "PULL_URL": pull.html_url, "PULL_AUTHOR": pull.author,
        "DIR": str(workdir), "USER_NAME": job.requested_by or "", "COMMAND_NAME": str(job.command),
    }
    for hook in hooks:
        if not hook.runs_for(str(job.command)):
            continue
        log.section(f"{when}-workflow hook: {hook.description or hook.run}")
        result = ctx.terraform.run_program([hook.shell, *hook.shell_args, hook.run], workdir, log, env=env,
                                           scope=RunScope(writable=(workdir,)))
        if not result.ok:
            ctx.vcs.post_comment(pull.repo, pull.number, render_error_comment(
                f"atlas's {when}-workflow hook `{hook.description or hook.run}` failed "
                f"(exit code {result.exit_code})", result.output[-3000:] or "it printed nothing"))
            return False
    return True
