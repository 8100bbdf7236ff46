"""Running one stage of a project's workflow, step by step, one small runner per step kind (as Atlantis does).

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

import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from atlas.config.workflow import Stage, Step, StepName
from atlas.models import CommandName, PlanSummary, Project, ProjectResult, ProjectStatus, PullRequest
from atlas.runtime.cancellation import CancelToken
from atlas.runtime.joblog import JobLog
from atlas.runtime.plan_output import apply_summary_from_output, clean_plan_output, summarise_plan
from atlas.runtime.sandbox import RunScope
from atlas.runtime.terraform import RunResult, TerraformError, TerraformRunner
from atlas.runtime.tfcli import UnreadableOutput, plan_document, show_args

DEFAULT_WORKSPACE = "default"

PLAN_COMMANDS = frozenset({CommandName.PLAN, CommandName.AUTOPLAN})
"""Commands whose stage makes the project's saved plan (and so first removes the old one)."""

_REFRESHING = "Refreshing state..."
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class StepFailed(Exception):
    """A step ended badly; the message says which step and why, ready for the comment.

    `output` is what the comment may show of the step (cleaned, or empty when the step's output is hidden).
    """

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(message)
        self.output = output


@dataclass(frozen=True)
class StepContext:
    """What a `run` step's environment is built from: the project, its pull request and who asked."""

    workspace: str
    dir: str
    project_name: str | None = None
    pull_number: int = 0
    pull_author: str = ""
    head_commit: str = ""
    base_branch: str = ""
    head_branch: str = ""
    user_name: str = ""
    comment_args: tuple[str, ...] = ()
    repo_full_name: str = ""
    repo_owner: str = ""
    repo_name: str = ""
    terraform_version: str = ""
    """Empty means the runner's terraform version, asked when a `run` step first needs it."""
    pull_url: str = ""
    head_repo_owner: str = ""
    """Empty means the base repository's (a pull request from a branch of the same repository)."""
    head_repo_name: str = ""
    pull_approved: bool | None = None
    """None when atlas did not look; the variable is then left unset rather than guessed."""
    pull_mergeable: bool | None = None

    @classmethod
    def for_project(cls, project: Project) -> StepContext:
        """A context with no pull request behind it, for stages that run only terraform's own steps."""
        return cls(workspace=project.workspace, dir=project.dir, project_name=project.name)

    @classmethod
    def for_pull(
        cls,
        pull: PullRequest,
        project: Project,
        *,
        user_name: str,
        comment_args: Sequence[str] = (),
        terraform_version: str = "",
        approved: bool | None = None,
        mergeable: bool | None = None,
    ) -> StepContext:
        """The context of `project` planned or applied for `pull` at the request of `user_name`."""
        head_owner, head_name = pull.repo.owner, pull.repo.name
        if pull.is_fork and pull.head_clone_url:
            parts = urlparse(pull.head_clone_url).path.strip("/").removesuffix(".git").split("/")
            if len(parts) >= 2:
                head_owner, head_name = parts[-2], parts[-1]
        return cls(
            workspace=project.workspace,
            dir=project.dir,
            project_name=project.name,
            pull_number=pull.number,
            pull_author=pull.author,
            head_commit=pull.head_sha,
            base_branch=pull.base_ref,
            head_branch=pull.head_ref,
            user_name=user_name,
            comment_args=tuple(comment_args),
            repo_full_name=pull.repo.full_name,
            repo_owner=pull.repo.owner,
            repo_name=pull.repo.name,
            terraform_version=terraform_version,
            pull_url=pull.html_url,
            head_repo_owner=head_owner,
            head_repo_name=head_name,
            pull_approved=approved,
            pull_mergeable=mergeable,
        )


