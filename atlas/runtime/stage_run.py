"""One stage of one project while it runs: its runner, log, files and environment, and how a step fails.

`StageRun` is what every step runner (`atlas.runtime.step_runners`) is handed; `StepFailed` is how
one ends the stage with a message for the comment.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from atlas.config.regex import go_pattern
from atlas.config.workflow import Step
from atlas.models import CommandName, PlanSummary, Project
from atlas.runtime.cancellation import CancelToken
from atlas.runtime.joblog import JobLog
from atlas.runtime.plan_output import apply_summary_from_output, clean_plan_output, summarise_plan
from atlas.runtime.sandbox import RunScope
from atlas.runtime.step_env import StageFiles, StepContext, run_step_environment
from atlas.runtime.terraform import RunResult, TerraformError, TerraformRunner
from atlas.runtime.tfcli import UnreadableOutput, plan_document, show_args

DEFAULT_WORKSPACE = "default"


PLAN_COMMANDS = frozenset({CommandName.PLAN, CommandName.AUTOPLAN})
"""Commands whose stage makes the project's saved plan (and so first removes the old one)."""


_REFRESHING = "Refreshing state..."


class StepFailed(Exception):
    """A step ended badly; the message says which step and why, ready for the comment.

    `output` is what the comment may show of the step (cleaned, or empty when the step's output is hidden).
    """

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(message)
        self.output = output


def check_file_arguments(
    arguments: Sequence[str], project_dir: Path, repo_root: Path, var_file_allowlist: Sequence[Path] = ()
) -> None:
    """StepFailed when a comment's `-var-file` (or `-backend-config` file) lies outside the repository.

    Terraform reads such a file and quotes its lines when they do not parse, so a comment naming
    `/etc/passwd` would get them posted back. Paths are taken relative to the project's directory,
    as terraform takes them, and followed through symbolic links in the checkout; besides the
    repository, only the operator's `--var-file-allowlist` directories are allowed.
    """
    root = repo_root.resolve()
    allowed = [root, *(Path(directory).resolve() for directory in var_file_allowlist)]
    for flag, value in _file_flags(arguments):
        target = (project_dir / value).resolve()
        if any(target == directory or target.is_relative_to(directory) for directory in allowed):
            continue
        where = "the repository" + (" or the server's --var-file-allowlist" if var_file_allowlist else "")
        raise StepFailed(
            f"`-{flag}={value}` names a file outside {where}, so atlas did not run terraform. Name a file "
            "inside the repository, relative to the project's directory"
            + (", or ask an administrator to add its directory to --var-file-allowlist." if not var_file_allowlist
               else "."))


def _file_flags(arguments: Sequence[str]) -> Iterator[tuple[str, str]]:
    """(flag, path) for each argument that makes terraform read a file: `-var-file`, `-backend-config=FILE`."""
    for index, argument in enumerate(arguments):
        name = flag_name(argument)
        if name not in ("var-file", "backend-config"):
            continue
        _, has_value, value = argument.partition("=")
        if not has_value:  # `-var-file PATH`, as Go's flag package also reads it
            value = arguments[index + 1] if index + 1 < len(arguments) else ""
        if name == "backend-config" and "=" in value:
            continue  # a key=value pair, not a file
        if value:
            yield name, value


def flag_name(argument: str) -> str | None:
    """`target` for `-target`, `--target=x`; None for what is not a flag."""
    if not argument.startswith("-"):
        return None
    return argument.lstrip("-").split("=", 1)[0]


REDACTED = "<redacted>"
"""What a run step's `filter_regex` match becomes in comments."""


def redact_matches(text: str, patterns: Sequence[str]) -> str:
    """`text` with each match of each pattern, in order, replaced by `<redacted>`.

    As in Atlantis, a pattern's first capturing group is kept in front of the marker, so
    `(secret:\\s")[^"]*` turns `secret: "foo"` into `secret: "<redacted>"`.
    """
    for pattern in patterns:
        compiled = go_pattern(pattern)
        if compiled.groups:
            text = compiled.sub(lambda found: (found.group(1) or "") + REDACTED, text)
        else:
            text = compiled.sub(REDACTED, text)
    return text


def strip_refreshing(text: str) -> str:
    """A run step's output without terraform's refresh chatter: what follows the last refresh line, cleaned."""
    lines = text.splitlines()
    last = max((index for index, line in enumerate(lines) if _REFRESHING in line), default=-1)
    return clean_plan_output("\n".join(lines[last + 1 :]))


