"""Running one stage (plan, apply, import, state rm) of one project, as its repository configures it."""

from __future__ import annotations

from pathlib import Path

from atlas.commands.context import CommandContext
from atlas.config.repo_settings import RepoSettings
from atlas.config.workflow import Stage
from atlas.logs import job_context
from atlas.models import CommandName, Distribution, Job, Project, ProjectResult, ProjectStatus
from atlas.runtime.cancellation import CancelToken
from atlas.runtime.joblog import JobLog
from atlas.runtime.steps import StepContext, run_stage
from atlas.runtime.terraform import TerraformError
from atlas.runtime.tfversions import TerraformVersionError
from atlas.vocabulary import BY_NAME


def run_project_stage(
    ctx: CommandContext,
    job: Job,
    repo: RepoSettings,
    project: Project,
    workdir: Path,
    planfile: Path,
    log: JobLog,
    cancel: CancelToken,
    *,
    command: CommandName | None = None,
    extra_args: tuple[str, ...] | None = None,
) -> ProjectResult:
    """The project's workflow stage for the command, with the terraform version it asks for."""
    command = command or job.command
    settings = repo.project(project)
    stage: Stage = getattr(settings.workflow, _stage_of(command))
    try:
        runner = ctx.runner_for(settings, workdir / project.dir)
    except TerraformVersionError as error:
        return ProjectResult(project=project, command=command, status=ProjectStatus.FAILED, error=str(error))
    try:
        version = runner.version()
    except TerraformError as error:
        what = (f"terraform version {settings.terraform_version!r}" if settings.terraform_version
                else f"{runner.distribution.display_name} ({runner.binary})")
        return ProjectResult(project=project, command=command, status=ProjectStatus.FAILED, error=f"{what}: {error}")
    context = StepContext.for_pull(job.pull, project, user_name=job.requested_by or job.pull.author,
                                   comment_args=job.args.extra_args, terraform_version=version)
    # Complete, not only the project: with parallel_plan this runs in a pool thread, which does not
    # inherit the job's logging context.
    with job_context(repo=job.pull.repo.full_name, pr=job.pull.number, job_id=job.id, project=project.label):
        result = run_stage(stage, command=command, runner=runner, workdir=workdir, project=project,
                           planfile=planfile, log=log, context=context, cancel=cancel,
                           extra_args=job.args.extra_args if extra_args is None else extra_args,
                           positional=job.args.positional,
                           var_file_allowlist=[Path(path) for path in ctx.settings.var_file_allowlist])
    if runner.distribution is Distribution.OPENTOFU:
        return result.model_copy(update={"tool": f"{runner.distribution.display_name} {version}"})
    return result


def _stage_of(command: CommandName) -> str:
    stage = BY_NAME[command].stage
    if stage is None:
        raise ValueError(f"{command} runs no workflow stage")
    return stage
