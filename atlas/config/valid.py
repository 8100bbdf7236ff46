"""A repo config as atlas uses it: validated projects with normalised dirs, workflows as
atlas.config.workflow objects, and the `when_modified` matcher with Atlantis's semantics.

Values a repo config leaves out stay None here, because whether they apply depends on what the
server allows (atlas.config.server resolves them into each project's effective settings).
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from atlas.config.raw import (
    ConfigError,
    RawAutodiscover,
    RawDrift,
    RawRepoConfig,
    RawRepoLocks,
    RawStage,
    RawWorkflow,
    YamlDocument,
    validate_raw,
    written_text,
)
from atlas.config.workflow import DEFAULT_WORKFLOW, Stage, StepName, Workflow
from atlas.models import Project

DEFAULT_WORKSPACE = "default"

DEFAULT_WHEN_MODIFIED = ("**/*.tf*", "**/*.tofu", "**/*.tofu.json", "**/terragrunt.hcl", "**/.terraform.lock.hcl")
"""Atlantis's documented default `when_modified`; a project's own list replaces it entirely."""

CUSTOM_STEPS = frozenset({StepName.RUN, StepName.ENV, StepName.MULTIENV})
"""Steps that run a command of the config author's choosing."""


class RepoLocksMode(StrEnum):
    """When a project's lock is taken: at plan (Atlantis's default), at apply, or never."""

    ON_PLAN = "on_plan"
    ON_APPLY = "on_apply"
    DISABLED = "disabled"


class ApplyOnMerge(StrEnum):
    """atlas's apply-on-merge mode; the values are those of the `--apply-on-merge` setting."""

    OFF = "false"
    ON = "true"
    ALWAYS = "always"
    ONLY = "only"


class AutodiscoverMode(StrEnum):
    """auto: find projects only when the config lists none; enabled: also beside listed ones; disabled: never."""

    AUTO = "auto"
    ENABLED = "enabled"
    DISABLED = "disabled"


class Autodiscover(BaseModel):
    model_config = ConfigDict(frozen=True)

    mode: AutodiscoverMode = AutodiscoverMode.AUTO
    ignore_paths: tuple[str, ...] = ()


class Drift(BaseModel):
    """Drift detection for a project: on a cron `schedule` (None: the server's), optionally remediated."""

    model_config = ConfigDict(frozen=True)

    enabled: bool = False
    schedule: str | None = None
    remediate: bool = False
    remediate_destroy: bool = False

    def merged(self, override: DriftOverride | None) -> Drift:
        if override is None:
            return self
        return self.model_copy(update=override.model_dump(exclude_none=True))


class DriftOverride(BaseModel):
    """A `drift:` block as written: only the keys it sets. Writing the block turns drift on unless it says otherwise."""

    model_config = ConfigDict(frozen=True)

    enabled: bool | None = None
    schedule: str | None = None
    remediate: bool | None = None
    remediate_destroy: bool | None = None

    @classmethod
    def from_raw(cls, raw: RawDrift | None) -> DriftOverride | None:
        if raw is None:
            return None
        return cls(
            enabled=True if raw.enabled is None else raw.enabled,
            schedule=raw.schedule,
            remediate=raw.remediate,
            remediate_destroy=raw.remediate_destroy,
        )


# --- paths and when_modified patterns, as Atlantis (Go's path/filepath and moby/patternmatcher) -----


def clean_path(path: str) -> str:
    """Go's filepath.Clean on a slash path: `.` for empty, no `./`, no `x/..`, one leading slash at most."""
    cleaned = posixpath.normpath(path) if path else "."
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    return cleaned


def join_path(*parts: str) -> str:
    """Go's filepath.Join: the non-empty parts joined with / and cleaned, or "" when all are empty."""
    kept = [part for part in parts if part]
    return clean_path("/".join(kept)) if kept else ""


def normalise_dir(directory: str) -> str:
    """A project dir relative to the repo root, as Atlantis keeps it: `./a/b/` and `/a/b` are `a/b`."""
    return clean_path("./" + directory.replace("\\", "/")).lstrip("/") or "."


_ESCAPED = frozenset(".+()|{}$")


