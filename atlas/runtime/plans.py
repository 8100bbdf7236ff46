"""Planning and applying one project with the default workflow, and turning terraform's output into what users read.

`plan_project` and `apply_project` run the default workflow's stages through `atlas.runtime.steps`;
`show_json` reads a saved plan as a document. What users read of the output is in `plan_output`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from atlas.config.workflow import DEFAULT_WORKFLOW, Stage, Step, StepName
from atlas.models import CommandName, Project, ProjectResult
from atlas.runtime.cancellation import CancelToken
from atlas.runtime.joblog import JobLog
from atlas.runtime.sandbox import RunScope
from atlas.runtime.steps import StageFiles, StepContext, run_stage
from atlas.runtime.terraform import TerraformRunner
from atlas.runtime.tfcli import UnreadableOutput, plan_document, show_args

_APPLY_STAGE = Stage(steps=(Step(name=StepName.INIT), *DEFAULT_WORKFLOW.apply.steps))
"""The default apply stage after an init, as atlas has always applied: the working copy may be a fresh checkout."""


def plan_project(
    runner: TerraformRunner,
    workdir: Path,
    project: Project,
    planfile: Path,
    log: JobLog,
    *,
    cancel: CancelToken | None = None,
    env: Mapping[str, str] | None = None,
    extra_args: Sequence[str] = (),
) -> ProjectResult:
    """Init, select the workspace, plan into `planfile` and summarise it: the default workflow's plan stage."""

    return run_stage(
        DEFAULT_WORKFLOW.plan,
        command=CommandName.PLAN,
        runner=runner,
        workdir=workdir,
        project=project,
        planfile=planfile,
        log=log,
        context=StepContext.for_project(project),
        cancel=cancel,
        extra_args=extra_args,
        env=env,
    )


def apply_project(
    runner: TerraformRunner,
    workdir: Path,
    project: Project,
    planfile: Path,
    log: JobLog,
    *,
    cancel: CancelToken | None = None,
    env: Mapping[str, str] | None = None,
) -> ProjectResult:
    """Init, select the workspace and apply exactly the saved `planfile`."""

    return run_stage(
        _APPLY_STAGE,
        command=CommandName.APPLY,
        runner=runner,
        workdir=workdir,
        project=project,
        planfile=planfile,
        log=log,
        context=StepContext.for_project(project),
        cancel=cancel,
        env=env,
    )


def show_json(
    runner: TerraformRunner, workdir: Path, project: Project, planfile: Path, joblog: JobLog,
) -> dict[str, Any]:
    """The structured plan the comparison reads: the plan stage's SHOWFILE, else `terraform show -json`."""
    showfile = StageFiles(planfile).showfile
    if showfile.exists() and planfile.exists() and showfile.stat().st_mtime >= planfile.stat().st_mtime:
        document: dict[str, Any] = json.loads(showfile.read_text(encoding="utf-8"))
        return document
    result = runner.run(show_args(planfile), workdir / project.dir, joblog, echo=False,
                        scope=RunScope(readable=(workdir, planfile)))
    if not result.ok:
        raise RuntimeError(f"terraform show -json failed: {result.output[-500:]}")
    try:
        return plan_document(result.output)
    except UnreadableOutput:
        raise RuntimeError(f"terraform show -json printed no JSON plan: {result.output[-500:]}") from None
