"""Planning and applying one project: the terraform steps, and turning their output into what users read.

`plan_project` and `apply_project` run the steps through a `TerraformRunner`; `summarise_plan`,
`clean_plan_output` and `summary_line_from_output` are pure functions of terraform's output.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from atlas.joblog import JobLog
from atlas.models import CommandName, PlanSummary, Project, ProjectResult, ProjectStatus, ResourceChange
from atlas.terraform import CancelToken, RunResult, TerraformError, TerraformRunner

DEFAULT_WORKSPACE = "default"

_NOISE_LINE = re.compile(
    r"""^(
        .*:\ Refreshing\ state\.\.\.(\ \[.*\])?
      | .*:\ Reading\.\.\.
      | .*:\ Read\ complete\ after\ .*
      | .*:\ Still\ [a-z]+\.\.\.\ \[.*\]
      | (Acquiring|Releasing)\ state\ lock\.\ This\ may\ take\ a\ few\ moments\.\.\.
    )$""",
    re.VERBOSE,
)
_RULE_LINE = re.compile(r"^─+$")
_SUMMARY_LINE = re.compile(r"^(Plan: .*|No changes\..*|Apply complete! Resources: .*)$")
_APPLY_COMPLETE = re.compile(
    r"Apply complete! Resources: (?:(?P<imported>\d+) imported, )?(?P<added>\d+) added, "
    r"(?P<changed>\d+) changed, (?P<destroyed>\d+) destroyed\."
)


class StepFailed(Exception):
    """A terraform step ended badly; the message says which step and why, ready for the comment."""

    def __init__(self, message: str, output: str) -> None:
        super().__init__(message)
        self.output = output


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
    """Init, select the workspace, plan into `planfile` and summarise it from `terraform show -json`."""
    started = time.monotonic()
    log.section(f"plan {project.dir}/{project.workspace}")
    planfile = planfile.absolute()
    planfile.parent.mkdir(parents=True, exist_ok=True)
    # A plan that fails must not leave an older plan behind for apply to pick up.
    planfile.unlink(missing_ok=True)
    steps = _Steps(runner, log, cancel, env)
    try:
        project_dir = _project_dir(workdir, project)
        steps.prepare(project_dir, project.workspace)
        plan = steps.run(
            "plan", ["plan", "-input=false", "-no-color", f"-out={planfile}", *extra_args], project_dir
        )
        show = steps.run("show", ["show", "-json", str(planfile)], project_dir, echo=False)
        summary = summarise_plan(_parse_json(show.output))
    except StepFailed as failure:
        # Terraform saves even an errored plan; apply must find none.
        planfile.unlink(missing_ok=True)
        return _failed(project, CommandName.PLAN, failure, started)
    return ProjectResult(
        project=project,
        command=CommandName.PLAN,
        status=ProjectStatus.SUCCEEDED,
        output=clean_plan_output(plan.output),
        summary=summary,
        duration_seconds=time.monotonic() - started,
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
    started = time.monotonic()
    log.section(f"apply {project.dir}/{project.workspace}")
    planfile = planfile.absolute()
    steps = _Steps(runner, log, cancel, env)
    try:
        if not planfile.is_file():
            raise StepFailed(f"no saved plan for {project.label}: run plan again before applying", "")
        project_dir = _project_dir(workdir, project)
        steps.prepare(project_dir, project.workspace)
        apply = steps.run("apply", ["apply", "-input=false", "-no-color", str(planfile)], project_dir)
    except StepFailed as failure:
        return _failed(project, CommandName.APPLY, failure, started)
    return ProjectResult(
        project=project,
        command=CommandName.APPLY,
        status=ProjectStatus.SUCCEEDED,
        output=clean_plan_output(apply.output),
        summary=apply_summary_from_output(apply.output),
        duration_seconds=time.monotonic() - started,
    )


def summarise_plan(show_json: Mapping[str, Any]) -> PlanSummary:
    """The counts of `Plan: …` as terraform computes them, and the changes behind them.

    A replacement counts as one add and one destroy. A resource being imported appears in
    `changes` with `import` before its other actions (`("import",)` for an import alone).
    """
    summary = PlanSummary()
    for resource in show_json.get("resource_changes") or []:
        change = resource.get("change") or {}
        actions = tuple(str(action) for action in change.get("actions") or ())
        importing = change.get("importing") is not None
        effective = tuple(action for action in actions if action not in ("no-op", "read"))
        if resource.get("mode", "managed") != "managed" or not (effective or importing):
            continue
        if importing:
            summary.import_ += 1
        if "create" in effective:
            summary.add += 1
        if "delete" in effective:
            summary.destroy += 1
        if effective == ("update",):
            summary.change += 1
        address = str(resource.get("address", ""))
        if resource.get("deposed"):
            address = f"{address} (deposed object {resource['deposed']})"
        summary.changes.append(
            ResourceChange(address=address, actions=(("import",) if importing else ()) + effective)
        )
    return summary


def clean_plan_output(text: str) -> str:
    """Terraform's plan or apply output as users should read it in a comment.

    Drops the refresh and progress noise and the "Saved the plan to … terraform apply …" footer
    (atlas prints its own apply command); keeps the diff, `Plan:`/`No changes.`, output changes,
    warnings and errors.
    """
    kept: list[str] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index].rstrip()
        if _is_plan_footer(lines, index):
            index = _skip_plan_footer(lines, index)
            continue
        if not _NOISE_LINE.match(line) and (line or (kept and kept[-1])):
            kept.append(line)
        index += 1
    while kept and not kept[-1]:
        kept.pop()
    return "\n".join(kept) + "\n" if kept else ""


def summary_line_from_output(text: str) -> str | None:
    """The last `Plan: …`, `No changes. …` or `Apply complete! Resources: …` line of terraform's output."""
    found = None
    for line in text.splitlines():
        if _SUMMARY_LINE.match(line.strip()):
            found = line.strip()
    return found