@dataclass(frozen=True)
class FilePattern:
    """One `when_modified` entry joined onto the project dir, compiled as moby/patternmatcher does."""

    written: str
    cleaned: str
    exclusion: bool
    kind: Literal["exact", "prefix", "suffix", "regexp"]
    regex: re.Pattern[str] | None

    @classmethod
    def compile(cls, written: str, joined: str) -> FilePattern:
        """ValueError with the reason when the pattern is malformed."""
        pattern = joined.strip()
        exclusion = pattern.startswith("!")
        if exclusion:
            pattern = pattern[1:]
        if not pattern:
            raise ValueError('"!" alone excludes nothing')
        cleaned = clean_path(pattern)
        if cleaned.endswith("\\") and not cleaned.endswith("\\\\"):
            raise ValueError("ends in an unfinished escape (\\)")
        regex_text = "^"
        kind: Literal["exact", "prefix", "suffix", "regexp"] = "exact"
        index, position = 0, 0
        while position < len(cleaned):
            char = cleaned[position]
            position += 1
            following = cleaned[position] if position < len(cleaned) else None
            if char == "*":
                if following == "*":
                    position += 1
                    if position < len(cleaned) and cleaned[position] == "/":
                        position += 1
                    if position >= len(cleaned):
                        if kind == "exact":
                            kind = "prefix"
                        else:
                            regex_text += ".*"
                            kind = "regexp"
                    else:
                        regex_text += "(.*/)?"
                        kind = "regexp"
                    if index == 0:
                        kind = "suffix"
                else:
                    regex_text += "[^/]*"
                    kind = "regexp"
            elif char == "?":
                regex_text += "[^/]"
                kind = "regexp"
            elif char in _ESCAPED:
                regex_text += "\\" + char
            elif char == "\\":
                if following is not None:
                    regex_text += "\\" + following
                    position += 1
                    kind = "regexp"
                else:
                    regex_text += "\\\\"
            elif char in "[]":
                regex_text += char
                kind = "regexp"
            else:
                regex_text += char
            index += 1
        regex: re.Pattern[str] | None = None
        if kind == "regexp":
            try:
                regex = re.compile(regex_text + "$")
            except re.error as error:
                raise ValueError(f"is not a valid pattern: {error}") from None
        return cls(written=written, cleaned=cleaned, exclusion=exclusion, kind=kind, regex=regex)

    def matches(self, path: str) -> bool:
        if self.kind == "exact":
            return path == self.cleaned
        if self.kind == "prefix":
            return path.startswith(self.cleaned[:-2])
        if self.kind == "suffix":
            suffix = self.cleaned[2:]
            return path.endswith(suffix[1:] if suffix.startswith("/") else suffix)
        assert self.regex is not None
        return self.regex.match(path) is not None


class FilePatterns:
    """A project's `when_modified`: globs relative to its dir (`../` reaches up), `**` across dirs, `!` excludes.

    A file matches when the last pattern that matches it, or one of its parent dirs, is not an exclusion.
    """

    def __init__(self, project_dir: str, when_modified: Sequence[str]) -> None:
        self.patterns: list[FilePattern] = []
        for written in when_modified:
            entry = written.strip()
            exclusion = entry.startswith("!")
            joined = join_path(project_dir, entry[1:] if exclusion else entry)
            self.patterns.append(FilePattern.compile(written, ("!" if exclusion else "") + joined))

    def match(self, path: str) -> str | None:
        """The `when_modified` entry (as written) that makes `path` match, or None."""
        matched_by: str | None = None
        parent = posixpath.dirname(path) or "."
        parent_dirs = parent.split("/")
        for pattern in self.patterns:
            if pattern.exclusion != (matched_by is not None):
                continue
            hit = pattern.matches(path)
            if not hit and parent != ".":
                hit = any(pattern.matches("/".join(parent_dirs[: depth + 1])) for depth in range(len(parent_dirs)))
            if hit:
                matched_by = None if pattern.exclusion else pattern.written
        return matched_by


@lru_cache(maxsize=4096)
def _file_patterns(project_dir: str, when_modified: tuple[str, ...]) -> FilePatterns:
    return FilePatterns(project_dir, when_modified)


@lru_cache(maxsize=1024)
def slashed_regex(slashed: str) -> re.Pattern[str]:
    """`/main/` → the compiled regex `main` (branches and repos.yaml ids; validated when the file was read)."""
    return re.compile(slashed[1:-1])


# --- validated repo config ------------------------------------------------------------------------