@dataclass(frozen=True)
class StageFiles:
    """Where a stage's files are: the saved plan, its JSON (`SHOWFILE`) and policy output (`POLICYCHECKFILE`)."""

    planfile: Path

    @property
    def showfile(self) -> Path:
        return self.planfile.with_name(f"{self.planfile.stem}.show.json")

    @property
    def policycheckfile(self) -> Path:
        return self.planfile.with_name(f"{self.planfile.stem}.policycheck.json")

    @property
    def all(self) -> tuple[Path, Path, Path]:
        return self.planfile, self.showfile, self.policycheckfile


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
        run = _StageRun(
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
                _STEP_RUNNERS[step.name](run, step)
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
        name = _flag_name(argument)
        if name not in ("var-file", "backend-config"):
            continue
        _, has_value, value = argument.partition("=")
        if not has_value:  # `-var-file PATH`, as Go's flag package also reads it
            value = arguments[index + 1] if index + 1 < len(arguments) else ""
        if name == "backend-config" and "=" in value:
            continue  # a key=value pair, not a file
        if value:
            yield name, value


def run_step_environment(
    context: StepContext, *, project_dir: Path, files: StageFiles, terraform_version: str
) -> dict[str, str]:
    """The variables Atlantis documents for custom run steps, each also under an `ATLAS_` name."""
    variables = {
        "WORKSPACE": context.workspace,
        "ATLANTIS_TERRAFORM_VERSION": terraform_version,
        "DIR": str(project_dir),
        "PLANFILE": str(files.planfile),
        "SHOWFILE": str(files.showfile),
        "POLICYCHECKFILE": str(files.policycheckfile),
        "BASE_REPO_NAME": context.repo_name,
        "BASE_REPO_OWNER": context.repo_owner,
        "HEAD_REPO_NAME": context.head_repo_name or context.repo_name,
        "HEAD_REPO_OWNER": context.head_repo_owner or context.repo_owner,
        "HEAD_BRANCH_NAME": context.head_branch,
        "HEAD_COMMIT": context.head_commit,
        "BASE_BRANCH_NAME": context.base_branch,
        "PROJECT_NAME": context.project_name or "",
        "PULL_NUM": str(context.pull_number),
        "PULL_URL": context.pull_url,
        "PULL_AUTHOR": context.pull_author,
        "REPO_REL_DIR": context.dir,
        "USER_NAME": context.user_name,
        "COMMENT_ARGS": escape_comment_args(context.comment_args),
    }
    if context.pull_approved is not None:
        variables["ATLANTIS_PR_APPROVED"] = str(context.pull_approved).lower()
    if context.pull_mergeable is not None:
        variables["ATLANTIS_PR_MERGEABLE"] = str(context.pull_mergeable).lower()
    twins = {_atlas_twin(name): value for name, value in variables.items()}
    return {**variables, **twins}


def escape_comment_args(args: Iterable[str]) -> str:
    """`COMMENT_ARGS` as Atlantis writes it: every character backslash-escaped, arguments joined by commas."""
    return ",".join("".join(f"\\{character}" for character in arg) for arg in args)


def parse_multienv(output: str) -> dict[str, str]:
    """The `NAME=value` pairs a multienv command printed, separated by commas or newlines.

    A value may be quoted (`NAME="a,b"`, `NAME='a b'`) to hold separators; in double quotes a
    backslash escapes the next character. Raises ValueError naming the problem, never a value.
    """
    pairs: dict[str, str] = {}
    text = output.strip()
    index = 0
    while index < len(text):
        if text[index] in ",\n\r \t":
            index += 1
            continue
        equals = text.find("=", index)
        name = text[index:equals] if equals >= 0 else ""
        if not _VARIABLE_NAME.fullmatch(name):
            # The text itself is not quoted back: it may be a value, and values are often credentials.
            raise ValueError(f"item {len(pairs) + 1} is not NAME=value")
        value, index = _multienv_value(text, equals + 1, name)
        pairs[name] = value
    return pairs


def strip_refreshing(text: str) -> str:
    """A run step's output without terraform's refresh chatter: what follows the last refresh line, cleaned."""
    lines = text.splitlines()
    last = max((index for index, line in enumerate(lines) if _REFRESHING in line), default=-1)
    return clean_plan_output("\n".join(lines[last + 1 :]))


class _StageRun:
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
                f"terraform {step} failed (exit code {result.exit_code}):\n\n{_diagnostics(result.output)}",
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
            self.context, project_dir=self.project_dir, files=self.files, terraform_version=self._terraform_version()
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


# --- one runner per step kind --------------------------------------------------------------------


def _init(run: _StageRun, step: Step) -> None:
    """`terraform init`, then the project's workspace; its output is shown only if it fails."""
    # Start init from the default workspace: a selected workspace whose state is gone would make
    # init ask a question that automation cannot answer.
    (run.project_dir / ".terraform" / "environment").unlink(missing_ok=True)
    run.terraform("init", ["init", "-input=false", "-no-color", "-upgrade=false", *step.extra_args])
    run.ensure_workspace()


def _plan(run: _StageRun, step: Step) -> None:
    """`terraform plan -out=PLANFILE` with the step's and the comment's flags, and `env/WORKSPACE.tfvars`."""
    run.ensure_workspace()
    var_file = Path("env") / f"{run.project.workspace}.tfvars"
    var_file_args = [f"-var-file={var_file}"] if (run.project_dir / var_file).is_file() else []
    # The workspace's own var file comes from the pull request too: a link out of the repository is refused.
    check_file_arguments(var_file_args, run.project_dir, run.repo_root)
    plan = run.terraform(
        "plan",
        [
            "plan",
            "-input=false",
            "-no-color",
            f"-out={run.planfile}",
            *step.extra_args,
            *run.comment_args,
            *var_file_args,
        ],
    )
    run.show(clean_plan_output(plan.output))
    run.summary = summarise_plan(run.show_plan_json())


def _apply(run: _StageRun, step: Step) -> None:
    """`terraform apply` of exactly the saved plan."""
    if not run.planfile.is_file():
        raise StepFailed(f"no saved plan for {run.project.label}: run plan again before applying")
    flags = [*step.extra_args, *run.comment_args]
    if any(_flag_name(flag) == "target" for flag in flags):
        raise StepFailed(
            "apply cannot take -target: it applies the saved plan as it is. Plan with -target instead."
        )
    run.ensure_workspace()
    apply = run.terraform("apply", ["apply", "-input=false", "-no-color", *flags, str(run.planfile)])
    run.apply_output += apply.output
    run.show(clean_plan_output(apply.output))


def _show(run: _StageRun, step: Step) -> None:
    """`terraform show -json PLANFILE` into SHOWFILE, for policy tools in later steps; nothing is shown."""
    if not run.planfile.is_file():
        raise StepFailed(f"no saved plan to show for {run.project.label}: run plan first")
    document = run.show_plan_json(step.extra_args)
    if run.command in PLAN_COMMANDS and run.summary is None:
        run.summary = summarise_plan(document)


def _import(run: _StageRun, step: Step) -> None:
    """`terraform import … ADDRESS ID`; the saved plan no longer matches the state, so it is removed."""
    run.ensure_workspace()
    imported = run.terraform(
        "import", ["import", "-input=false", "-no-color", *step.extra_args, *run.comment_args, *run.positional]
    )
    run.show(clean_plan_output(imported.output))
    run.planfile.unlink(missing_ok=True)


def _state_rm(run: _StageRun, step: Step) -> None:
    """`terraform state rm … ADDRESS…`; the saved plan no longer matches the state, so it is removed."""
    run.ensure_workspace()
    removed = run.terraform(
        "state rm", ["state", "rm", "-no-color", *step.extra_args, *run.comment_args, *run.positional]
    )
    run.show(clean_plan_output(removed.output))
    run.planfile.unlink(missing_ok=True)


def _policy_check(run: _StageRun, step: Step) -> None:
    raise StepFailed(
        "policy_check steps are not supported by atlas (Atlantis runs them with conftest). "
        "Use a `run` step that checks $SHOWFILE with your policy tool instead."
    )


def _run(run: _StageRun, step: Step) -> None:
    """The repository's own command; its output is shown, hidden, or stripped of refresh lines."""
    result = run.shell(step)
    text = _ANSI_ESCAPE.sub("", result.output)
    if step.output == "hide":
        text = ""
    elif step.output == "strip_refreshing":
        text = strip_refreshing(text)
    label = _command_label(step.command or "")
    if result.cancelled:
        raise StepFailed(f"run step {label} was cancelled", text)
    if result.timed_out:
        raise StepFailed(f"run step {label} timed out after {result.duration_seconds:.0f} seconds", text)
    if result.exit_code != 0:
        shown = text.strip() or "(its output is hidden from comments; see the job log)"
        raise StepFailed(f"run step {label} failed (exit code {result.exit_code}):\n\n{shown}\n", text)
    run.apply_output += result.output
    run.show(text)


def _env(run: _StageRun, step: Step) -> None:
    """Set one variable for the steps after it, to `value` or to what `command` prints."""
    if not step.env_name:
        raise StepFailed("an env step needs a name")
    if step.env_value is not None:
        value = step.env_value
    else:
        # Not echoed: such commands often fetch credentials.
        result = run.shell(step, echo=False)
        if not result.ok:
            raise StepFailed(
                f"env step {step.env_name}: {_command_label(step.command or '')} {_ending(result)}",
                _ANSI_ESCAPE.sub("", result.output),
            )
        value = result.output.strip()
    run.step_env[step.env_name] = value
    run.log.write(f"atlas: env step set {step.env_name}")


def _multienv(run: _StageRun, step: Step) -> None:
    """Set the variables `command` prints as `NAME=value` pairs; the comment names them, never their values."""
    label = _command_label(step.command or "")
    result = run.shell(step, echo=False)
    if not result.ok:
        raise StepFailed(f"multienv step {label} {_ending(result)}", _ANSI_ESCAPE.sub("", result.output))
    try:
        variables = parse_multienv(result.output)
    except ValueError as error:
        raise StepFailed(f"multienv step {label} printed an invalid variable definition: {error}") from None
    run.step_env.update(variables)
    names = ", ".join(variables) or "none"
    run.log.write(f"atlas: multienv step set {names}")
    if step.output != "hide":
        run.show(f"multienv set: {names}\n")


_STEP_RUNNERS: dict[StepName, Callable[[_StageRun, Step], None]] = {
    StepName.INIT: _init,
    StepName.PLAN: _plan,
    StepName.APPLY: _apply,
    StepName.SHOW: _show,
    StepName.IMPORT: _import,
    StepName.STATE_RM: _state_rm,
    StepName.POLICY_CHECK: _policy_check,
    StepName.RUN: _run,
    StepName.ENV: _env,
    StepName.MULTIENV: _multienv,
}


# --- helpers -------------------------------------------------------------------------------------


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


def _diagnostics(output: str) -> str:
    """Terraform's error messages: the cleaned output from the first `Error:` on, or all of it."""
    cleaned = clean_plan_output(output)
    lines = cleaned.splitlines()
    for index, line in enumerate(lines):
        if line.lstrip("│ ").startswith("Error: "):
            return "\n".join(lines[index:]).strip() + "\n"
    return cleaned


def _joined(outputs: Iterable[str]) -> str:
    """The shown outputs of a stage's steps, one after another, a blank line apart."""
    pieces = [text.rstrip("\n") for text in outputs if text.strip()]
    return "\n\n".join(pieces) + "\n" if pieces else ""


def _atlas_twin(name: str) -> str:
    return f"ATLAS_{name.removeprefix('ATLANTIS_')}"


def _flag_name(argument: str) -> str | None:
    """`target` for `-target`, `--target=x`; None for what is not a flag."""
    if not argument.startswith("-"):
        return None
    return argument.lstrip("-").split("=", 1)[0]


def _command_label(command: str) -> str:
    """A command as an error message names it: its first line, in backticks."""
    lines = command.strip().splitlines() or [""]
    first = lines[0] if len(lines[0]) <= 80 else f"{lines[0][:77]}..."
    return f"`{first}{' …' if len(lines) > 1 else ''}`"


def _ending(result: RunResult) -> str:
    if result.cancelled:
        return "was cancelled"
    if result.timed_out:
        return f"timed out after {result.duration_seconds:.0f} seconds"
    return f"failed (exit code {result.exit_code})"


def _multienv_value(text: str, index: int, name: str) -> tuple[str, int]:
    """The value starting at `index` and the index just after it (and after its separator)."""
    quote = text[index] if index < len(text) and text[index] in "\"'" else ""
    if not quote:
        end = len(text)
        for separator in ",\n":
            found = text.find(separator, index)
            if found >= 0:
                end = min(end, found)
        return text[index:end].strip(), end + 1
    value: list[str] = []
    position = index + 1
    while position < len(text):
        character = text[position]
        if character == quote:
            rest = position + 1
            while rest < len(text) and text[rest] in " \t\r":
                rest += 1
            if rest < len(text) and text[rest] not in ",\n":
                raise ValueError(f"unexpected text after the quoted value of {name}")
            return "".join(value), rest + 1
        if character == "\\" and quote == '"' and position + 1 < len(text):
            position += 1
            character = text[position]
        value.append(character)
        position += 1
    raise ValueError(f"the value of {name} has no closing quote")
