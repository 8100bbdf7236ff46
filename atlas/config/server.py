"""repos.yaml, the server-side repo config: what each repository may do, and the effective settings
of a repository's projects once its own config is applied within those limits.

As in Atlantis: every `repos:` entry whose `id` matches (exactly, or a `/regex/`) applies in order,
a later entry overriding the keys it sets; hooks of all matching entries run, in order; before any
entry applies, no requirements, no overrides and no custom workflows are allowed.

Over 500 lines on purpose: the repos.yaml models, their validation and the merge of matching
entries into one repository's effective settings are read together, in the order Atlantis applies them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from atlas.config.file_patterns import normalise_dir, slashed_regex
from atlas.config.raw import (
    MAX_CONFIG_BYTES,
    OVERRIDABLE_KEYS,
    ConfigError,
    RawHook,
    RawRepoEntry,
    RawServerConfig,
    YamlDocument,
    parse_yaml,
    validate_raw,
)
from atlas.config.valid import (
    DEFAULT_WHEN_MODIFIED,
    ApplyOnMerge,
    Autodiscover,
    Drift,
    DriftOverride,
    ProjectConfig,
    RepoConfig,
    RepoLocksMode,
    autodiscover_from,
    default_workflow,
    workflow_from,
)
from atlas.config.workflow import DEFAULT_WORKFLOW, Workflow
from atlas.models import Project
from atlas.policy.sets import PolicyConfigError, PolicySets, parse_policies

T = TypeVar("T")


class WorkflowHook(BaseModel):
    """A command repos.yaml runs before (pre) or after (post) a command's workflows, in the repository root."""

    model_config = ConfigDict(frozen=True)

    run: str
    description: str | None = None
    shell: str = "sh"
    shell_args: tuple[str, ...] = ("-c",)
    commands: tuple[str, ...] = ()
    """The commands it runs for (`plan`, `apply`, …); empty: every command."""

    def runs_for(self, command: str) -> bool:
        return not self.commands or command in self.commands

    @classmethod
    def from_raw(cls, raw: RawHook) -> WorkflowHook:
        commands = tuple(part.strip() for part in (raw.commands or "").split(",") if part.strip())
        return cls(
            run=raw.run,
            description=raw.description,
            shell=raw.shell or "sh",
            shell_args=tuple(raw.shell_args.split()) if raw.shell_args else ("-c",),
            commands=commands,
        )


class RepoEntry(BaseModel):
    """One `repos:` entry. None means the entry does not set the key, so earlier entries' value stands."""

    model_config = ConfigDict(frozen=True)

    id: str
    """An exact `HOST/OWNER/NAME`, or a `/regex/` searched in it."""
    branch: str | None = None
    repo_config_file: str | None = None
    plan_requirements: tuple[str, ...] | None = None
    apply_requirements: tuple[str, ...] | None = None
    import_requirements: tuple[str, ...] | None = None
    workflow: str | None = None
    allowed_overrides: tuple[str, ...] | None = None
    allowed_workflows: tuple[str, ...] | None = None
    allow_custom_workflows: bool | None = None
    delete_source_branch_on_merge: bool | None = None
    repo_locking: bool | None = None
    repo_locks_mode: RepoLocksMode | None = None
    policy_check: bool | None = None
    custom_policy_check: bool | None = None
    autodiscover: Autodiscover | None = None
    silence_pr_comments: tuple[str, ...] | None = None
    pre_workflow_hooks: tuple[WorkflowHook, ...] = ()
    post_workflow_hooks: tuple[WorkflowHook, ...] = ()
    apply_on_merge: ApplyOnMerge | None = None
    drift: DriftOverride | None = None

    def id_matches(self, repo_id: str) -> bool:
        if len(self.id) >= 2 and self.id.startswith("/") and self.id.endswith("/"):
            return slashed_regex(self.id).search(repo_id) is not None
        return self.id == repo_id

    def branch_matches(self, base_branch: str | None) -> bool:
        return base_branch is None or self.branch is None or slashed_regex(self.branch).search(base_branch) is not None