class ProjectConfig(BaseModel):
    """One `projects:` entry. None means the config does not set the key."""

    model_config = ConfigDict(frozen=True)

    index: int
    """Position in `projects:`, for error messages (`projects[2].workflow`) and config order."""
    name: str | None = None
    dir: str
    workspace: str = DEFAULT_WORKSPACE
    branch: str | None = None
    """The base-branch regex as written (`/main/`); see `branch_matches`."""
    terraform_version: str | None = None
    terraform_distribution: str | None = None
    autoplan_enabled: bool = True
    when_modified: tuple[str, ...] = DEFAULT_WHEN_MODIFIED
    plan_requirements: tuple[str, ...] | None = None
    apply_requirements: tuple[str, ...] | None = None
    import_requirements: tuple[str, ...] | None = None
    workflow: str | None = None
    execution_order_group: int = 0
    depends_on: tuple[str, ...] = ()
    delete_source_branch_on_merge: bool | None = None
    repo_locking: bool | None = None
    repo_locks_mode: RepoLocksMode | None = None
    policy_check: bool | None = None
    custom_policy_check: bool | None = None
    silence_pr_comments: tuple[str, ...] | None = None
    apply_on_merge: ApplyOnMerge | None = None
    drift: DriftOverride | None = None

    @property
    def project(self) -> Project:
        return Project(dir=self.dir, workspace=self.workspace, name=self.name)

    @property
    def key_path(self) -> str:
        return f"projects[{self.index}]"

    def branch_matches(self, base_branch: str) -> bool:
        """Whether a pull request into `base_branch` considers this project (every branch when unset)."""
        return self.branch is None or slashed_regex(self.branch).search(base_branch) is not None

    @property
    def file_patterns(self) -> FilePatterns:
        return _file_patterns(self.dir, self.when_modified)

    def restricted_keys(self) -> Iterator[str]:
        """The keys this project sets that repos.yaml must allow in `allowed_overrides`."""
        for key in (
            "plan_requirements",
            "apply_requirements",
            "import_requirements",
            "workflow",
            "delete_source_branch_on_merge",
            "repo_locking",
            "policy_check",
            "custom_policy_check",
            "silence_pr_comments",
            "apply_on_merge",
            "drift",
        ):
            if getattr(self, key) is not None:
                yield key
        if self.repo_locks_mode is not None:
            yield "repo_locks"


class RepoConfig(BaseModel):
    """An atlantis.yaml or atlas.yaml, validated. None means the config does not set the key."""

    model_config = ConfigDict(frozen=True)

    file: str
    version: int = 3
    projects: tuple[ProjectConfig, ...] = ()
    workflows: dict[str, Workflow] = {}
    automerge: bool | None = None
    parallel_plan: bool | None = None
    parallel_apply: bool | None = None
    abort_on_execution_order_fail: bool = False
    delete_source_branch_on_merge: bool | None = None
    allowed_regexp_prefixes: tuple[str, ...] = ()
    autodiscover: Autodiscover | None = None
    repo_locks_mode: RepoLocksMode | None = None
    silence_pr_comments: tuple[str, ...] | None = None
    apply_on_merge: ApplyOnMerge | None = None

    def restricted_keys(self) -> Iterator[str]:
        """The top-level keys set that repos.yaml must allow in `allowed_overrides`."""
        for key in ("delete_source_branch_on_merge", "silence_pr_comments", "apply_on_merge"):
            if getattr(self, key) is not None:
                yield key
        if self.repo_locks_mode is not None:
            yield "repo_locks"

    def custom_steps(self) -> Iterator[tuple[str, str]]:
        """(workflow name, key path) of each run, env or multienv step in the config's workflows."""
        for name, workflow in self.workflows.items():
            for stage_name, stage in _stages(workflow):
                for index, step in enumerate(stage.steps):
                    if step.name in CUSTOM_STEPS:
                        yield name, f"workflows.{name}.{stage_name}.steps[{index}]"


def _stages(workflow: Workflow) -> Iterator[tuple[str, Stage]]:
    yield "plan", workflow.plan
    yield "apply", workflow.apply
    yield "import", workflow.import_
    yield "state_rm", workflow.state_rm
    yield "policy_check", workflow.policy_check


def workflow_from(name: str, raw: RawWorkflow | None) -> Workflow:
    """A written workflow as a Workflow; a stage it leaves out (or sets to null) keeps Atlantis's default steps."""
    stages: dict[str, Stage] = {}
    if raw is not None:
        for attribute in ("plan", "apply", "import_", "state_rm", "policy_check"):
            written: RawStage | None = getattr(raw, attribute)
            if written is not None:
                stages[attribute] = Stage(steps=tuple(written.steps or ()))
    return Workflow(name=name, **stages)


def repo_config_from(
    document: YamlDocument, *, server_workflows: Sequence[str] | None = None, repo_dir: Path | None = None
) -> RepoConfig:
    """Validate a parsed repo config; ConfigError for the first problem in the file.

    `server_workflows` names the workflows repos.yaml defines; when given, a project naming a
    workflow defined nowhere is an error here rather than when the config is applied. `repo_dir`
    is the checkout the config belongs to, against which an absolute `dir` is checked.
    """
    raw, problems = validate_raw(document, RawRepoConfig)
    problems.extend(_cross_key_problems(document, server_workflows))
    if repo_dir is not None:
        problems.extend(_absolute_dir_problems(document, repo_dir))
    if problems:
        problems.sort(key=lambda problem: problem[0])
        raise problems[0][1]
    assert isinstance(raw, RawRepoConfig)
    return _to_valid(document.file, raw)


