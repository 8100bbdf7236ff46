"""Running one stage of a project's workflow, step by step (one runner per step kind: `step_runners`).

A stage (`plan`, `apply`, `import`, `state_rm`) is a list of steps: terraform's own commands (`init`,
`plan`, `apply`, `show`, `import`, `state_rm`), commands of the repository's own (`run`), and steps
that set environment variables for the steps after them (`env`, `multienv`). The variables they set
reach later `run` steps and terraform alike.

`run` steps execute the pull request's own commands, so they get what terraform gets: the server's
environment without atlas's secrets, the same sandbox, timeout and stop on cancel; plus the
variables Atlantis documents for custom run steps (`WORKSPACE`, `PLANFILE`, `PULL_NUM`, …), each with
an `ATLAS_` twin.

Every step of a stage runs confined to the working copy and a directory of the stage's own, which
holds its `PLANFILE`, `SHOWFILE` and `POLICYCHECKFILE`: no step sees the saved plans and metadata of
other projects. When the stage ends, atlas moves what it made to where the plan is kept.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from atlas.config.workflow import Stage
from atlas.models import CommandName, Project, ProjectResult, ProjectStatus
from atlas.runtime.cancellation import CancelToken
from atlas.runtime.joblog import JobLog
from atlas.runtime.sandbox import RunScope
from atlas.runtime.stage_run import (
    DEFAULT_WORKSPACE,
    PLAN_COMMANDS,
    StageRun,
    StepFailed,
    check_file_arguments,
    strip_refreshing,
)
from atlas.runtime.step_env import StageFiles, StepContext, escape_comment_args, parse_multienv, run_step_environment
from atlas.runtime.step_runners import STEP_RUNNERS
from atlas.runtime.terraform import TerraformRunner

__all__ = [
    "DEFAULT_WORKSPACE", "PLAN_COMMANDS", "StageFiles", "StepContext", "StepFailed", "check_file_arguments",
    "escape_comment_args", "parse_multienv", "run_stage", "run_step_environment", "strip_refreshing",
]


def run_stage(
    stage: Stage,
    *,
    command: CommandName,
    runner: TerraformRunner,
    workdir: Path,
    project: Project,
    planfile: Path,
    log: JobLog,
    context: StepContext,
    cancel: CancelToken | None = None,
    extra_args: Sequence[str] = (),
    positional: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    var_file_allowlist: Sequence[Path] = (),
) -> ProjectResult:
    """Run `stage`'s steps in order for `project` in the working copy `workdir`; the first failure ends it.

    `extra_args` are the comment's terraform flags (after `--`), `positional` its arguments (import's
    ADDRESS ID, state rm's ADDRESS…), `env` variables every step gets. A comment's `-var-file` must
    name a file inside the repository or under `var_file_allowlist`. A plan stage removes the old
    `planfile` first and keeps only the plan of a stage that succeeded, so apply never finds a stale plan.
    """
    started = time.monotonic()
    log.section(f"{command.value} {project.dir}/{project.workspace}")
    planfile = planfile.absolute()
    planfile.parent.mkdir(parents=True, exist_ok=True)
    if command in PLAN_COMMANDS:
        planfile.unlink(missing_ok=True)
    with _stage_directory(planfile, command) as files:
        run = StageRun(
            command=command,
            runner=runner,
            project=project,
            files=files,
            log=log,
            context=context,
            cancel=cancel,
            comment_args=tuple(extra_args),
            positional=tuple(positional),
            env=dict(env or {}),
            scope=RunScope(writable=(workdir.absolute(), files.planfile.parent)),
        )
        try:
            if command is CommandName.APPLY and not planfile.is_file():
                raise StepFailed(f"no saved plan for {project.label}: run plan again before applying")
            run.repo_root, run.project_dir = workdir, _project_dir(workdir, project)
            check_file_arguments(run.comment_args, run.project_dir, workdir, var_file_allowlist)
            for step in stage.steps:
                if cancel is not None and cancel.cancelled:
                    raise StepFailed(f"{command.value} was cancelled before its {step.name} step")
                STEP_RUNNERS[step.name](run, step)
            run.finish()
        except StepFailed as failure:
            _bring_back(files, StageFiles(planfile), command, succeeded=False)
            return ProjectResult(
            project=project,
            command=command,
            status=ProjectStatus.FAILED,
            output=_joined([*run.outputs, failure.output]),
            error=str(failure),
            duration_seconds=time.monotonic() - started,
        )
        _bring_back(files, StageFiles(planfile), command, succeeded=True)
    return ProjectResult(
        project=project,
        command=command,
        status=ProjectStatus.SUCCEEDED,
        output=_joined(run.outputs),
        summary=run.summary,
        duration_seconds=time.monotonic() - started,
    )


@contextmanager
def _stage_directory(planfile: Path, command: CommandName) -> Iterator[StageFiles]:
    """The stage's files in a fresh directory beside `planfile`, holding a copy of the saved plan to apply."""
    directory = Path(tempfile.mkdtemp(prefix=f".{planfile.stem}.", suffix=".stage", dir=planfile.parent))
    staged = StageFiles(directory / planfile.name)
    try:
        if command not in PLAN_COMMANDS and planfile.is_file():
            shutil.copy2(planfile, staged.planfile)
        yield staged
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _bring_back(staged: StageFiles, kept: StageFiles, command: CommandName, *, succeeded: bool) -> None:
    """Move what a stage made to where its files are kept.

    A plan stage's plan is kept only when the stage succeeded (terraform saves even an errored plan,
    and apply must find none); a stage that removed its copy of the plan (import, state rm) removes
    the kept plan too, since it no longer matches the state.
    """
    if command in PLAN_COMMANDS:
        if succeeded and staged.planfile.is_file():
            os.replace(staged.planfile, kept.planfile)
    elif not staged.planfile.exists():
        kept.planfile.unlink(missing_ok=True)
    if succeeded:
        for made, destination in zip(staged.all[1:], kept.all[1:], strict=True):
            if made.is_file():
                os.replace(made, destination)


def _project_dir(workdir: Path, project: Project) -> Path:
    """The project's directory inside the working copy; a `dir` that leaves it is refused."""
    root = workdir.resolve()
    project_dir = (root / project.dir).resolve()
    if not project_dir.is_relative_to(root):
        raise StepFailed(f"project directory {project.dir!r} is outside the repository")
    if not project_dir.is_dir():
        raise StepFailed(f"project directory {project.dir!r} does not exist in this commit")
    return project_dir


def _joined(outputs: Iterable[str]) -> str:
    """The shown outputs of a stage's steps, one after another, a blank line apart."""
    pieces = [text.rstrip("\n") for text in outputs if text.strip()]
    return "\n\n".join(pieces) + "\n" if pieces else ""