class RepoPolicy(BaseModel):
    """What the server decides for one repository: its defaults and what its own config may change."""

    model_config = ConfigDict(frozen=True)

    repo_id: str
    branch: str | None = None
    """The base-branch regex of the last matching entry: pull requests into other branches are ignored."""
    repo_config_file: str | None = None
    plan_requirements: tuple[str, ...] = ()
    apply_requirements: tuple[str, ...] = ()
    import_requirements: tuple[str, ...] = ()
    workflow: Workflow = DEFAULT_WORKFLOW
    allowed_overrides: frozenset[str] = frozenset()
    allowed_workflows: tuple[str, ...] = ()
    allow_custom_workflows: bool = False
    delete_source_branch_on_merge: bool = False
    repo_locks_mode: RepoLocksMode = RepoLocksMode.ON_PLAN
    policy_check: bool = False
    custom_policy_check: bool = False
    silence_pr_comments: tuple[str, ...] = ()
    pre_workflow_hooks: tuple[WorkflowHook, ...] = ()
    post_workflow_hooks: tuple[WorkflowHook, ...] = ()
    apply_on_merge: ApplyOnMerge = ApplyOnMerge.OFF
    drift: Drift = Drift()
    autodiscover: Autodiscover | None = None
    """Set by repos.yaml: replaces the repo config's `autodiscover` as a whole."""
    server_workflows: dict[str, Workflow] = Field(default_factory=dict)

    def branch_matches(self, base_branch: str) -> bool:
        """Whether atlas acts on pull requests into `base_branch` for this repository."""
        return self.branch is None or slashed_regex(self.branch).search(base_branch) is not None

    @classmethod
    def allowing_everything(cls, repo_id: str, server_workflows: Iterable[str] = ()) -> RepoPolicy:
        """A policy that lets the repo config set every key and define workflows, for previews without repos.yaml.

        `server_workflows` names workflows to assume the server defines (with Atlantis's default steps).
        """
        return cls(
            repo_id=repo_id,
            allowed_overrides=frozenset(OVERRIDABLE_KEYS),
            allow_custom_workflows=True,
            server_workflows={name: Workflow(name=name) for name in server_workflows},
        )


class ServerConfig(BaseModel):
    """A validated repos.yaml."""

    model_config = ConfigDict(frozen=True)

    file: str = ""
    repos: tuple[RepoEntry, ...] = ()
    workflows: dict[str, Workflow] = Field(default_factory=dict)
    policies: PolicySets | None = None
    """The `policies:` block (policy sets, their owners), used when --enable-policy-checks is on."""

    def for_repo(
        self, repo_id: str, base_branch: str | None = None, *, defaults: RepoPolicy | None = None
    ) -> RepoPolicy:
        """The policy for `HOST/OWNER/NAME`: `defaults` (or Atlantis's), then each matching entry in order.

        With `base_branch`, hooks come only from entries whose `branch` matches it, as Atlantis runs them.
        """
        base = defaults or RepoPolicy(repo_id=repo_id)
        policy: dict[str, Any] = {name: getattr(base, name) for name in RepoPolicy.model_fields}
        policy["workflow"] = default_workflow(self.workflows)
        repo_locking = True
        for entry in self.repos:
            if not entry.id_matches(repo_id):
                continue
            policy["branch"] = entry.branch
            for key in (
                "repo_config_file",
                "plan_requirements",
                "apply_requirements",
                "import_requirements",
                "allowed_workflows",
                "allow_custom_workflows",
                "delete_source_branch_on_merge",
                "repo_locks_mode",
                "policy_check",
                "custom_policy_check",
                "autodiscover",
                "silence_pr_comments",
                "apply_on_merge",
            ):
                value = getattr(entry, key)
                if value is not None:
                    policy[key] = value
            if entry.allowed_overrides is not None:
                policy["allowed_overrides"] = frozenset(entry.allowed_overrides)
            if entry.repo_locking is not None:
                repo_locking = entry.repo_locking
            if entry.workflow is not None:
                policy["workflow"] = self.workflows.get(entry.workflow) or default_workflow(self.workflows)
            if entry.drift is not None:
                policy["drift"] = policy["drift"].merged(entry.drift)
            if entry.branch_matches(base_branch):
                policy["pre_workflow_hooks"] = (*policy["pre_workflow_hooks"], *entry.pre_workflow_hooks)
                policy["post_workflow_hooks"] = (*policy["post_workflow_hooks"], *entry.post_workflow_hooks)
        if not repo_locking:  # the older key turns locks off whatever repo_locks says, as in Atlantis
            policy["repo_locks_mode"] = RepoLocksMode.DISABLED
        policy.update(repo_id=repo_id, server_workflows=self.workflows)
        return RepoPolicy.model_validate(policy)