def _to_valid(file: str, raw: RawRepoConfig) -> RepoConfig:
    projects: list[ProjectConfig] = []
    for index, project in enumerate(raw.projects or ()):
        autoplan = project.autoplan
        when_modified = autoplan.when_modified if autoplan is not None else None
        projects.append(
            ProjectConfig(
                index=index,
                name=project.name,
                dir=normalise_dir(project.dir),
                workspace=project.workspace or DEFAULT_WORKSPACE,
                branch=project.branch,
                terraform_version=project.terraform_version,
                terraform_distribution=project.terraform_distribution,
                autoplan_enabled=True if autoplan is None or autoplan.enabled is None else autoplan.enabled,
                when_modified=DEFAULT_WHEN_MODIFIED if when_modified is None else tuple(when_modified),
                plan_requirements=_optional_tuple(project.plan_requirements),
                apply_requirements=_optional_tuple(project.apply_requirements),
                import_requirements=_optional_tuple(project.import_requirements),
                workflow=project.workflow,
                execution_order_group=project.execution_order_group or 0,
                depends_on=tuple(project.depends_on or ()),
                delete_source_branch_on_merge=project.delete_source_branch_on_merge,
                repo_locking=project.repo_locking,
                repo_locks_mode=_locks_mode(project.repo_locks),
                policy_check=project.policy_check,
                custom_policy_check=project.custom_policy_check,
                silence_pr_comments=_optional_tuple(project.silence_pr_comments),
                apply_on_merge=ApplyOnMerge(project.apply_on_merge) if project.apply_on_merge else None,
                drift=DriftOverride.from_raw(project.drift),
            )
        )
    return RepoConfig(
        file=file,
        version=raw.version,
        projects=tuple(projects),
        workflows={name: workflow_from(name, workflow) for name, workflow in (raw.workflows or {}).items()},
        automerge=raw.automerge,
        parallel_plan=raw.parallel_plan,
        parallel_apply=raw.parallel_apply,
        abort_on_execution_order_fail=bool(raw.abort_on_execution_order_fail),
        delete_source_branch_on_merge=raw.delete_source_branch_on_merge,
        allowed_regexp_prefixes=tuple(raw.allowed_regexp_prefixes or ()),
        autodiscover=autodiscover_from(raw.autodiscover),
        repo_locks_mode=_locks_mode(raw.repo_locks),
        silence_pr_comments=_optional_tuple(raw.silence_pr_comments),
        apply_on_merge=ApplyOnMerge(raw.apply_on_merge) if raw.apply_on_merge else None,
    )


def autodiscover_from(raw: RawAutodiscover | None) -> Autodiscover | None:
    if raw is None:
        return None
    return Autodiscover(mode=AutodiscoverMode(raw.mode or "auto"), ignore_paths=tuple(raw.ignore_paths or ()))


def _locks_mode(raw: RawRepoLocks | None) -> RepoLocksMode | None:
    if raw is None:
        return None
    return RepoLocksMode(raw.mode or RepoLocksMode.ON_PLAN)


def _optional_tuple(values: Sequence[str] | None) -> tuple[str, ...] | None:
    return None if values is None else tuple(values)


# --- checks across keys, run on the written data so that they are found even when other keys are wrong ----


def _absolute_dir_problems(document: YamlDocument, repo_dir: Path) -> list[tuple[tuple[int, int], ConfigError]]:
    """An absolute `dir` that names no directory of the repository (`dir: /etc`), with the reason.

    Atlantis reads `dir: /infra/prod` as the repository's `infra/prod`, and real configs rely on it,
    so a leading slash is kept for a directory the repository has; any other absolute dir is most
    likely meant as a path on the server, where atlas never runs.
    """
    data = document.data if isinstance(document.data, dict) else {}
    projects = data.get("projects")
    problems: list[tuple[tuple[int, int], ConfigError]] = []
    for index, entry in enumerate(projects if isinstance(projects, list) else []):
        written = written_text(entry.get("dir")) if isinstance(entry, dict) else None
        if written is None or not written.replace("\\", "/").startswith("/"):
            continue
        relative = normalise_dir(written)
        if (repo_dir / relative).is_dir():
            continue
        path = ("projects", index, "dir")
        problems.append((document.position(path), document.error(path, (
            f"{json.dumps(written)} is an absolute path: atlas only runs inside the repository and reads dir "
            f"relative to its root (as Atlantis does), and this repository has no directory {json.dumps(relative)}. "
            "Write the project's directory relative to the repository root."))))
    return problems


