"""Which repositories and projects drift checks plan, and on which cron schedules.

Which repositories: those a repos.yaml entry with a `drift:` block matches (an exact id names one;
a `/regex/` matches the repositories atlas has seen pull requests of), within `--repo-allowlist`;
which projects: the repo config's (with autodiscovered ones as for pull requests), or every root
module without one, whose effective `drift:` is enabled.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from atlas.commands.context import CommandContext
from atlas.config.raw import ConfigError
from atlas.config.repo_settings import RepoSettings, load_repo_settings
from atlas.config.server import ProjectSettings, ServerConfig
from atlas.drift.workdirs import DRIFT_PULL_NUMBER, checkout, exclusive, lock_path, repo_log
from atlas.models import Project, PullRequest, Repo
from atlas.runtime.project_selection import select_projects
from atlas.runtime.projects import CONFIG_SUFFIXES, all_projects
from atlas.runtime.workingcopy import WorkingCopyError
from atlas.vcs import ChangedFile, VCSError

log = logging.getLogger(__name__)


DRIFT_USER = "atlas-drift"
"""Who a remediation holds the project's lock as."""

SCHEDULE_USER = "atlas"
"""Who scheduled checks are recorded as in the audit log."""


@dataclass(frozen=True)
class DriftTarget:
    """One project to check: its repository at the default branch head and its effective settings."""

    repo: Repo
    sha: str
    settings: ProjectSettings

    @property
    def project(self) -> Project:
        return self.settings.project

    @property
    def pull(self) -> PullRequest:
        """The default branch as a pull request numbered 0, for working copies, locks and run steps."""
        return PullRequest(repo=self.repo, number=DRIFT_PULL_NUMBER, head_sha=self.sha,
                           head_ref=self.repo.default_branch, base_ref=self.repo.default_branch, base_sha=self.sha,
                           author=DRIFT_USER, html_url=f"{self.repo.html_url}/tree/{self.repo.default_branch}")


def candidate_repos(ctx: CommandContext) -> dict[str, str]:
    """Repository key (`Repo.key`) → `HOST/PATH` of every allowed repository a repos.yaml drift block applies to,
    on GitHub and GitLab alike."""
    config = ctx.server_config
    found: dict[str, str] = {}
    for entry in config.repos:
        if entry.drift is None:
            continue
        if entry.id.startswith("/") and entry.id.endswith("/") and len(entry.id) >= 2:
            for repo in ctx.state.known_repos():
                repo_id = ctx.settings.repo_id(repo.full_name, repo.vcs)
                if entry.id_matches(repo_id):
                    found.setdefault(repo.key, repo_id)
        elif (key := ctx.settings.repo_key_of_id(entry.id)) is not None:
            found.setdefault(key, entry.id)
    return {name: repo_id for name, repo_id in sorted(found.items())
            if ctx.settings.repo_allowed(repo_id) and _drift_possible(config, repo_id)}


def _drift_possible(config: ServerConfig, repo_id: str) -> bool:
    """Drift is on for the repository, or its projects may turn it on (`allowed_overrides: [drift]`)."""
    policy = config.for_repo(repo_id)
    return policy.drift.enabled or "drift" in policy.allowed_overrides


def scheduled_repos(ctx: CommandContext, known: Mapping[str, Collection[str]] | None = None) -> dict[str, set[str]]:
    """Repository key (`Repo.key`) → the cron schedules its drift-enabled projects are checked on.

    Only repositories whose projects may set their own `drift:` are read at their default branch
    head; for the others repos.yaml says everything. A repository being checked right now keeps
    the schedules in `known` (the last answer), rather than waiting for its check to end.
    """
    table: dict[str, set[str]] = {}
    for key, repo_id in candidate_repos(ctx).items():
        policy = ctx.server_config.for_repo(repo_id)
        fallback = {policy.drift.schedule or ctx.settings.drift_schedule} if policy.drift.enabled else set()
        if "drift" not in policy.allowed_overrides:
            if fallback:
                table[key] = fallback
            continue
        try:
            repo = ctx.repo_of_key(key)
            sha = ctx.vcs.branch_head(repo, repo.default_branch)
            with exclusive(lock_path(ctx, repo), wait=False) as free:
                if free:
                    workdir = checkout(ctx, repo, sha, "default", repo_log(ctx, repo))
                    targets, _ = targets_at(ctx, repo, sha, workdir, name=None)
        except (VCSError, WorkingCopyError, ConfigError) as error:
            log.warning("cannot read the drift settings of %s at its default branch: %s", key, error)
            schedules = fallback
        else:
            if free:
                schedules = {target.settings.drift.schedule or ctx.settings.drift_schedule for target in targets}
            else:
                schedules = set((known or {}).get(key, fallback))
        if schedules:
            table[key] = schedules
    return table


def targets_at(
    ctx: CommandContext, repo: Repo, sha: str, workdir: Path, *, name: str | None
) -> tuple[list[DriftTarget], list[Project]]:
    """The projects to check at the head checked out in `workdir`, and those found with drift off.

    A project named (`--project`) is checked whether or not its drift detection is on.
    """
    settings = load_repo_settings(ctx, _head_pull(repo, sha), workdir)
    found = [settings.project(project) for project in projects_at_head(workdir, settings)]
    if name is not None:
        return [DriftTarget(repo, sha, s) for s in found if _names(s.project, name)], []
    enabled = [DriftTarget(repo, sha, s) for s in found if s.drift.enabled]
    return enabled, [s.project for s in found if not s.drift.enabled]


def projects_at_head(workdir: Path, repo: RepoSettings) -> list[Project]:
    """Every project of the checked-out head: the repo config's for its branch (autodiscovered ones as
    configured), or every root module without a repo config."""
    roots = all_projects(workdir)
    if not repo.has_repo_config:
        return roots
    effective = repo.effective
    configured = [s.project for s in effective.projects
                  if (s.config is None or s.config.branch_matches(repo.base_branch))
                  and (workdir / s.project.dir).is_dir()]
    configured_dirs = {s.project.dir for s in effective.projects}
    # Every root "changed" makes select_projects autodiscover exactly as for a pull request (mode, ignore_paths).
    every_root = [ChangedFile(filename=f"{root.dir}/{_config_file(workdir / root.dir)}") for root in roots]
    discovered = [match.project for match in select_projects(workdir, every_root, effective,
                                                             base_branch=repo.base_branch, manual=True)
                  if match.project.dir not in configured_dirs]
    return configured + discovered


def _config_file(directory: Path) -> str:
    return next(entry.name for entry in sorted(directory.iterdir()) if entry.name.endswith(CONFIG_SUFFIXES))


def _names(project: Project, name: str) -> bool:
    """Whether `--project NAME` means this project: its name, its dir, or DIR/WORKSPACE."""
    wanted = name.strip().strip("/") or "."
    return wanted in (project.name, project.dir, f"{project.dir}/{project.workspace}", project.label)


def _head_pull(repo: Repo, sha: str) -> PullRequest:
    return PullRequest(repo=repo, number=DRIFT_PULL_NUMBER, head_sha=sha, head_ref=repo.default_branch,
                       base_ref=repo.default_branch, base_sha=sha, author=DRIFT_USER)