def parse_server_config(text: str, file: str) -> ServerConfig:
    """Validate the text of a repos.yaml; ConfigError for the first problem in the file."""
    document = parse_yaml(text, file)
    raw, problems = validate_raw(document, RawServerConfig)
    problems.extend(_undefined_workflows(document))
    if problems:
        problems.sort(key=lambda problem: problem[0])
        raise problems[0][1]
    assert isinstance(raw, RawServerConfig)
    policies = None
    if raw.policies is not None:
        try:
            policies = parse_policies(raw.policies, base_dir=str(Path(file).parent) if file else None)
        except PolicyConfigError as error:
            path, _, problem = error.problems[0].partition(": ")
            raise ConfigError(file, path, problem) from None
    repos = tuple(_entry(entry) for entry in raw.repos or ())
    _check_policies_passed(file, repos, policies)
    return ServerConfig(
        file=file,
        repos=repos,
        workflows={name: workflow_from(name, workflow) for name, workflow in (raw.workflows or {}).items()},
        policies=policies,
    )


POLICIES_PASSED = "policies_passed"
"""The requirement that a project's policy check passed (or its failures were approved) before apply."""


def _check_policies_passed(file: str, repos: tuple[RepoEntry, ...], policies: PolicySets | None) -> None:
    """`policies_passed` only where a policy check can run: an apply requirement, with policy sets, policy_check on."""
    for index, entry in enumerate(repos):
        for key in ("plan_requirements", "import_requirements"):
            if POLICIES_PASSED in (getattr(entry, key) or ()):
                raise ConfigError(file, f"repos[{index}].{key}", (
                    "policies_passed can only be an apply requirement: policies judge a plan, so nothing can "
                    "have passed them before a plan or an import; move it to apply_requirements"))
        if POLICIES_PASSED not in (entry.apply_requirements or ()):
            continue
        where = f"repos[{index}].apply_requirements"
        if policies is None:
            raise ConfigError(file, where, (
                "policies_passed needs policy sets to check, and this file has no `policies:` block; add one "
                "(and run the server with --enable-policy-checks), or remove policies_passed"))
        if entry.policy_check is False:
            raise ConfigError(file, where, (
                "policies_passed cannot hold where `policy_check: false` turns policy checks off for the "
                "repository; remove one of them"))


def load_server_config(path: Path) -> ServerConfig:
    """Read a repos.yaml (`--repo-config`); ConfigError naming the file when it cannot be read or is wrong."""
    return parse_server_config(_read(path, str(path)), str(path))


def _read(path: Path, file: str) -> str:
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(file, "", f"is larger than {MAX_CONFIG_BYTES // 1024} KiB")
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(file, "", "is not UTF-8 text") from None
    except OSError as error:
        raise ConfigError(file, "", f"cannot be read: {error.strerror or error}") from None


