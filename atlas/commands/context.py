"""What a running command needs: the backends it talks to, typed on their protocols.

`atlas.bootstrap` builds every context (server, rq worker, CLI) from the settings; nothing here
knows which backend sits behind a protocol. Everything a command uses is passed at construction,
including how to queue follow-up work, so no context can lack it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from atlas.config.server import ProjectSettings, ServerConfig
from atlas.config.settings import Settings
from atlas.github.checks import CheckRuns
from atlas.models import Distribution, Job, Project, PullRequest, Repo, VCSHost, split_repo_key
from atlas.notify import Notifier
from atlas.policy.engine import PolicySetCache
from atlas.render.comments import COMMENT_LIMIT
from atlas.runtime.cancellation import RunningJobs
from atlas.runtime.joblog import JobLog
from atlas.runtime.required_version import required_version
from atlas.runtime.terraform import TerraformRunner
from atlas.runtime.tfversions import TerraformVersionError, TerraformVersions
from atlas.runtime.workingcopy import WorkingCopies
from atlas.stores.jobs import LiveOutput
from atlas.stores.locks import LockStore
from atlas.stores.plans import ArtifactStore, PlanRecord, artifact_name, forget_plans, pull_dir
from atlas.stores.state import StateStore
from atlas.vcs import VCSClient, VCSClients

JobSubmit = Callable[[Job], None]
"""Queues a job (the queue's `enqueue`): commands queue follow-up work with it, such as the plan of
a pull request that was waiting for a lock."""

GitToken = Callable[[str], "str | None"]
"""The token git clones and fetches a repository (`OWNER/NAME`) with: the configured token, or the
GitHub App installation's current one; None for no credentials."""

CancelElsewhere = Callable[[str], None]
"""Asks whichever process runs a pull request's job to interrupt it (rq workers)."""


@dataclass(kw_only=True)
class CommandContext:
    settings: Settings
    state: StateStore
    vcs: VCSClient
    terraform: TerraformRunner
    working_copies: WorkingCopies
    locks: LockStore
    versions: TerraformVersions
    tofu_versions: TerraformVersions
    artifacts: ArtifactStore
    server_config: ServerConfig
    # None only where no queue can be reached from this process (the admin CLI on the embedded
    # default, whose queue lives in the server): a lock handed over there stays a pending handoff,
    # which the server's sweep plans. Required, so that no context forgets to say which it is.
    submit: JobSubmit | None
    # None where every job runs in this process (the embedded queue).
    cancel_elsewhere: CancelElsewhere | None
    running: RunningJobs = field(default_factory=RunningJobs)
    # Sends apply results (and drift findings) to the configured webhooks; never fails the caller.
    notifier: Notifier = field(default_factory=lambda: Notifier(()))
    policy_cache: PolicySetCache = field(default_factory=PolicySetCache)
    """Compiled policy sets, shared by this process's jobs until a set's files change."""
    # None: the configured --gh-token for every repository.
    git_token: GitToken | None = None
    # App mode: notes the installation a job's delivery named for its repository (`OWNER/NAME`, id).
    remember_installation: Callable[[str, int], None] | None = None
    # Redis mode: where a running job's output goes, so that pages on any host follow it live.
    live_output: LiveOutput | None = None
    # `--gh-checks`: the check runs API of a repository (`OWNER/NAME`); None without check runs.
    checks: Callable[[str], CheckRuns] | None = None

    def terraform_for(self, version: str | None, distribution: str | None = None) -> TerraformRunner:
        """The runner for a project's distribution (None: `--tf-distribution`) and version or constraint
        (None: that distribution's default binary).

        Raises TerraformVersionError, with a message for the pull request, when it cannot be had.
        """
        chosen = Distribution(distribution or self.settings.tf_distribution)
        versions = self.tofu_versions if chosen is Distribution.OPENTOFU else self.versions
        binary = str(versions.binary_for(version))
        base = self.terraform
        if binary == base.binary and chosen is base.distribution:
            return base
        # Same plugin cache, secrets, sandbox and server-wide bound on concurrent runs; only the binary differs.
        return TerraformRunner(binary, plugin_cache_dir=base.plugin_cache_dir, secrets=base.secrets,
                               default_timeout=base.default_timeout, concurrency=base.concurrency,
                               grace_period=base.grace_period, sandbox=base.sandbox, distribution=chosen)

    def runner_for(self, settings: ProjectSettings, project_dir: Path) -> TerraformRunner:
        """The runner for a project: its `terraform_version`, else the `required_version` its code declares
        (the newest installed or installable version that meets it), else the distribution's default.

        Raises TerraformVersionError with a message for the pull request that says where the version came from.
        """
        version, source = settings.terraform_version, "terraform_version"
        if not version:
            declared = required_version(project_dir)
            if declared is not None:
                version, source = declared.constraint, f"required_version in {declared.where}"
        distribution = Distribution(settings.terraform_distribution or self.settings.tf_distribution)
        try:
            return self.terraform_for(version, distribution)
        except TerraformVersionError as error:
            raise TerraformVersionError(f'{distribution.display_name} {source} "{version}": {error}') from None

    @property
    def can_write_to_github(self) -> bool:
        """Whether atlas has credentials to comment with (a GitHub token or App, or a GitLab token)."""
        return self.git_token is not None or self.settings.gh_token is not None or self.settings.gitlab_enabled

    def vcs_for(self, repo: Repo) -> VCSClient:
        """The client of the repository's host alone, for what only it can answer (its teams or groups)."""
        return self.vcs.for_repo(repo) if isinstance(self.vcs, VCSClients) else self.vcs

    def vcs_for_host(self, host: VCSHost) -> VCSClient:
        """The client of one host, for a repository named by host and name alone (the API's `Type`)."""
        if isinstance(self.vcs, VCSClients):
            return self.vcs.for_host(host)
        return self.vcs

    def repo_of_key(self, key: str) -> Repo:
        """The repository a `Repo.key` names (`OWNER/NAME`, or `gitlab:GROUP/…/PROJECT`), as its host answers it."""
        full_name, host = split_repo_key(key)
        return self.vcs_for_host(host).get_repo(full_name)

    def comment_limit(self, repo: Repo) -> int:
        """The longest comment the repository's host takes (GitHub 65,536 characters, GitLab 1,000,000)."""
        limit = getattr(self.vcs_for(repo), "comment_limit", COMMENT_LIMIT)
        return limit if isinstance(limit, int) else COMMENT_LIMIT

    def token_for(self, repo: Repo) -> str | None:
        """The token for git on the repository, for one git command (never stored): its host's."""
        if repo.vcs is VCSHost.GITLAB:
            return self.settings.gitlab_token.get_secret_value() if self.settings.gitlab_token else None
        if self.git_token is not None:
            return self.git_token(repo.full_name)
        return self.settings.gh_token.get_secret_value() if self.settings.gh_token else None

    def job_url(self, job_id: str) -> str:
        """The job's page (`--atlas-url`), which comments and commit statuses link to."""
        return f"{self.settings.atlas_url}/jobs/{job_id}"

    def job_log(self, job_id: str) -> JobLog:
        live = self.live_output
        return JobLog(self.settings.data_dir / "jobs" / f"{job_id}.log", redactor=self.settings.secrets(),
                      mirror=functools.partial(live.publish, job_id) if live is not None else None)

    def planfile(self, pull: PullRequest, project: Project) -> Path:
        """Where a project's plan file is kept: outside the working copy, which `git clean` resets,
        under the name the embedded artifact store gives it (unique per project)."""
        path = self.plans_dir(pull) / artifact_name(project)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def forget_plans(self, repo: str, number: int, project: Project | None = None) -> list[PlanRecord]:
        """Delete a pull request's saved plans (or one project's) everywhere, and this host's working copies of them."""
        removed = forget_plans(self.state, self.artifacts, repo, number, project)
        for plan in removed:
            (self.settings.data_dir / "plans" / pull_dir(repo, number) / plan.name).unlink(missing_ok=True)
        return removed

    def plans_dir(self, pull: PullRequest) -> Path:
        return self.settings.data_dir / "plans" / pull_dir(pull.repo.key, pull.number)
