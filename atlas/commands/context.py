"""What a running command needs, built once per process from the settings.

The server builds one `CommandContext` for its embedded queue; a later issue's rq workers build
their own from the same settings, so everything here is reconstructible from `Settings` alone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from atlas.config.server import ServerConfig, load_server_config
from atlas.config.settings import Settings
from atlas.github.client import GitHubClient
from atlas.github.ratelimit import SharedWriteBudget, WriteBudget
from atlas.metrics import MeteredVCSClient
from atlas.models import Job, PlanRecord, Project, PullRequest
from atlas.runtime.cancellation import RunningJobs
from atlas.runtime.joblog import JobLog
from atlas.runtime.sandbox import Sandbox, choose_sandbox
from atlas.runtime.terraform import TerraformRunner
from atlas.runtime.tfversions import TerraformVersions
from atlas.runtime.workingcopy import WorkingCopies
from atlas.stores.artifacts import ArtifactStore, artifact_name, artifact_store_from
from atlas.stores.locks import LockStore, SQLiteLockStore
from atlas.stores.redis_locks import RedisLockStore
from atlas.stores.redis_state import RedisStateStore, connect
from atlas.stores.state import SQLiteStateStore, StateStore
from atlas.vcs import VCSClient


@dataclass
class CommandContext:
    settings: Settings
    state: StateStore
    vcs: VCSClient
    terraform: TerraformRunner
    working_copies: WorkingCopies
    locks: LockStore
    versions: TerraformVersions
    artifacts: ArtifactStore
    server_config: ServerConfig = field(default_factory=ServerConfig)
    running: RunningJobs = field(default_factory=RunningJobs)
    # Set once the queue exists (it needs this context to run jobs): commands use it to queue
    # follow-up work, such as the plan of a pull request that was waiting for a lock.
    submit: Callable[[Job], None] | None = None
    # Set with rq workers: asks whichever process runs a pull request's job to interrupt it.
    cancel_elsewhere: Callable[[str], None] | None = None

    def terraform_for(self, version: str | None) -> TerraformRunner:
        """The runner for a project's terraform version or constraint (None: the server's default).

        Raises TerraformVersionError, with a message for the pull request, when it cannot be had.
        """
        binary = str(self.versions.binary_for(version))
        base = self.terraform
        if binary == base.binary:
            return base
        # Same plugin cache, secrets and server-wide bound on concurrent runs; only the binary differs.
        return TerraformRunner(binary, plugin_cache_dir=base.plugin_cache_dir, secrets=base.secrets,
                               default_timeout=base.default_timeout, concurrency=base.concurrency,
                               grace_period=base.grace_period, sandbox=base.sandbox)

    @property
    def token(self) -> str | None:
        return self.settings.gh_token.get_secret_value() if self.settings.gh_token else None

    def job_url(self, job_id: str) -> str:
        """The job's page (`--atlas-url`), which comments and commit statuses link to."""
        return f"{self.settings.atlas_url}/jobs/{job_id}"

    def job_log(self, job_id: str) -> JobLog:
        return JobLog(self.settings.data_dir / "jobs" / f"{job_id}.log", redactor=self.settings.secrets())

    def planfile(self, pull: PullRequest, project: Project) -> Path:
        """Where a project's plan file is kept: outside the working copy, which `git clean` resets,
        under the name the embedded artifact store gives it (unique per project)."""
        path = self.plans_dir(pull) / artifact_name(project)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def forget_plans(self, repo: str, number: int, project: Project | None = None) -> list[PlanRecord]:
        """Delete a pull request's saved plans (or one project's): records, files and shared artifacts."""
        removed = self.state.delete_plans(repo, number, project)
        for plan in removed:
            Path(plan.planfile).unlink(missing_ok=True)
        self.artifacts.delete(repo, number, project)
        return removed

    def plans_dir(self, pull: PullRequest) -> Path:
        return self.settings.data_dir / "plans" / pull.repo.owner / pull.repo.name / str(pull.number)


def sandbox_for(settings: Settings) -> Sandbox:
    """The sandbox `--sandbox` and `--sandbox-paths` ask for; SandboxError when it cannot be had."""
    return choose_sandbox(settings.sandbox, host_paths=settings.host_paths(), protected=settings.own_paths())


def build_context(settings: Settings) -> CommandContext:
    """The context of this process; with `--redis-url` its state and locks are shared through Redis.

    Raises SandboxError when the sandbox that `--sandbox` asks for cannot be had.
    """
    data_dir = settings.data_dir
    state: StateStore
    locks: LockStore
    token = settings.gh_token.get_secret_value() if settings.gh_token else ""
    budget: WriteBudget | None = None
    if settings.redis_url is not None:
        redis = connect(settings.redis_url.get_secret_value())
        state, locks = RedisStateStore(redis), RedisLockStore(redis)
        # GitHub's limit is per token, across every process that uses it.
        budget = SharedWriteBudget(redis, token)
    else:
        state, locks = SQLiteStateStore(data_dir / "atlas.db"), SQLiteLockStore(data_dir / "atlas.db")
    return CommandContext(
        settings=settings,
        state=state,
        vcs=MeteredVCSClient(GitHubClient(token, settings.gh_api_url, write_budget=budget)),
        terraform=TerraformRunner(
            settings.terraform_bin,
            plugin_cache_dir=data_dir / "plugin-cache",
            secrets=settings.secrets(),
            default_timeout=settings.terraform_timeout,
            concurrency=threading.BoundedSemaphore(settings.parallel_pool_size),
            sandbox=sandbox_for(settings),
        ),
        working_copies=WorkingCopies(data_dir / "repos", git_url=settings.gh_git_url, secrets=settings.secrets()),
        locks=locks,
        artifacts=artifact_store_from(
            redis_url=settings.redis_url.get_secret_value() if settings.redis_url else None,
            s3_bucket=settings.plans_s3_bucket, s3_endpoint=settings.plans_s3_endpoint,
            s3_prefix=settings.plans_s3_prefix, s3_region=settings.plans_s3_region, data_dir=data_dir,
        ),
        server_config=load_server_config(settings.repo_config) if settings.repo_config else ServerConfig(),
        versions=TerraformVersions(
            settings.tf_bin_dir or data_dir / "bin",
            data_dir / "terraform-versions",
            download_url=settings.tf_download_url,
            allow_download=settings.tf_download,
            default_version=settings.default_tf_version,
            default_binary=settings.terraform_bin,
        ),
    )