def _entry(raw: RawRepoEntry) -> RepoEntry:
    def optional(values: Sequence[str] | None) -> tuple[str, ...] | None:
        return None if values is None else tuple(values)

    return RepoEntry(
        id=raw.id,
        branch=raw.branch,
        repo_config_file=raw.repo_config_file,
        plan_requirements=optional(raw.plan_requirements),
        apply_requirements=optional(raw.apply_requirements),
        import_requirements=optional(raw.import_requirements),
        workflow=raw.workflow,
        allowed_overrides=optional(raw.allowed_overrides),
        allowed_workflows=optional(raw.allowed_workflows),
        allow_custom_workflows=raw.allow_custom_workflows,
        delete_source_branch_on_merge=raw.delete_source_branch_on_merge,
        repo_locking=raw.repo_locking,
        repo_locks_mode=RepoLocksMode(raw.repo_locks.mode or "on_plan") if raw.repo_locks is not None else None,
        policy_check=raw.policy_check,
        custom_policy_check=raw.custom_policy_check,
        autodiscover=autodiscover_from(raw.autodiscover),
        silence_pr_comments=optional(raw.silence_pr_comments),
        pre_workflow_hooks=tuple(WorkflowHook.from_raw(hook) for hook in raw.pre_workflow_hooks or ()),
        post_workflow_hooks=tuple(WorkflowHook.from_raw(hook) for hook in raw.post_workflow_hooks or ()),
        apply_on_merge=ApplyOnMerge(raw.apply_on_merge) if raw.apply_on_merge else None,
        drift=DriftOverride.from_raw(raw.drift),
    )


def _undefined_workflows(document: YamlDocument) -> list[tuple[tuple[int, int], ConfigError]]:
    """Entries naming a workflow that `workflows:` does not define (`default` always exists)."""
    data = document.data if isinstance(document.data, dict) else {}
    workflows = data.get("workflows")
    defined = {"default", *(workflows if isinstance(workflows, dict) else ())}
    repos = data.get("repos")
    problems: list[tuple[tuple[int, int], ConfigError]] = []
    for index, entry in enumerate(repos if isinstance(repos, list) else ()):
        if not isinstance(entry, dict):
            continue
        named: list[tuple[tuple[str | int, ...], object]] = [(("repos", index, "workflow"), entry.get("workflow"))]
        allowed = entry.get("allowed_workflows")
        if isinstance(allowed, list):
            named += [(("repos", index, "allowed_workflows", i), name) for i, name in enumerate(allowed)]
        for path, name in named:
            if isinstance(name, str) and name not in defined:
                problem = f"workflow {json.dumps(name)} is not defined in workflows"
                problems.append((document.position(path), document.error(path, problem)))
    return problems


# --- a repository's config within its policy ------------------------------------------------------


class ProjectSettings(BaseModel):
    """Everything atlas needs to run commands for one project, server policy and repo config combined."""

    model_config = ConfigDict(frozen=True)

    project: Project
    config: ProjectConfig | None = None
    """The repo config's entry for the project; None for a project found without one."""
    plan_requirements: tuple[str, ...] = ()
    apply_requirements: tuple[str, ...] = ()
    import_requirements: tuple[str, ...] = ()
    workflow: Workflow = DEFAULT_WORKFLOW
    repo_locks_mode: RepoLocksMode = RepoLocksMode.ON_PLAN
    apply_on_merge: ApplyOnMerge = ApplyOnMerge.OFF
    drift: Drift = Drift()
    terraform_version: str | None = None
    terraform_distribution: str | None = None
    delete_source_branch_on_merge: bool = False
    policy_check: bool = False
    custom_policy_check: bool = False
    silence_pr_comments: tuple[str, ...] = ()

    @property
    def autoplan_enabled(self) -> bool:
        return self.config.autoplan_enabled if self.config else True

    @property
    def when_modified(self) -> tuple[str, ...]:
        return self.config.when_modified if self.config else DEFAULT_WHEN_MODIFIED

    @property
    def execution_order_group(self) -> int:
        return self.config.execution_order_group if self.config else 0

    @property
    def depends_on(self) -> tuple[str, ...]:
        return self.config.depends_on if self.config else ()