def apply_summary_from_output(text: str) -> PlanSummary | None:
    """The counts of `Apply complete! Resources: N added, M changed, K destroyed.`, if printed."""
    matches = list(_APPLY_COMPLETE.finditer(text))
    if not matches:
        return None
    found = matches[-1]
    summary = PlanSummary(
        add=int(found["added"]), change=int(found["changed"]), destroy=int(found["destroyed"])
    )
    summary.import_ = int(found["imported"] or 0)
    return summary


class _Steps:
    """Runs one project's terraform steps, turning a bad ending into a `StepFailed` that names the step."""

    def __init__(
        self,
        runner: TerraformRunner,
        log: JobLog,
        cancel: CancelToken | None,
        env: Mapping[str, str] | None,
    ) -> None:
        self.runner = runner
        self.log = log
        self.cancel = cancel
        self.env = env

    def run(self, step: str, args: Sequence[str], cwd: Path, *, echo: bool = True) -> RunResult:
        result = self.runner.run(args, cwd, self.log, env=self.env, cancel=self.cancel, echo=echo)
        if result.cancelled:
            raise StepFailed(f"terraform {step} was cancelled", result.output)
        if result.timed_out:
            raise StepFailed(
                f"terraform {step} timed out after {result.duration_seconds:.0f} seconds", result.output
            )
        if result.exit_code != 0:
            raise StepFailed(
                f"terraform {step} failed (exit code {result.exit_code}):\n\n{_diagnostics(result.output)}",
                result.output,
            )
        return result

    def prepare(self, project_dir: Path, workspace: str) -> None:
        """`terraform init`, then select (creating if needed) `workspace`."""
        # Start init from the default workspace: a selected workspace whose state is gone would
        # make init ask a question that automation cannot answer.
        (project_dir / ".terraform" / "environment").unlink(missing_ok=True)
        self.run("init", ["init", "-input=false", "-no-color", "-upgrade=false"], project_dir)
        if workspace == DEFAULT_WORKSPACE:
            return
        if self._supports_select_or_create():
            self.run(
                "workspace select",
                ["workspace", "select", "-no-color", "-or-create=true", workspace],
                project_dir,
            )
            return
        try:
            self.run("workspace select", ["workspace", "select", "-no-color", workspace], project_dir)
        except StepFailed:
            self.run("workspace new", ["workspace", "new", "-no-color", workspace], project_dir)

    def _supports_select_or_create(self) -> bool:
        """`workspace select -or-create` exists from terraform 1.4."""
        try:
            version = self.runner.version()
        except TerraformError:
            return True
        numbers = tuple(int(part) for part in re.findall(r"\d+", version)[:2])
        return numbers >= (1, 4)


def _project_dir(workdir: Path, project: Project) -> Path:
    """The project's directory inside the working copy; a `dir` that leaves it is refused."""
    root = workdir.resolve()
    project_dir = (root / project.dir).resolve()
    if not project_dir.is_relative_to(root):
        raise StepFailed(f"project directory {project.dir!r} is outside the repository", "")
    if not project_dir.is_dir():
        raise StepFailed(f"project directory {project.dir!r} does not exist in this commit", "")
    return project_dir


def _parse_json(output: str) -> dict[str, Any]:
    """The JSON document in `show -json` output, even if terraform printed a warning around it."""
    for candidate in (output, *(line for line in output.splitlines() if line.startswith("{"))):
        try:
            document = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(document, dict):
            return document
    raise StepFailed("terraform show printed no JSON plan", output)


def _diagnostics(output: str) -> str:
    """Terraform's error messages: the cleaned output from the first `Error:` on, or all of it."""
    cleaned = clean_plan_output(output)
    lines = cleaned.splitlines()
    for index, line in enumerate(lines):
        if line.lstrip("│ ").startswith("Error: "):
            return "\n".join(lines[index:]).strip() + "\n"
    return cleaned


def _failed(project: Project, command: CommandName, failure: StepFailed, started: float) -> ProjectResult:
    return ProjectResult(
        project=project,
        command=command,
        status=ProjectStatus.FAILED,
        output=clean_plan_output(failure.output),
        error=str(failure),
        duration_seconds=time.monotonic() - started,
    )


def _is_plan_footer(lines: Sequence[str], index: int) -> bool:
    """Whether a "Saved the plan to:" footer (possibly after a ─── rule) starts at `index`."""
    line = lines[index].strip()
    if line.startswith("Saved the plan to:"):
        return True
    if _RULE_LINE.match(line):
        following = [text.strip() for text in lines[index + 1 :] if text.strip()]
        return bool(following) and following[0].startswith("Saved the plan to:")
    return False


def _skip_plan_footer(lines: Sequence[str], index: int) -> int:
    """The index just after the footer's `terraform apply …` line (or its end, if that is missing)."""
    for position in range(index, len(lines)):
        if lines[position].strip().startswith("terraform apply"):
            return position + 1
    return len(lines)
