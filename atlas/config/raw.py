"""Configuration as written: YAML read with the position of every key, and the raw models of
atlantis.yaml/atlas.yaml and repos.yaml.

The raw models accept exactly the keys Atlantis documents (plus atlas's `apply_on_merge` and
`drift`) with per-key checks; `atlas.config.valid` and `atlas.config.server` turn them into the
models the pipeline uses. Every problem becomes a `ConfigError` naming the file, the key path
(`projects[1].autoplan.when_modified`) and what is wrong; when a file has several, the one reported
is the first in the file.
"""

from __future__ import annotations

import difflib
import json
import re
import types
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

from atlas.config.versions import VersionConstraint, VersionSyntaxError
from atlas.config.workflow import Step, StepName

MAX_CONFIG_BYTES = 1 << 20
"""A config file larger than this is refused rather than parsed."""

MAX_YAML_VALUES = 100_000
"""Values a document may expand to through aliases; stops an alias bomb in a pull request's config."""

MAX_YAML_DEPTH = 64

REQUIREMENTS = ("approved", "mergeable", "undiverged")
SILENCEABLE_STAGES = ("plan", "apply")
REPO_LOCK_MODES = ("on_plan", "on_apply", "disabled")
AUTODISCOVER_MODES = ("auto", "enabled", "disabled")
DISTRIBUTIONS = ("terraform", "opentofu")

OVERRIDABLE_KEYS = (
    "plan_requirements",
    "apply_requirements",
    "import_requirements",
    "workflow",
    "delete_source_branch_on_merge",
    "repo_locking",
    "repo_locks",
    "policy_check",
    "custom_policy_check",
    "silence_pr_comments",
    "apply_on_merge",
    "drift",
)
"""Keys a repo config may set only where repos.yaml lists them in `allowed_overrides`."""

KeyPath = tuple[str | int, ...]
"""Where a value sits in a document: `("projects", 1, "dir")`."""


class ConfigError(Exception):
    """A config file is wrong; str() is one line: `FILE: KEY.PATH: PROBLEM`."""

    def __init__(self, file: str, key_path: str, problem: str, *, line: int | None = None) -> None:
        super().__init__(file, key_path, problem)
        self.file = file
        self.key_path = key_path
        self.problem = problem
        self.line = line

    def __str__(self) -> str:
        return ": ".join(part for part in (self.file, self.key_path, self.problem) if part)


def key_path(path: Sequence[str | int]) -> str:
    """`("projects", 1, "dir")` → `projects[1].dir`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


# --- YAML with positions -------------------------------------------------------------------------


class _WrittenInt(int):
    """An integer that remembers how it was written, for keys Atlantis reads as strings (`workspace: 2024`)."""

    written: str


class _WrittenFloat(float):
    """A float that remembers how it was written: `terraform_version: 1.10` must stay "1.10"."""

    written: str


def written_text(value: object) -> str | None:
    """A scalar as Atlantis's YAML decoder gives it to a string key, or None if it is not a scalar."""
    if isinstance(value, str):
        return value
    if isinstance(value, _WrittenInt | _WrittenFloat):
        return value.written
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return None


