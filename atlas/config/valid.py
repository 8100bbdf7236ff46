"""A repo config as atlas uses it: validated projects with normalised dirs, workflows as
atlas.config.workflow objects, and the `when_modified` matcher with Atlantis's semantics.

Values a repo config leaves out stay None here, because whether they apply depends on what the
server allows (atlas.config.server resolves them into each project's effective settings).

Paths and `when_modified` patterns are in `file_patterns`; the checks across keys of a whole file
(dependencies, absolute dirs) in `valid_checks`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from atlas.config.file_patterns import (
    FilePatterns,
    file_patterns,
    normalise_dir,
    slashed_regex,
)
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
)
from atlas.config.valid_checks import DEFAULT_WORKSPACE, absolute_dir_problems, cross_key_problems
from atlas.config.workflow import DEFAULT_WORKFLOW, Stage, StepName, Workflow
from atlas.models import Project

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
        return file_patterns(self.dir, self.when_modified)

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
    emoji_reaction: str | None = None
    """The reaction atlas adds to a comment command once it has read this config (`none`: none)."""
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
    problems.extend(cross_key_problems(document, server_workflows))
    if repo_dir is not None:
        problems.extend(absolute_dir_problems(document, repo_dir))
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
        emoji_reaction=raw.emoji_reaction,
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


def default_workflow(server_workflows: Mapping[str, Workflow]) -> Workflow:
    """The workflow named `default`: repos.yaml's when it defines one, else Atlantis's."""
    return server_workflows.get("default", DEFAULT_WORKFLOW)


__all__ = [
    "DEFAULT_WHEN_MODIFIED",
    "DEFAULT_WORKSPACE",
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
