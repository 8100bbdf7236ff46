"""A repository's settings for one command: server flags, then repos.yaml, then the repo's own config.

Loaded from the working copy the command runs on (the pull request's head, or the merge commit
after merge), so the config that is planned is the config that is reviewed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from atlas.config.loading import load_repo_config
from atlas.config.raw import ConfigError
from atlas.config.server import EffectiveConfig, ProjectSettings, RepoPolicy, ServerConfig, apply_repo_config
from atlas.config.settings import Settings
from atlas.config.valid import ApplyOnMerge
from atlas.models import Project, PullRequest


class ConfigSources(Protocol):
    """Where a repository's settings come from besides its own config: the server's settings and repos.yaml.

    A command's or a drift check's context is one.
    """

    @property
    def settings(self) -> Settings: ...

    @property
    def server_config(self) -> ServerConfig: ...


@dataclass(frozen=True)
class RepoSettings:
    effective: EffectiveConfig
    base_branch: str

    @property
    def has_repo_config(self) -> bool:
        return self.effective.repo_config is not None

    @property
    def config_file(self) -> str:
        return self.effective.repo_config.file if self.effective.repo_config else ""

    def project(self, project: Project) -> ProjectSettings:
        return self.effective.for_project(project)

    def apply_on_merge(self, project: Project) -> str:
        return str(self.project(project).apply_on_merge.value)

    def depends_on(self, project: Project) -> list[Project]:
        """The projects (named in `depends_on`) whose apply this project's apply waits for."""
        found = (self._named(name) for name in self.project(project).depends_on)
        return [settings.project for settings in found if settings is not None]

    def _named(self, name: str) -> ProjectSettings | None:
        """The configured project called `name` among those for the base branch."""
        return next((settings for settings in self.effective.projects if settings.project.name == name
                     and (settings.config is None or settings.config.branch_matches(self.base_branch))), None)

    def ordered(self, projects: Sequence[Project]) -> list[list[Project]]:
        """Projects in execution order groups (ascending); within a group, a project after those it
        `depends_on`, otherwise in the given order."""
        groups: dict[int, list[Project]] = {}
        for project in projects:
            groups.setdefault(self.project(project).execution_order_group, []).append(project)
        return [self._dependencies_first(groups[key]) for key in sorted(groups)]

    def _dependencies_first(self, group: list[Project]) -> list[Project]:
        placed: list[Project] = []
        visiting: set[Project] = set()

        def place(project: Project) -> None:
            if project in placed or project in visiting:  # a cycle keeps the given order
                return
            visiting.add(project)
            for dependency in self.depends_on(project):
                if dependency in group:
                    place(dependency)
            visiting.discard(project)
            placed.append(project)

        for project in group:
            place(project)
        return placed

    def flag(self, repo_value: bool | None, server_value: bool) -> bool:
        return server_value if repo_value is None else repo_value


def load_repo_settings(ctx: ConfigSources, pull: PullRequest, workdir: Path) -> RepoSettings:
    """The settings for this pull request; raises ConfigError (for a PR comment) when a config is invalid."""
    settings = ctx.settings
    defaults = RepoPolicy(
        repo_id=pull.repo.allowlist_id,
        apply_requirements=tuple(settings.apply_requirements),
        apply_on_merge=ApplyOnMerge(settings.apply_on_merge),
        # --enable-policy-checks checks every repository's plans unless repos.yaml says policy_check: false.
        policy_check=settings.enable_policy_checks,
    )
    policy = ctx.server_config.for_repo(pull.repo.allowlist_id, pull.base_ref, defaults=defaults)
    repo_config = load_repo_config(workdir, policy.repo_config_file,
                                   server_workflows=list(ctx.server_config.workflows))
    effective = apply_repo_config(policy, repo_config)
    if isinstance(effective, ConfigError):
        raise effective
    return RepoSettings(effective=effective, base_branch=pull.base_ref)