@dataclass(frozen=True)
class YamlDocument:
    """A parsed YAML document and the line and column where each key or list item starts."""

    file: str
    data: Any
    positions: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)

    def position(self, path: Sequence[str | int]) -> tuple[int, int]:
        """Where a key path starts, or its nearest ancestor that exists (a missing key)."""
        parts = tuple(path)
        while parts:
            found = self.positions.get(parts)
            if found is not None:
                return found
            parts = parts[:-1]
        return (0, 0)

    def error(self, path: Sequence[str | int], problem: str) -> ConfigError:
        return ConfigError(self.file, key_path(path), problem, line=self.position(path)[0] or None)


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader; nodes are walked by `_DocumentBuilder`, never constructed as a whole."""


class _DocumentBuilder:
    """Turns a composed YAML node tree into plain data, recording where every key starts."""

    def __init__(self, loader: _Loader, file: str) -> None:
        self.loader = loader
        self.file = file
        self.positions: dict[KeyPath, tuple[int, int]] = {}
        self.values = 0
        self.checked: set[int] = set()

    def build(self, node: yaml.Node, path: KeyPath, depth: int = 0) -> Any:
        self.values += 1
        if self.values > MAX_YAML_VALUES or depth > MAX_YAML_DEPTH:
            raise ConfigError(self.file, key_path(path), "too large: it expands to too many values through aliases")
        self.positions.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, index), depth + 1) for index, item in enumerate(node.value)]
        return self._scalar(node)

    def _mapping(self, node: yaml.MappingNode, path: KeyPath, depth: int) -> dict[str, Any]:
        if id(node) not in self.checked:
            self.checked.add(id(node))
            seen: dict[str, int] = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                line = key_node.start_mark.line + 1
                if key_node.value in seen:
                    raise ConfigError(
                        self.file,
                        key_path((*path, key_node.value)),
                        f"duplicate key (first set on line {seen[key_node.value]})",
                        line=line,
                    )
                seen[key_node.value] = line
            self.loader.flatten_mapping(node)  # YAML merge keys (`<<: *defaults`), as Atlantis's decoder applies them
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                mark = key_node.start_mark
                raise ConfigError(
                    self.file, key_path(path), f"line {mark.line + 1}: keys must be plain words, not lists or mappings"
                )
            key = str(key_node.value)
            child = (*path, key)
            self.positions[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            result[key] = self.build(value_node, child, depth + 1)
        return result

    def _scalar(self, node: yaml.Node) -> Any:
        value = self.loader.construct_object(node, deep=True)
        if value is None or isinstance(value, str | bool):
            return value
        if isinstance(value, int):
            number = _WrittenInt(value)
            number.written = str(node.value)
            return number
        if isinstance(value, float):
            decimal = _WrittenFloat(value)
            decimal.written = str(node.value)
            return decimal
        # Dates and binary: keys that take them take text, as Atlantis's decoder does.
        return str(node.value)


def parse_yaml(text: str, file: str) -> YamlDocument:
    """Parse one YAML document; ConfigError with line and column when it is not valid YAML."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return YamlDocument(file, None, {})
        builder = _DocumentBuilder(loader, file)
        data = builder.build(node, ())
        return YamlDocument(file, data, builder.positions)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        problem = " ".join(str(error.problem or error.context or "is not valid YAML").split())
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(file, "", f"invalid YAML{where}: {problem}", line=mark.line + 1 if mark else None) from None
    except yaml.YAMLError as error:
        raise ConfigError(file, "", f"invalid YAML: {' '.join(str(error).split())}") from None
    finally:
        loader.dispose()


# --- value checks, each with the message a user reads --------------------------------------------


def _problem(message: str) -> PydanticCustomError:
    # The message travels in the context: a template would read braces in a user's value as fields.
    return PydanticCustomError("atlas_config", "{message}", {"message": message})


def _quoted(value: object) -> str:
    return json.dumps(value) if isinstance(value, str) else json.dumps(written_text(value) or repr(value))


def _text(value: object) -> object:
    if value is None:
        return None
    text = written_text(value)
    if text is None:
        raise _problem("must be a string")
    return text


def _flag(value: object) -> object:
    if value is None or isinstance(value, bool):
        return value
    raise _problem(f"must be true or false, got {_quoted(value)}")


def _whole(value: object) -> object:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    raise _problem(f"must be an integer, got {_quoted(value)}")


def _text_list(value: object) -> object:
    if value is None:
        return None
    if not isinstance(value, list):
        raise _problem("must be a list of strings")
    texts = [written_text(item) for item in value]
    if any(text is None for text in texts):
        raise _problem("must be a list of strings")
    return texts


def _choice(*choices: str) -> Callable[[object], object]:
    def check(value: object) -> object:
        if value is None:
            return None
        text = written_text(value)
        if text not in choices:
            raise _problem(f"must be one of {', '.join(choices)}, got {_quoted(value)}")
        return text

    return check


