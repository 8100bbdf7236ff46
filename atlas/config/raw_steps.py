"""Workflow steps as written (`init`, `{run: cmd}`, `{env: {name: X, value: Y}}`, …) → validated `Step`s."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import BeforeValidator

from atlas.config.raw_values import invalid, quoted
from atlas.config.regex import PatternError, go_pattern
from atlas.config.workflow import Step, StepName
from atlas.config.yaml_doc import written_text

BUILT_IN_STEPS = ("init", "plan", "apply", "show", "policy_check", "import", "state_rm")


COMMAND_STEPS = ("run", "env", "multienv")


def _shell(body: dict[str, Any], step: str) -> dict[str, Any]:
    """`shell` and `shellArgs` (a string or a list), as Step's shell and shell_args."""
    shell = body.get("shell")
    args = body.get("shellArgs")
    if args is not None and shell is None:
        raise invalid(f"{step}.shellArgs needs {step}.shell")
    if shell is None:
        return {}
    shell_text = written_text(shell)
    if not shell_text:
        raise invalid(f"{step}.shell must be a string")
    if args is None:
        return {"shell": shell_text}
    if isinstance(args, list):
        items = [written_text(item) for item in args]
        if any(item is None for item in items):
            raise invalid(f"{step}.shellArgs must be a string or a list of strings")
        return {"shell": shell_text, "shell_args": tuple(item for item in items if item is not None)}
    args_text = written_text(args)
    if args_text is None:
        raise invalid(f"{step}.shellArgs must be a string or a list of strings")
    return {"shell": shell_text, "shell_args": tuple(args_text.split())}


def _only_keys(body: dict[str, Any], step: str, allowed: Iterable[str]) -> None:
    allowed = tuple(allowed)
    for key in body:
        if key not in allowed:
            raise invalid(f"{step} steps take only {', '.join(allowed)}; unknown key {json.dumps(key)}")


def _command(body: dict[str, Any], step: str) -> str:
    command = written_text(body.get("command"))
    if not command:
        raise invalid(f"{step}.command is required and must be a string")
    return command


def _run_output(value: object, step: str, choices: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    """A step's `output`: one of `choices`, and for `run` any `filter_regex` items, as Atlantis writes them.

    Atlantis takes a word (`output: hide`) or a list of words and `{filter_regex: PATTERN}` mappings
    (`output: [strip_refreshing, {filter_regex: ...}]`); each pattern is checked here, so a bad
    one is a config error naming the key rather than a failure at plan time.
    """
    if value is None:
        return "show", ()
    mode: str | None = None
    patterns: list[str] = []
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, dict):
            if step != "run" or set(item) != {"filter_regex"}:
                raise invalid(f"{step}.output items are {', '.join(choices)}"
                              + (" or {filter_regex: PATTERN}" if step == "run" else ""))
            pattern = written_text(item["filter_regex"])
            if not pattern:
                raise invalid(f"{step}.output filter_regex must be a regular expression string")
            try:
                go_pattern(pattern)
            except PatternError as error:
                raise invalid(f"{step}.output filter_regex: {error}") from None
            patterns.append(pattern)
        elif item in choices:
            if mode is not None and mode != item:
                raise invalid(f"{step}.output names both {mode} and {item}; keep one")
            mode = str(item)
        else:
            raise invalid(f"{step}.output must be one of {', '.join(choices)}, got {quoted(item)}")
    return mode or "show", tuple(patterns)


def parse_step(value: object) -> Step:
    """One workflow step in any form Atlantis documents; a readable error for any other."""
    if isinstance(value, str):
        if value in BUILT_IN_STEPS:
            return Step(name=StepName(value))
        if value in COMMAND_STEPS:
            raise invalid(f"a {value} step needs a command, as in - {value}: ...")
        raise invalid(
            f"{json.dumps(value)} is not a step; built-in steps are {', '.join(BUILT_IN_STEPS)}, "
            "and run, env and multienv run commands (maybe you omitted run:)"
        )
    if not isinstance(value, dict) or not value:
        raise invalid("must be a step: a built-in step such as init, or a mapping such as run: COMMAND")
    if len(value) != 1:
        raise invalid(f"a step has exactly one key, found {len(value)}: {', '.join(value)}")
    ((name, body),) = value.items()
    if name in BUILT_IN_STEPS:
        if body is None:
            return Step(name=StepName(name))
        if not isinstance(body, dict):
            raise invalid(f"{name} takes a mapping with extra_args, such as {name}: {{extra_args: [-lock=false]}}")
        _only_keys(body, name, ("extra_args",))
        extra = body.get("extra_args")
        items = [written_text(item) for item in extra] if isinstance(extra, list) else None
        if extra is not None and (items is None or any(item is None for item in items)):
            raise invalid(f"{name}.extra_args must be a list of strings")
        return Step.model_validate({"name": name, "extra_args": tuple(items or ())})
    if name == "run":
        if not isinstance(body, dict):
            command = written_text(body)
            if not command:
                raise invalid("run needs a command string")
            return Step(name=StepName.RUN, command=command)
        _only_keys(body, "run", ("command", "output", "shell", "shellArgs"))
        output, patterns = _run_output(body.get("output"), "run", ("show", "hide", "strip_refreshing"))
        return Step.model_validate({
            "name": "run", "command": _command(body, "run"), "output": output, "filter_regex": patterns,
            **_shell(body, "run"),
        })
    if name == "multienv":
        if not isinstance(body, dict):
            command = written_text(body)
            if not command:
                raise invalid("multienv needs a command string")
            return Step(name=StepName.MULTIENV, command=command)
        _only_keys(body, "multienv", ("command", "output", "shell", "shellArgs"))
        output, _ = _run_output(body.get("output"), "multienv", ("show", "hide"))
        return Step.model_validate(
            {"name": "multienv", "command": _command(body, "multienv"), "output": output, **_shell(body, "multienv")}
        )
    if name == "env":
        if not isinstance(body, dict):
            raise invalid("env takes a mapping: env: {name: NAME, value: VALUE} or env: {name: NAME, command: CMD}")
        _only_keys(body, "env", ("name", "value", "command", "shell", "shellArgs"))
        env_name = written_text(body.get("name"))
        if not env_name:
            raise invalid("env.name is required")
        if ("value" in body) == ("command" in body):
            raise invalid("env takes exactly one of value and command")
        if "value" in body:
            if "shell" in body or "shellArgs" in body:
                raise invalid("env.shell applies only with env.command")
            env_value = written_text(body["value"]) if body["value"] is not None else ""
            if env_value is None:
                raise invalid("env.value must be a string")
            return Step(name=StepName.ENV, env_name=env_name, env_value=env_value)
        return Step.model_validate(
            {"name": "env", "env_name": env_name, "command": _command(body, "env"), **_shell(body, "env")}
        )
    raise invalid(f"{json.dumps(name)} is not a step; use one of {', '.join(BUILT_IN_STEPS + COMMAND_STEPS)}")


ParsedStep = Annotated[Step, BeforeValidator(parse_step)]