class EffectiveConfig(BaseModel):
    """A repository's config applied within its server policy: the result of `apply_repo_config`."""

    model_config = ConfigDict(frozen=True)

    policy: RepoPolicy
    repo_config: RepoConfig | None = None
    projects: tuple[ProjectSettings, ...] = ()
    """The configured projects, in config order."""
    automerge: bool | None = None
    """None: the server's --automerge decides; likewise parallel_plan and parallel_apply."""
    parallel_plan: bool | None = None
    parallel_apply: bool | None = None
    abort_on_execution_order_fail: bool = False
    delete_source_branch_on_merge: bool = False
    allowed_regexp_prefixes: tuple[str, ...] = ()
    autodiscover: Autodiscover = Autodiscover()

    @property
    def pre_workflow_hooks(self) -> tuple[WorkflowHook, ...]:
        return self.policy.pre_workflow_hooks

    @property
    def post_workflow_hooks(self) -> tuple[WorkflowHook, ...]:
        return self.policy.post_workflow_hooks

    def for_project(self, project: Project) -> ProjectSettings:
        """The settings of a project: its configured entry (by name, else dir and workspace), or the defaults."""
        for settings in self.projects:
            if project.name is not None and settings.project.name == project.name:
                return settings
        for settings in self.projects:
            same_target = (settings.project.dir, settings.project.workspace) == (
                normalise_dir(project.dir),
                project.workspace,
            )
            if same_target and (project.name is None or settings.project.name is None):
                return settings
        return self.default_settings(project)

    def default_settings(self, project: Project) -> ProjectSettings:
        """The settings of a project the repo config does not list: the server policy's."""
        policy = self.policy
        return ProjectSettings(
            project=project,
            plan_requirements=policy.plan_requirements,
            apply_requirements=policy.apply_requirements,
            import_requirements=policy.import_requirements,
            workflow=policy.workflow,
            repo_locks_mode=self._top_level(lambda config: config.repo_locks_mode, policy.repo_locks_mode),
            apply_on_merge=self._top_level(lambda config: config.apply_on_merge, policy.apply_on_merge),
            drift=policy.drift,
            delete_source_branch_on_merge=self.delete_source_branch_on_merge,
            policy_check=policy.policy_check,
            custom_policy_check=policy.custom_policy_check,
            silence_pr_comments=self._top_level(lambda config: config.silence_pr_comments, policy.silence_pr_comments),
        )

    def _top_level(self, key: Callable[[RepoConfig], T | None], server: T) -> T:
        """A top-level repo config key (which the policy allowed, or the config was refused), else the server's."""
        value = key(self.repo_config) if self.repo_config is not None else None
        return server if value is None else value


def apply_repo_config(policy: RepoPolicy, repo_config: RepoConfig | None) -> EffectiveConfig | ConfigError:
    """The repository's config applied within its policy, or a ConfigError naming the key the server refuses."""
    if repo_config is None:
        return EffectiveConfig(policy=policy, autodiscover=policy.autodiscover or Autodiscover(),
                               delete_source_branch_on_merge=policy.delete_source_branch_on_merge)
    refusal = _refusal(policy, repo_config)
    if refusal is not None:
        return refusal
    delete_source_branch = policy.delete_source_branch_on_merge
    if repo_config.delete_source_branch_on_merge is not None:
        delete_source_branch = repo_config.delete_source_branch_on_merge
    effective = EffectiveConfig(
        policy=policy,
        repo_config=repo_config,
        automerge=repo_config.automerge,
        parallel_plan=repo_config.parallel_plan,
        parallel_apply=repo_config.parallel_apply,
        abort_on_execution_order_fail=repo_config.abort_on_execution_order_fail,
        delete_source_branch_on_merge=delete_source_branch,
        allowed_regexp_prefixes=repo_config.allowed_regexp_prefixes,
        autodiscover=policy.autodiscover or repo_config.autodiscover or Autodiscover(),
    )
    projects = tuple(_project_settings(effective, project) for project in repo_config.projects)
    return effective.model_copy(update={"projects": projects})