def _choices(what: str, *choices: str) -> Callable[[object], object]:
    def check(value: object) -> object:
        texts = _text_list(value)
        if texts is None:
            return None
        assert isinstance(texts, list)
        for text in texts:
            if text not in choices:
                raise _problem(f"unknown {what} {json.dumps(text)}; known: {', '.join(choices)}")
        return texts

    return check


Text = Annotated[str, BeforeValidator(_text)]
Flag = Annotated[bool, BeforeValidator(_flag)]
Whole = Annotated[int, BeforeValidator(_whole)]
TextList = Annotated[list[str], BeforeValidator(_text_list)]
Requirements = Annotated[list[str], BeforeValidator(_choices("requirement", *REQUIREMENTS))]
SilencedStages = Annotated[list[str], BeforeValidator(_choices("stage", *SILENCEABLE_STAGES))]
OverridableKeys = Annotated[list[str], BeforeValidator(_choices("key", *OVERRIDABLE_KEYS))]


def _slashed_regex(value: object) -> object:
    """Atlantis writes regexes as `/REGEX/`; returns the pattern between the slashes."""
    text = _text(value)
    if text is None:
        return None
    assert isinstance(text, str)
    if len(text) < 2 or not text.startswith("/") or not text.endswith("/"):
        raise _problem(f"must be a regex between slashes, such as /main/, got {json.dumps(text)}")
    try:
        re.compile(text[1:-1])
    except re.error as error:
        raise _problem(f"{json.dumps(text)} is not a valid regex: {error}") from None
    return text


SlashedRegex = Annotated[str, BeforeValidator(_slashed_regex)]


def _repo_id(value: object) -> object:
    """repos.yaml ids: an exact `HOST/OWNER/NAME`, or a `/regex/`."""
    text = _text(value)
    if isinstance(text, str) and text.startswith("/") and text.endswith("/") and len(text) >= 2:
        return _slashed_regex(text)
    if not text:
        raise _problem("must be a repository id such as github.com/OWNER/NAME, or a /regex/")
    return text


RepoId = Annotated[str, BeforeValidator(_repo_id)]

# hashicorp/go-version's grammar, which Atlantis parses terraform_version with.
_GO_VERSION = re.compile(
    r"v?([0-9]+(\.[0-9]+)*?)"
    r"(-([0-9]+[0-9A-Za-z\-~]*(\.[0-9A-Za-z\-~]+)*)|(-?([A-Za-z\-~]+[0-9A-Za-z\-~]*(\.[0-9A-Za-z\-~]+)*)))?"
    r"(\+([0-9A-Za-z\-~]+(\.[0-9A-Za-z\-~]+)*))?"
)


def _terraform_version(value: object) -> object:
    """An exact version, as Atlantis takes it, or (atlas) a constraint such as `~> 1.6.0` or `>= 1.5, < 2`."""
    text = _text(value)
    if isinstance(text, str) and not _GO_VERSION.fullmatch(text):
        try:
            VersionConstraint.parse(text)
        except VersionSyntaxError:
            raise _problem(f"{json.dumps(text)} is not a version such as 1.9.8 or v1.9.8, nor a constraint "
                           'such as "~> 1.9.0" or ">= 1.5, < 2"') from None
    return text


TerraformVersion = Annotated[str, BeforeValidator(_terraform_version)]

_URL_SAFE = re.compile(r"[A-Za-z0-9._~/-]+")


def _project_name(value: object) -> object:
    text = _text(value)
    if text is None:
        return None
    assert isinstance(text, str)
    if not text:
        raise _problem("must not be empty when set")
    if not _URL_SAFE.fullmatch(text):
        raise _problem(
            f"{json.dumps(text)} is not allowed: use only letters, digits and - _ . ~ / "
            "(names appear in URLs and file names)"
        )
    return text


ProjectName = Annotated[str, BeforeValidator(_project_name)]


def _project_dir(value: object) -> object:
    text = _text(value)
    if text is None:
        return None
    assert isinstance(text, str)
    if not text.strip():
        raise _problem("must not be empty; use . for the repository root")
    if ".." in text.replace("\\", "/").split("/"):
        raise _problem(f"{json.dumps(text)} leaves the repository: dir cannot contain ..")
    if any(char in text for char in "*?["):
        raise _problem(
            f"{json.dumps(text)} is a glob; atlas does not expand globs in dir, list each directory as a project"
        )
    return text


