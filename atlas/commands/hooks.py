"""Pre- and post-workflow hooks from repos.yaml: commands run in the clone around each command.

Their output goes to the job log, and each hook has a commit status, `atlas/pre_workflow_hook:
DESCRIPTION` (or `post_`), pending while it runs and then success or failure; what the hook writes
to the file `$OUTPUT_STATUS_FILE` names becomes that status's description, as in Atlantis. A
failing hook is reported on the pull request; a failing pre-workflow hook stops the command only
with `--fail-on-pre-workflow-hook-error` (Atlantis's default is to go on). They run the pull
request's checkout, so they run in the sandbox terraform runs in, with only the working copy writable.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from atlas.commands.context import CommandContext
from atlas.config.server import WorkflowHook
from atlas.models import CommandName, Job
from atlas.render.comments import render_error_comment
from atlas.runtime.joblog import JobLog
from atlas.runtime.sandbox import RunScope
from atlas.vcs import CommitState, VCSError

logger = logging.getLogger(__name__)

STATUS_FILE_NAME = ".atlas-hook-status"
"""Where, in the working copy, a hook finds `$OUTPUT_STATUS_FILE`: the one place it may write."""
STATUS_DESCRIPTION_LIMIT = 140


def run_hooks(ctx: CommandContext, job: Job, hooks: Sequence[WorkflowHook], workdir: Path, log: JobLog,
              *, when: str) -> bool:
    """Run the hooks that apply to this command; False when the command must stop.

    That is when a pre-workflow hook failed and `--fail-on-pre-workflow-hook-error` is set.
    """
    pull = job.pull
    command = CommandName(job.command).as_atlantis_names_it
    status_file = workdir / STATUS_FILE_NAME
    env = {
        "BASE_REPO_NAME": pull.repo.name, "BASE_REPO_OWNER": pull.repo.owner,
        "HEAD_BRANCH_NAME": pull.head_ref, "HEAD_COMMIT": pull.head_sha, "BASE_BRANCH_NAME": pull.base_ref,
        "PULL_NUM": str(pull.number), "PULL_URL": pull.html_url, "PULL_AUTHOR": pull.author,
        "DIR": str(workdir), "USER_NAME": job.requested_by or "", "COMMAND_NAME": command,
        "OUTPUT_STATUS_FILE": str(status_file),
    }
    stops = when == "pre" and ctx.settings.fail_on_pre_workflow_hook_error
    for number, hook in enumerate(hooks):
        if not hook.runs_for(command):
            continue
        name = hook.description or f"{when.capitalize()} workflow hook #{number}"
        context = f"atlas/{when}_workflow_hook: {name}"
        _set_status(ctx, job, CommitState.PENDING, context, "in progress…")
        status_file.unlink(missing_ok=True)
        log.section(f"{when}-workflow hook: {hook.description or hook.run}")
        result = ctx.terraform.run_program([hook.shell, *hook.shell_args, hook.run], workdir, log, env=env,
                                           scope=RunScope(writable=(workdir,)))
        described = _take_status_file(status_file)
        if result.ok:
            _set_status(ctx, job, CommitState.SUCCESS, context, described or "succeeded")
            continue
        _set_status(ctx, job, CommitState.FAILURE, context, described or f"failed (exit code {result.exit_code})")
        title = (f"atlas's {when}-workflow hook `{hook.description or hook.run}` failed "
                 f"(exit code {result.exit_code})")
        if stops:
            title += ", so atlas stopped (`--fail-on-pre-workflow-hook-error`)"
        elif when == "pre":
            title += "; atlas went on with the command"
        ctx.vcs.post_comment(pull.repo, pull.number, render_error_comment(
            title, result.output[-3000:] or "it printed nothing"))
        if stops:
            return False
    return True


def _take_status_file(path: Path) -> str:
    """What a hook wrote to `$OUTPUT_STATUS_FILE`, trimmed to a status description; the file is removed."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
    except OSError:
        text = ""
    path.unlink(missing_ok=True)
    text = " ".join(text.split())
    return text[:STATUS_DESCRIPTION_LIMIT]


def _set_status(ctx: CommandContext, job: Job, state: CommitState, context: str, description: str) -> None:
    try:
        ctx.vcs.set_status(job.pull.repo, job.pull.head_sha, state, context, description,
                           target_url=ctx.job_url(job.id), number=job.pull.number)
    except VCSError as error:  # a hook's status is information; the command does not depend on it
        logger.warning("could not set the status %s on %s: %s", context, job.pull.key, error)