class StageRun:
    """One run of a stage: what its steps share, the environment they build up and what they show."""

    def __init__(
        self,
        *,
        command: CommandName,
        runner: TerraformRunner,
        project: Project,
        files: StageFiles,
        log: JobLog,
        context: StepContext,
        cancel: CancelToken | None,
        comment_args: tuple[str, ...],
        positional: tuple[str, ...],
        env: dict[str, str],
        scope: RunScope,
    ) -> None:
        self.command = command
        self.runner = runner
        self.project = project
        self.files = files
        self.log = log
        self.context = context
        self.cancel = cancel
        self.comment_args = comment_args
        self.positional = positional
        self.env = env
        self.scope = scope
        self.step_env: dict[str, str] = {}
        self.outputs: list[str] = []
        self.summary: PlanSummary | None = None
        self.apply_output = ""
        self.repo_root = Path()
        self.project_dir = Path()

    @property
    def planfile(self) -> Path:
        return self.files.planfile

    def terraform_env(self) -> dict[str, str]:
        """What terraform steps get on top of the runner's environment."""
        return {**self.env, **self.step_env}

    def terraform(self, step: str, args: Sequence[str], *, echo: bool = True) -> RunResult:
        """Run `terraform <args>` in the project directory; a bad ending fails the stage, naming `step`."""
        result = self.runner.run(
            args, self.project_dir, self.log, env=self.terraform_env(), cancel=self.cancel, echo=echo,
            scope=self.scope,
        )
        if result.cancelled:
            raise StepFailed(f"terraform {step} was cancelled", clean_plan_output(result.output))
        if result.timed_out:
            raise StepFailed(
                f"terraform {step} timed out after {result.duration_seconds:.0f} seconds",
                clean_plan_output(result.output),
            )
        if result.exit_code != 0:
            raise StepFailed(
                f"terraform {step} failed (exit code {result.exit_code}):\n\n{diagnostics(result.output)}",
                clean_plan_output(result.output),
            )
        return result

    def shell(self, step: Step, *, echo: bool = True) -> RunResult:
        """Run a step's `command` with its shell in the project directory, with the run-step environment."""
        if not step.command:
            raise StepFailed(f"the {step.name} step has no command to run")
        return self.runner.run_program(
            [step.shell, *step.shell_args, step.command],
            self.project_dir,
            self.log,
            env=self.run_env(),
            cancel=self.cancel,
            echo=echo,
            scope=self.scope,
        )

    def run_env(self) -> dict[str, str]:
        """What `run`, `env` and `multienv` commands get on top of the runner's environment."""
        provided = run_step_environment(
            self.context, command=self.command.as_atlantis_names_it, project_dir=self.project_dir, files=self.files,
            terraform_version=self._terraform_version(),
        )
        # The scrubbing already dropped the server's ATLAS_* variables; these are added after it, so
        # none of them may carry a secret either.
        secrets = self.runner.secrets
        provided = {
            name: value for name, value in provided.items() if not any(secret in value for secret in secrets)
        }
        path = os.environ.get("PATH", os.defpath)
        terraform_dir = os.path.dirname(self.runner.binary)
        if terraform_dir and path.split(os.pathsep)[0] != terraform_dir:
            # First, so `terraform` in a run step is the project's terraform, not another on PATH.
            provided["PATH"] = f"{terraform_dir}{os.pathsep}{path}"
        return {**self.env, **provided, **self.step_env}

    def ensure_workspace(self) -> None:
        """Select (creating if needed) the project's workspace unless terraform is already in it."""
        if "TF_WORKSPACE" in self.runner.build_env(self.terraform_env()):
            return  # Set by the workflow or the server: terraform refuses `workspace select` then.
        environment = self.project_dir / ".terraform" / "environment"
        current = environment.read_text().strip() if environment.is_file() else DEFAULT_WORKSPACE
        workspace = self.project.workspace
        if (current or DEFAULT_WORKSPACE) == workspace:
            return
        if self._supports_select_or_create():
            self.terraform(
                "workspace select", ["workspace", "select", "-no-color", "-or-create=true", workspace]
            )
            return
        try:
            self.terraform("workspace select", ["workspace", "select", "-no-color", workspace])
        except StepFailed:
            self.terraform("workspace new", ["workspace", "new", "-no-color", workspace])

    def show_plan_json(self, args: Sequence[str] = ()) -> dict[str, Any]:
        """`terraform show -json PLANFILE`, written to SHOWFILE for later steps, as a document."""
        show = self.terraform("show", show_args(self.planfile, args), echo=False)
        try:
            document = plan_document(show.output)
        except UnreadableOutput:
            raise StepFailed("terraform show printed no JSON plan", clean_plan_output(show.output)) from None
        self.files.showfile.write_text(json.dumps(document), encoding="utf-8")
        return document

    def show(self, text: str) -> None:
        """Add a step's output to what the comment shows."""
        if text.strip():
            self.outputs.append(text)

    def finish(self) -> None:
        """Summarise what the stage did: the saved plan's changes, or the apply's counts."""
        if self.command in PLAN_COMMANDS and self.summary is None and self.planfile.is_file():
            # A workflow that plans with its own `run` step still gets its plan summarised.
            self.summary = summarise_plan(self.show_plan_json())
        if self.command is CommandName.APPLY and self.summary is None:
            self.summary = apply_summary_from_output(self.apply_output)

    def _terraform_version(self) -> str:
        if self.context.terraform_version:
            return self.context.terraform_version
        try:
            return self.runner.version()
        except TerraformError:
            return ""

    def _supports_select_or_create(self) -> bool:
        """`workspace select -or-create` exists from terraform 1.4."""
        try:
            version = self.runner.version()
        except TerraformError:
            return True
        numbers = tuple(int(part) for part in re.findall(r"\d+", version)[:2])
        return numbers >= (1, 4)


def diagnostics(output: str) -> str:
    """Terraform's error messages: the cleaned output from the first `Error:` on, or all of it."""
    cleaned = clean_plan_output(output)
    lines = cleaned.splitlines()
    for index, line in enumerate(lines):
        if line.lstrip("│ ").startswith("Error: "):
            return "\n".join(lines[index:]).strip() + "\n"
    return cleaned