def _project_settings(effective: EffectiveConfig, config: ProjectConfig) -> ProjectSettings:
    policy = effective.policy
    assert effective.repo_config is not None
    base = effective.default_settings(config.project)
    locks = base.repo_locks_mode
    if config.repo_locking is not None:
        locks = (
            RepoLocksMode.DISABLED
            if not config.repo_locking
            else (RepoLocksMode.ON_PLAN if locks is RepoLocksMode.DISABLED else locks)
        )
    if config.repo_locks_mode is not None:
        locks = config.repo_locks_mode
    return base.model_copy(
        update={
            "config": config,
            "plan_requirements": _first(config.plan_requirements, base.plan_requirements),
            "apply_requirements": _first(config.apply_requirements, base.apply_requirements),
            "import_requirements": _first(config.import_requirements, base.import_requirements),
            "workflow": _workflow(policy, effective.repo_config, config.workflow),
            "repo_locks_mode": locks,
            "apply_on_merge": _first(config.apply_on_merge, base.apply_on_merge),
            "drift": base.drift.merged(config.drift),
            "terraform_version": config.terraform_version,
            "terraform_distribution": config.terraform_distribution,
            "delete_source_branch_on_merge": _first(
                config.delete_source_branch_on_merge, base.delete_source_branch_on_merge
            ),
            "policy_check": _first(config.policy_check, base.policy_check),
            "custom_policy_check": _first(config.custom_policy_check, base.custom_policy_check),
            "silence_pr_comments": _first(config.silence_pr_comments, base.silence_pr_comments),
        }
    )


def _first(value: T | None, default: T) -> T:
    return default if value is None else value


def _workflow(policy: RepoPolicy, repo_config: RepoConfig, name: str | None) -> Workflow:
    """A project's workflow: the repo's own by that name, else the server's, else the policy's."""
    if name is None:
        return policy.workflow
    if policy.allow_custom_workflows and name in repo_config.workflows:
        return repo_config.workflows[name]
    if name in policy.server_workflows:
        return policy.server_workflows[name]
    return default_workflow(policy.server_workflows)


def _refusal(policy: RepoPolicy, config: RepoConfig) -> ConfigError | None:
    """The first key of the repo config the server does not allow, as an error naming it."""
    allowed = policy.allowed_overrides

    def refuse(path: str, key: str) -> ConfigError:
        return ConfigError(
            config.file,
            path,
            f"the server does not let this repository set {key}: repos.yaml needs allowed_overrides: [{key}] for it",
        )

    for key in config.restricted_keys():
        if key not in allowed:
            return refuse(key, key)
    for project in config.projects:
        for key in project.restricted_keys():
            if key not in allowed:
                return refuse(f"{project.key_path}.{key}", key)
    if config.workflows and not policy.allow_custom_workflows:
        first = next(iter(config.workflows))
        path = next((path for _, path in config.custom_steps()), f"workflows.{first}")
        return ConfigError(
            config.file,
            path,
            "the server does not let this repository define workflows: repos.yaml needs "
            "allow_custom_workflows: true for it",
        )
    defined = {"default", *policy.server_workflows, *config.workflows}
    for project in config.projects:
        name = project.workflow
        if name is None:
            continue
        path = f"{project.key_path}.workflow"
        if name not in defined:
            return ConfigError(
                config.file, path, f"workflow {json.dumps(name)} is not defined in {config.file} or on the server"
            )
        repo_defined = policy.allow_custom_workflows and name in config.workflows
        if policy.allowed_workflows and not repo_defined and name not in policy.allowed_workflows:
            return ConfigError(
                config.file,
                path,
                f"workflow {json.dumps(name)} is not allowed for this repository; "
                f"allowed: {', '.join(policy.allowed_workflows)}",
            )
    return None
