"""Configuration as written: YAML read with the position of every key, and the raw models of
atlantis.yaml/atlas.yaml and repos.yaml.

The raw models accept exactly the keys Atlantis documents (plus atlas's `apply_on_merge` and
`drift`) with per-key checks; `atlas.config.valid` and `atlas.config.server` turn them into the
models the pipeline uses. Every problem becomes a `ConfigError` naming the file, the key path
(`projects[1].autoplan.when_modified`) and what is wrong; when a file has several, the one reported
is the first in the file.

The file is read in `yaml_doc`, values are checked by the types of `raw_values`, steps parsed by
`raw_steps`; their public names are importable from here.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from atlas.config.atlantis_keys import Where, refusal, table_path, unread_key
from atlas.config.raw_steps import BUILT_IN_STEPS, COMMAND_STEPS, ParsedStep, parse_step
from atlas.config.raw_values import (
    AUTODISCOVER_MODES,
    DISTRIBUTIONS,
    OVERRIDABLE_KEYS,
    REPO_LOCK_MODES,
    REQUIREMENTS,
    SILENCEABLE_STAGES,
    ApplyOnMergeValue,
    Flag,
    OverridableKeys,
    ProjectDir,
    ProjectName,
    RepoId,
    Requirements,
    Schedule,
    SilencedStages,
    SlashedRegex,
    TerraformVersion,
    Text,
    TextList,
    Whole,
    as_text,
    choice,
    cron_problem,
    invalid,
)
from atlas.config.setting_types import reaction_name
from atlas.config.yaml_doc import (
    MAX_CONFIG_BYTES,
    MAX_YAML_DEPTH,
    MAX_YAML_VALUES,
    ConfigError,
    KeyPath,
    YamlDocument,
    key_path,
    parse_yaml,
    written_text,
)

__all__ = [
    "AUTODISCOVER_MODES",
    "BUILT_IN_STEPS",
    "COMMAND_STEPS",
    "DISTRIBUTIONS",
    "MAX_CONFIG_BYTES",
    "MAX_YAML_DEPTH",
    "MAX_YAML_VALUES",
    "OVERRIDABLE_KEYS",
    "REPO_LOCK_MODES",
    "REQUIREMENTS",
    "SILENCEABLE_STAGES",
    "ApplyOnMergeValue",
    "ConfigError",
    "Flag",
    "KeyPath",
    "OverridableKeys",
    "ParsedStep",
    "ProjectDir",
    "ProjectName",
    "RawAutodiscover",
    "RawAutoplan",
    "RawDrift",
    "RawHook",
    "RawModel",
    "RawProject",
    "RawRepoConfig",
    "RawRepoEntry",
    "RawRepoLocks",
    "RawServerConfig",
    "RawStage",
    "RawWorkflow",
    "RepoId",
    "Requirements",
    "Schedule",
    "SilencedStages",
    "SlashedRegex",
    "TerraformVersion",
    "Text",
    "TextList",
    "Whole",
    "YamlDocument",
    "cron_problem",
    "key_path",
    "parse_step",
    "parse_yaml",
    "validate_raw",
    "written_text",
]


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
    mode: Annotated[str, BeforeValidator(choice(*REPO_LOCK_MODES))] | None = None


class RawAutodiscover(RawModel):
    mode: Annotated[str, BeforeValidator(choice(*AUTODISCOVER_MODES))] | None = None
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
    terraform_distribution: Annotated[str, BeforeValidator(choice(*DISTRIBUTIONS))] | None = None
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


def _reaction(value: object) -> object:
    try:
        return reaction_name(value)
    except ValueError as error:
        raise invalid(str(error)) from None


class RawRepoConfig(RawModel):
    """atlantis.yaml (version 3, as Atlantis documents it) or atlas.yaml (the same, plus atlas's keys)."""

    version: Whole
    automerge: Flag | None = None
    parallel_plan: Flag | None = None
    parallel_apply: Flag | None = None
    abort_on_execution_order_fail: Flag | None = None
    delete_source_branch_on_merge: Flag | None = None
    emoji_reaction: Annotated[str, BeforeValidator(_reaction), BeforeValidator(as_text)] | None = None
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
    shell_args: Annotated[str, BeforeValidator(as_text)] | None = Field(default=None, alias="shellArgs")
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
    # Validated by atlas.policy.sets.parse_policies (atlas.config.server); team_authz is refused (unread_keys)
    # until it is built, and `metrics` for good.
    policies: Any = None
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
    where = Where.REPO if model is RawRepoConfig else Where.REPOS
    for location, message in unread_keys(data, where):
        problems.append((document.position(location), document.error(location, message)))
    if problems:
        return None, problems
    try:
        raw = model.model_validate(data)
    except ValidationError as error:
        for detail in error.errors():
            loc = tuple(detail["loc"])
            problems.append((document.position(loc), document.error(loc, _describe(detail, model))))
        return None, problems
    return (None if problems else raw), problems


def unread_keys(data: object, where: Where) -> list[tuple[KeyPath, str]]:
    """Every key of an Atlantis document that atlas does not do (yet), with the key table's one-line reason.

    atlas/config/atlantis_keys.py decides: its planned and refused keys (and Atlantis's names of what
    atlas reads under another name) are refused here, before the document is read, so that none is
    ever accepted and ignored. A refused block is named once, not each key inside it.
    """
    found: list[tuple[KeyPath, str]] = []

    def walk(node: object, location: KeyPath) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                here = (*location, str(key))
                unread = unread_key(where, table_path(here))
                if unread is not None:
                    found.append((here, refusal(unread)))
                else:
                    walk(value, here)
        elif isinstance(node, list):
            for index, item in enumerate(node):
                here = (*location, index)
                # A step written as a bare name, such as `- policy_check`.
                bare_step = isinstance(item, str) and location[-1:] == ("steps",)
                unread = unread_key(where, table_path((*here, str(item)))) if bare_step else None
                if unread is not None:
                    found.append((here, refusal(unread)))
                else:
                    walk(item, here)

    walk(data, ())
    return found


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
