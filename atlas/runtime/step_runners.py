"""One small runner per step kind (as Atlantis does): `init`, `plan`, `apply`, `show`, `import`,
`state_rm`, `policy_check`, `run`, `env` and `multienv`, each over the `StageRun` of its stage.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from atlas.config.workflow import Step, StepName
from atlas.runtime.init_inputs import forget, init_fingerprint, record, recorded
from atlas.runtime.plan_output import clean_plan_output, summarise_plan
from atlas.runtime.stage_run import (
    PLAN_COMMANDS,
    StageRun,
    StepFailed,
    check_file_arguments,
    flag_name,
    redact_matches,
    strip_refreshing,
)
from atlas.runtime.step_env import parse_multienv
from atlas.runtime.terraform import RunResult, TerraformError

_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def _init(run: StageRun, step: Step) -> None:
    """`terraform init`, then the project's workspace; its output is shown only if it fails."""
    # Start init from the default workspace: a selected workspace whose state is gone would make
    # init ask a question that automation cannot answer.
    (run.project_dir / ".terraform" / "environment").unlink(missing_ok=True)
    args = ["init", "-input=false", "-no-color", "-upgrade=false", *step.extra_args]
    try:
        version = run.runner.version()
    except TerraformError:
        version = ""  # unknown: init, and record nothing
    fingerprint = init_fingerprint(run.project_dir, binary=run.runner.binary, version=version,
                                   args=args, env=run.runner.build_env(run.terraform_env()))
    if version and fingerprint == recorded(run.project_dir):
        run.log.write("atlas: init skipped: nothing init depends on (lock file, modules, backend, providers, "
                      "terraform version, init arguments) changed since this working copy's last init")
    else:
        forget(run.project_dir)
        run.terraform("init", args)
        if version:
            record(run.project_dir, fingerprint)
    run.ensure_workspace()


def _plan(run: StageRun, step: Step) -> None:
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


def _apply(run: StageRun, step: Step) -> None:
    """`terraform apply` of exactly the saved plan."""
    if not run.planfile.is_file():
        raise StepFailed(f"no saved plan for {run.project.label}: run plan again before applying")
    flags = [*step.extra_args, *run.comment_args]
    if any(flag_name(flag) == "target" for flag in flags):
        raise StepFailed(
            "apply cannot take -target: it applies the saved plan as it is. Plan with -target instead."
        )
    run.ensure_workspace()
    apply = run.terraform("apply", ["apply", "-input=false", "-no-color", *flags, str(run.planfile)])
    run.apply_output += apply.output
    run.show(clean_plan_output(apply.output))


def _show(run: StageRun, step: Step) -> None:
    """`terraform show -json PLANFILE` into SHOWFILE, for policy tools in later steps; nothing is shown."""
    if not run.planfile.is_file():
        raise StepFailed(f"no saved plan to show for {run.project.label}: run plan first")
    document = run.show_plan_json(step.extra_args)
    if run.command in PLAN_COMMANDS and run.summary is None:
        run.summary = summarise_plan(document)


def _import(run: StageRun, step: Step) -> None:
    """`terraform import … ADDRESS ID`; the saved plan no longer matches the state, so it is removed."""
    run.ensure_workspace()
    imported = run.terraform(
        "import", ["import", "-input=false", "-no-color", *step.extra_args, *run.comment_args, *run.positional]
    )
    run.show(clean_plan_output(imported.output))
    run.planfile.unlink(missing_ok=True)


def _state_rm(run: StageRun, step: Step) -> None:
    """`terraform state rm … ADDRESS…`; the saved plan no longer matches the state, so it is removed."""
    run.ensure_workspace()
    removed = run.terraform(
        "state rm", ["state", "rm", "-no-color", *step.extra_args, *run.comment_args, *run.positional]
    )
    run.show(clean_plan_output(removed.output))
    run.planfile.unlink(missing_ok=True)


def _policy_check(run: StageRun, step: Step) -> None:
    raise StepFailed(
        "policy_check steps are not supported by atlas (Atlantis runs them with conftest). "
        "Use a `run` step that checks $SHOWFILE with your policy tool instead."
    )


def _run(run: StageRun, step: Step) -> None:
    """The repository's own command; its output is shown, hidden, or stripped of refresh lines.

    Its `filter_regex` patterns redact what the comment shows; the job log has the output whole.
    """
    result = run.shell(step)
    text = _ANSI_ESCAPE.sub("", result.output)
    if step.output == "hide":
        text = ""
    elif step.output == "strip_refreshing":
        text = strip_refreshing(text)
    text = redact_matches(text, step.filter_regex)
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


def _env(run: StageRun, step: Step) -> None:
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


def _multienv(run: StageRun, step: Step) -> None:
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


STEP_RUNNERS: dict[StepName, Callable[[StageRun, Step], None]] = {
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