def _cross_key_problems(
    document: YamlDocument, server_workflows: Sequence[str] | None
) -> list[tuple[tuple[int, int], ConfigError]]:
    data = document.data if isinstance(document.data, dict) else {}
    projects = data.get("projects")
    entries = [(index, entry) for index, entry in enumerate(projects)] if isinstance(projects, list) else []
    entries = [(index, entry) for index, entry in entries if isinstance(entry, dict)]
    problems: list[tuple[tuple[int, int], ConfigError]] = []

    def report(path: tuple[str | int, ...], problem: str) -> None:
        problems.append((document.position(path), document.error(path, problem)))

    names: dict[str, int] = {}
    for index, entry in entries:
        name = written_text(entry.get("name"))
        if name is None:
            continue
        if name in names:
            report(
                ("projects", index, "name"),
                f"{json.dumps(name)} is also the name of projects[{names[name]}]; names must be unique",
            )
        else:
            names[name] = index

    by_target: dict[tuple[str, str], list[int]] = {}
    for index, entry in entries:
        directory, workspace = written_text(entry.get("dir")), written_text(entry.get("workspace"))
        if directory is None or ".." in directory.split("/"):
            continue
        target = (normalise_dir(directory), workspace or DEFAULT_WORKSPACE)
        by_target.setdefault(target, []).append(index)
    for (directory, workspace), indices in by_target.items():
        if len(indices) < 2:
            continue
        for index in indices:
            if written_text(dict(entries)[index].get("name")) is None:
                others = ", ".join(f"projects[{other}]" for other in indices if other != index)
                report(
                    ("projects", index),
                    f"{others} also plan dir {json.dumps(directory)} in workspace {json.dumps(workspace)}; "
                    "projects that share a dir and workspace need a name each",
                )
                break

    graph: dict[str, list[str]] = {}
    for index, entry in entries:
        depends = entry.get("depends_on")
        if not isinstance(depends, list):
            continue
        name = written_text(entry.get("name"))
        for position, dependency in enumerate(depends):
            dependency_name = written_text(dependency)
            if dependency_name is None:
                continue
            path = ("projects", index, "depends_on", position)
            if dependency_name == name:
                report(path, "a project cannot depend on itself")
            elif dependency_name not in names:
                report(path, f"no project is named {json.dumps(dependency_name)}")
            elif name is not None:
                graph.setdefault(name, []).append(dependency_name)
    cycle = _find_cycle(graph)
    if cycle:
        report(("projects", names[cycle[0]], "depends_on"), f"depends_on forms a cycle: {' -> '.join(cycle)}")

    workflows = data.get("workflows")
    defined = set(workflows) if isinstance(workflows, dict) else set()
    if server_workflows is not None:
        defined |= {"default", *server_workflows}
    for index, entry in entries:
        workflow = written_text(entry.get("workflow"))
        if workflow is not None and server_workflows is not None and workflow not in defined:
            report(
                ("projects", index, "workflow"),
                f"workflow {json.dumps(workflow)} is not defined in {document.file} or on the server",
            )
        autoplan = entry.get("autoplan")
        patterns = autoplan.get("when_modified") if isinstance(autoplan, dict) else None
        if isinstance(patterns, list):
            for position, pattern in enumerate(patterns):
                text = written_text(pattern)
                if text is None:
                    continue
                try:
                    FilePatterns(".", [text])
                except ValueError as error:
                    report(("projects", index, "autoplan", "when_modified", position), f"{json.dumps(text)} {error}")
    return problems


def _find_cycle(graph: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A dependency cycle as a path that ends where it starts, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for neighbour in graph.get(node, ()):
            if state.get(neighbour) == 1:
                return [*stack[stack.index(neighbour) :], neighbour]
            if neighbour not in state:
                found = visit(neighbour)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in graph:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def default_workflow(server_workflows: Mapping[str, Workflow]) -> Workflow:
    """The workflow named `default`: repos.yaml's when it defines one, else Atlantis's."""
    return server_workflows.get("default", DEFAULT_WORKFLOW)


__all__ = [
    "DEFAULT_WHEN_MODIFIED",
    "ApplyOnMerge",
    "Autodiscover",
    "AutodiscoverMode",
    "ConfigError",
    "Drift",
    "DriftOverride",
    "FilePatterns",
    "ProjectConfig",
    "RepoConfig",
    "RepoLocksMode",
    "repo_config_from",
    "workflow_from",
]