ProjectDir = Annotated[str, BeforeValidator(_project_dir)]


def _apply_on_merge(value: object) -> object:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if value in ("always", "only"):
        return value
    raise _problem(f"must be true, false, always or only, got {_quoted(value)}")


ApplyOnMergeValue = Annotated[str, BeforeValidator(_apply_on_merge)]

_CRON_MACROS = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_CRON_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)


def cron_problem(expression: str) -> str | None:
    """What is wrong with a five-field cron expression (or @daily-style macro), or None."""
    if expression.strip().lower() in _CRON_MACROS:
        return None
    fields = expression.split()
    if len(fields) != 5:
        return f"has {len(fields)} fields; a cron schedule has 5 (minute hour day-of-month month day-of-week)"
    for text, (name, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        for item in text.split(","):
            problem = _cron_item_problem(item.lower(), low, high, names)
            if problem:
                return f"{name} field {json.dumps(text)}: {problem}"
    return None


def _cron_item_problem(item: str, low: int, high: int, names: tuple[str, ...]) -> str | None:
    base, _, step = item.partition("/")
    if step and not (step.isdigit() and int(step) > 0):
        return f"step {json.dumps(step)} must be a positive number"
    if base == "*":
        return None

    def number(text: str) -> int | None:
        if text in names:
            return names.index(text) + (1 if names is _MONTHS else 0)
        return int(text) if text.isdigit() else None

    bounds = base.split("-")
    if len(bounds) > 2 or not all(bounds):
        return f"{json.dumps(item)} is not a number, range or *"
    values = [number(bound) for bound in bounds]
    if any(value is None for value in values):
        return f"{json.dumps(item)} is not a number, range or *"
    if any(value is not None and not low <= value <= high for value in values):
        return f"{json.dumps(item)} is outside {low}-{high}"
    if len(values) == 2 and values[0] is not None and values[1] is not None and values[0] > values[1]:
        return f"range {json.dumps(base)} runs backwards"
    return None


def _schedule(value: object) -> object:
    text = _text(value)
    if isinstance(text, str):
        problem = cron_problem(text)
        if problem:
            raise _problem(f"{json.dumps(text)} is not a cron schedule: {problem}")
    return text


Schedule = Annotated[str, BeforeValidator(_schedule)]


# --- steps: the forms Atlantis documents, parsed straight into atlas.config.workflow.Step ---------

BUILT_IN_STEPS = ("init", "plan", "apply", "show", "policy_check", "import", "state_rm")
COMMAND_STEPS = ("run", "env", "multienv")


def _shell(body: dict[str, Any], step: str) -> dict[str, Any]:
    """`shell` and `shellArgs` (a string or a list), as Step's shell and shell_args."""
    shell = body.get("shell")
    args = body.get("shellArgs")
    if args is not None and shell is None:
        raise _problem(f"{step}.shellArgs needs {step}.shell")
    if shell is None:
        return {}
    shell_text = written_text(shell)
    if not shell_text:
        raise _problem(f"{step}.shell must be a string")
    if args is None:
        return {"shell": shell_text}
    if isinstance(args, list):
        items = [written_text(item) for item in args]
        if any(item is None for item in items):
            raise _problem(f"{step}.shellArgs must be a string or a list of strings")
        return {"shell": shell_text, "shell_args": tuple(item for item in items if item is not None)}
    args_text = written_text(args)
    if args_text is None:
        raise _problem(f"{step}.shellArgs must be a string or a list of strings")
    return {"shell": shell_text, "shell_args": tuple(args_text.split())}


def _only_keys(body: dict[str, Any], step: str, allowed: Iterable[str]) -> None:
    allowed = tuple(allowed)
    for key in body:
        if key not in allowed:
            raise _problem(f"{step} steps take only {', '.join(allowed)}; unknown key {json.dumps(key)}")


def _command(body: dict[str, Any], step: str) -> str:
    command = written_text(body.get("command"))
    if not command:
        raise _problem(f"{step}.command is required and must be a string")
    return command


def _run_output(value: object, step: str, choices: tuple[str, ...]) -> str:
    if value is None:
        return "show"
    if isinstance(value, list):
        if any(isinstance(item, dict) for item in value):
            raise _problem(f"{step}.output: filter_regex is not supported by atlas; use output: hide instead")
        if len(value) != 1:
            raise _problem(f"{step}.output must be one of {', '.join(choices)}")
        value = value[0]
    if value not in choices:
        raise _problem(f"{step}.output must be one of {', '.join(choices)}, got {_quoted(value)}")
    return str(value)


def parse_step(value: object) -> Step:
    """One workflow step in any form Atlantis documents; a readable error for any other."""
    if isinstance(value, str):
        if value in BUILT_IN_STEPS:
            return Step(name=StepName(value))
        if value in COMMAND_STEPS:
            raise _problem(f"a {value} step needs a command, as in - {value}: ...")
        raise _problem(
            f"{json.dumps(value)} is not a step; built-in steps are {', '.join(BUILT_IN_STEPS)}, "
            "and run, env and multienv run commands (maybe you omitted run:)"
        )
    if not isinstance(value, dict) or not value:
        raise _problem("must be a step: a built-in step such as init, or a mapping such as run: COMMAND")
    if len(value) != 1:
        raise _problem(f"a step has exactly one key, found {len(value)}: {', '.join(value)}")
    ((name, body),) = value.items()
    if name in BUILT_IN_STEPS:
        if body is None:
            return Step(name=StepName(name))
        if not isinstance(body, dict):
            raise _problem(f"{name} takes a mapping with extra_args, such as {name}: {{extra_args: [-lock=false]}}")
        _only_keys(body, name, ("extra_args",))
        extra = body.get("extra_args")
        items = [written_text(item) for item in extra] if isinstance(extra, list) else None
        if extra is not None and (items is None or any(item is None for item in items)):
            raise _problem(f"{name}.extra_args must be a list of strings")
        return Step.model_validate({"name": name, "extra_args": tuple(items or ())})
    if name == "run":
        if not isinstance(body, dict):
            command = written_text(body)
            if not command:
                raise _problem("run needs a command string")
            return Step(name=StepName.RUN, command=command)
        _only_keys(body, "run", ("command", "output", "shell", "shellArgs"))
        output = _run_output(body.get("output"), "run", ("show", "hide", "strip_refreshing"))
        return Step.model_validate(
            {"name": "run", "command": _command(body, "run"), "output": output, **_shell(body, "run")}
        )
    if name == "multienv":
        if not isinstance(body, dict):
            command = written_text(body)
            if not command:
                raise _problem("multienv needs a command string")
            return Step(name=StepName.MULTIENV, command=command)
        _only_keys(body, "multienv", ("command", "output", "shell", "shellArgs"))
        output = _run_output(body.get("output"), "multienv", ("show", "hide"))
        return Step.model_validate(
            {"name": "multienv", "command": _command(body, "multienv"), "output": output, **_shell(body, "multienv")}
        )
    if name == "env":
        if not isinstance(body, dict):
            raise _problem("env takes a mapping: env: {name: NAME, value: VALUE} or env: {name: NAME, command: CMD}")
        _only_keys(body, "env", ("name", "value", "command", "shell", "shellArgs"))
        env_name = written_text(body.get("name"))
        if not env_name:
            raise _problem("env.name is required")
        if ("value" in body) == ("command" in body):
            raise _problem("env takes exactly one of value and command")
        if "value" in body:
            if "shell" in body or "shellArgs" in body:
                raise _problem("env.shell applies only with env.command")
            env_value = written_text(body["value"]) if body["value"] is not None else ""
            if env_value is None:
                raise _problem("env.value must be a string")
            return Step(name=StepName.ENV, env_name=env_name, env_value=env_value)
        return Step.model_validate(
            {"name": "env", "env_name": env_name, "command": _command(body, "env"), **_shell(body, "env")}
        )
    raise _problem(f"{json.dumps(name)} is not a step; use one of {', '.join(BUILT_IN_STEPS + COMMAND_STEPS)}")


ParsedStep = Annotated[Step, BeforeValidator(parse_step)]


# --- raw models -----------------------------------------------------------------------------------


class RawModel(BaseModel):
    """A mapping in a config file: unknown keys are errors, values keep their written form."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=False)


class RawStage(RawModel):
    steps: list[ParsedStep] | None = None


class RawWorkflow(RawModel):
    plan: RawStage | None = None
    apply: RawStage | None = None
    import_: RawStage | None = Field(default=None, alias="import")
    state_rm: RawStage | None = None
    policy_check: RawStage | None = None


class RawAutoplan(RawModel):
    enabled: Flag | None = None
    when_modified: TextList | None = None


class RawRepoLocks(RawModel):
    mode: Annotated[str, BeforeValidator(_choice(*REPO_LOCK_MODES))] | None = None


class RawAutodiscover(RawModel):
    mode: Annotated[str, BeforeValidator(_choice(*AUTODISCOVER_MODES))] | None = None
    ignore_paths: TextList | None = None


class RawDrift(RawModel):
    """atlas's drift detection for a project (or, in repos.yaml, the default for matching repos)."""

    enabled: Flag | None = None
    schedule: Schedule | None = None
    remediate: Flag | None = None
    remediate_destroy: Flag | None = None


class RawProject(RawModel):
    name: ProjectName | None = None
    branch: SlashedRegex | None = None
    dir: ProjectDir
    workspace: Text | None = None
    workflow: Text | None = None
    terraform_version: TerraformVersion | None = None
    terraform_distribution: Annotated[str, BeforeValidator(_choice(*DISTRIBUTIONS))] | None = None
    autoplan: RawAutoplan | None = None
    plan_requirements: Requirements | None = None
    apply_requirements: Requirements | None = None
    import_requirements: Requirements | None = None
    depends_on: TextList | None = None
    delete_source_branch_on_merge: Flag | None = None
    repo_locking: Flag | None = None
    repo_locks: RawRepoLocks | None = None
    execution_order_group: Whole | None = None
    policy_check: Flag | None = None
    custom_policy_check: Flag | None = None
    silence_pr_comments: SilencedStages | None = None
    apply_on_merge: ApplyOnMergeValue | None = None
    drift: RawDrift | None = None


class RawRepoConfig(RawModel):
    """atlantis.yaml (version 3, as Atlantis documents it) or atlas.yaml (the same, plus atlas's keys)."""

    version: Whole
    automerge: Flag | None = None
    parallel_plan: Flag | None = None
    parallel_apply: Flag | None = None
    abort_on_execution_order_fail: Flag | None = None
    delete_source_branch_on_merge: Flag | None = None
    emoji_reaction: Text | None = None
    projects: list[RawProject] | None = None
    workflows: dict[str, RawWorkflow | None] | None = None
    allowed_regexp_prefixes: TextList | None = None
    autodiscover: RawAutodiscover | None = None
    repo_locks: RawRepoLocks | None = None
    silence_pr_comments: SilencedStages | None = None
    apply_on_merge: ApplyOnMergeValue | None = None
    # Atlantis reads repo-level policy sets; atlas does not run policy checks yet, so they are accepted and unused.
    policies: Any = None


class RawHook(RawModel):
    """A pre or post workflow hook in repos.yaml."""

    run: Text
    description: Text | None = None
    shell: Text | None = None
    shell_args: Annotated[str, BeforeValidator(_text)] | None = Field(default=None, alias="shellArgs")
    commands: Text | None = None


class RawRepoEntry(RawModel):
    """One `repos:` entry of repos.yaml."""

    id: RepoId
    branch: SlashedRegex | None = None
    repo_config_file: Text | None = None
    plan_requirements: Requirements | None = None
    apply_requirements: Requirements | None = None
    import_requirements: Requirements | None = None
    workflow: Text | None = None
    allowed_overrides: OverridableKeys | None = None
    allowed_workflows: TextList | None = None
    allow_custom_workflows: Flag | None = None
    delete_source_branch_on_merge: Flag | None = None
    repo_locking: Flag | None = None
    repo_locks: RawRepoLocks | None = None
    policy_check: Flag | None = None
    custom_policy_check: Flag | None = None
    autodiscover: RawAutodiscover | None = None
    silence_pr_comments: SilencedStages | None = None
    pre_workflow_hooks: list[RawHook] | None = None
    post_workflow_hooks: list[RawHook] | None = None
    apply_on_merge: ApplyOnMergeValue | None = None
    drift: RawDrift | None = None


class RawServerConfig(RawModel):
    """repos.yaml: per-repository policy and server-side workflows."""

    repos: list[RawRepoEntry] | None = None
    workflows: dict[str, RawWorkflow | None] | None = None
    # Accepted so that an Atlantis repos.yaml reads unchanged; atlas does not use them.
    policies: Any = None
    metrics: Any = None
    team_authz: Any = None


_MISSING: dict[tuple[str, ...], str] = {
    ("version",): "is required: start the file with version: 3",
}


def _version_problem(version: object) -> str | None:
    if isinstance(version, int) and not isinstance(version, bool) and version not in (2, 3):
        return f"must be 3 (the Atlantis format atlas reads), got {version}"
    return None


def validate_raw(
    document: YamlDocument, model: type[RawModel]
) -> tuple[RawModel | None, list[tuple[tuple[int, int], ConfigError]]]:
    """The raw model of a document, or the problems found (each with where it starts in the file)."""
    data = {} if document.data is None else document.data
    problems: list[tuple[tuple[int, int], ConfigError]] = []
    if not isinstance(data, dict):
        problem = f"must be a mapping of keys such as {', '.join(_keys_of(model)[:3])}"
        return None, [((0, 0), ConfigError(document.file, "", problem))]
    if model is RawRepoConfig:
        wrong_version = _version_problem(data.get("version"))
        if wrong_version:
            problems.append((document.position(("version",)), document.error(("version",), wrong_version)))
    try:
        raw = model.model_validate(data)
    except ValidationError as error:
        for detail in error.errors():
            loc = tuple(detail["loc"])
            problems.append((document.position(loc), document.error(loc, _describe(detail, model))))
        return None, problems
    return (None if problems else raw), problems


def _describe(detail: ErrorDetails, root: type[RawModel]) -> str:
    """A pydantic error as the one-line problem a config author reads."""
    kind = detail["type"]
    loc = tuple(str(part) if not isinstance(part, int) else part for part in detail["loc"])
    if kind == "atlas_config":
        return str((detail.get("ctx") or {}).get("message", detail["msg"]))
    if kind == "missing":
        return _MISSING.get(tuple(str(part) for part in loc), "is required")
    if kind == "extra_forbidden":
        known = _keys_of(_model_at(root, loc[:-1]))
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        if close:
            return f"unknown key; did you mean {close[0]}?"
        return f"unknown key; known keys here: {', '.join(known)}" if known else "unknown key"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        known = _keys_of(_model_at(root, loc))
        return f"must be a mapping with keys such as {', '.join(known[:4])}" if known else "must be a mapping"
    if kind == "list_type":
        return "must be a list"
    if kind in ("string_type", "str_type"):
        return "must be a string"
    if kind.startswith("bool"):
        return "must be true or false"
    if kind.startswith("int"):
        return "must be an integer"
    return str(detail["msg"])


def _keys_of(model: type[BaseModel] | None) -> list[str]:
    if model is None:
        return []
    return [info.alias or name for name, info in model.model_fields.items() if name != "policies"]


def _model_at(root: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The raw model class found at a key path, walking field annotations."""
    current: Any = root
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            fields = {info.alias or name: info for name, info in current.model_fields.items()}
            info = fields.get(str(part))
            if info is None:
                return None
            current = info.annotation
        elif typing.get_origin(current) is list:
            current = typing.get_args(current)[0]
        elif typing.get_origin(current) is dict:
            current = typing.get_args(current)[1]
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """Strip Annotated[...] and `X | None` down to X."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation
