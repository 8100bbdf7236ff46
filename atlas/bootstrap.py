"""The one place that turns `Settings` into backends, and backends into command contexts.

SQLite or Redis stores, the GitHub client, the plan artifact store (S3, Redis or disk), the
sandbox, the terraform runner and versions, the working copies and the job queue are chosen here
and nowhere else; everything above is handed their protocols. Three processes build contexts:
the server (`server_runtime`), an rq worker (`worker_runtime`) and the admin CLI (`cli_context`).
Whichever process runs queued jobs runs each with `run_queued`, which knows the two kinds: a pull
request's command (`atlas.commands`) and a scheduled drift check (`atlas.drift.jobs`).
"""

from __future__ import annotations

import atexit
import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from atlas.commands.context import CancelElsewhere, CommandContext, JobSubmit
from atlas.commands.dispatch import run_job
from atlas.commands.interrupted import report_interrupted
from atlas.config.server import POLICIES_PASSED, ServerConfig, load_server_config
from atlas.config.settings import Settings, SettingsError
from atlas.drift import jobs as drift_jobs
from atlas.github.app_auth import AppCredentials, AppKeyError, GitHubApp, MemoryTokenCache, RedisTokenCache, TokenCache
from atlas.github.client import GitHubClient
from atlas.github.ratelimit import SharedWriteBudget, WriteBudget
from atlas.gitlab.client import STATUS_RETRIES, GitLabClient
from atlas.jobs.embedded import EmbeddedQueue
from atlas.jobs.queue import JobQueue
from atlas.jobs.rq import RQQueue
from atlas.logs import add_runtime_secret
from atlas.models import Distribution, Job, VCSHost
from atlas.notify import Notifier
from atlas.policy.engine import PolicySetCache
from atlas.render.comments import use_template_overrides
from atlas.runtime.sandbox import Sandbox, choose_sandbox
from atlas.runtime.terraform import TerraformRunner
from atlas.runtime.tfversions import OPENTOFU, TerraformVersions
from atlas.runtime.workingcopy import WorkingCopies
from atlas.stores.locks import LockStore
from atlas.stores.plans import ArtifactStore
from atlas.stores.redis.artifacts import RedisArtifactStore
from atlas.stores.redis.backend import RedisBackend
from atlas.stores.redis.locks import RedisLockStore
from atlas.stores.redis.output import RedisLiveOutput
from atlas.stores.redis.state import RedisStateStore
from atlas.stores.s3 import S3ArtifactStore
from atlas.stores.sqlite.artifacts import LocalArtifactStore
from atlas.stores.sqlite.locks import SQLiteLockStore
from atlas.stores.sqlite.state import SQLiteStateStore
from atlas.stores.state import StateStore
from atlas.vcs import VCSClient, VCSClients

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backends:
    """What the settings turn into, before a queue is chosen."""

    state: StateStore
    locks: LockStore
    vcs: VCSClient
    artifacts: ArtifactStore
    terraform: TerraformRunner
    versions: TerraformVersions
    tofu_versions: TerraformVersions
    working_copies: WorkingCopies
    server_config: ServerConfig
    redis: RedisBackend | None
    """Redis at `--redis-url` with atlas's keys below `--redis-key-prefix`: the one backend of this process."""
    policy_cache: PolicySetCache = field(default_factory=PolicySetCache)
    # App mode (`--gh-app-id`): the App whose installations' tokens atlas acts with.
    github_app: GitHubApp | None = None
    # With `--gitlab-token`: the GitLab client (also inside `vcs`), whose token's user is atlas on GitLab.
    gitlab: GitLabClient | None = None
    # The GitHub client (also inside `vcs`) when atlas serves GitHub: check runs are GitHub's alone.
    github: GitHubClient | None = None


@dataclass(frozen=True)
class ServerRuntime:
    """The server's context and the queue its jobs go to (embedded, or rq with `--redis-url`)."""

    context: CommandContext
    queue: JobQueue
    github_app: GitHubApp | None = None
    gitlab: GitLabClient | None = None


def github_app(settings: Settings, redis: RedisBackend | None = None) -> GitHubApp | None:
    """The GitHub App of `--gh-app-id`, its tokens shared through Redis in Redis mode; None in token mode.

    A key that cannot be used is one SettingsError line that names the problem, never the key.
    """
    if settings.gh_app_id is None or settings.gh_app_key is None:
        return None
    source = f"--gh-app-key-file {settings.gh_app_key_file}" if settings.gh_app_key_file else "--gh-app-key"
    try:
        credentials = AppCredentials(settings.gh_app_id, settings.gh_app_key.get_secret_value(), source=source)
    except AppKeyError as error:
        raise SettingsError(str(error)) from None
    cache: TokenCache = MemoryTokenCache()
    if redis is not None:
        # So that N workers share one token per installation instead of minting N.
        cache = RedisTokenCache(redis, credentials.app_id, credentials.sealing_key())
    return GitHubApp(credentials, settings.gh_api_url, cache, slug=settings.gh_app_slug,
                     on_token=add_runtime_secret, default_installation=settings.gh_app_installation_id)


def gitlab_client(settings: Settings) -> GitLabClient | None:
    """The client of `--gitlab-hostname` with `--gitlab-token`; None when atlas serves no GitLab."""
    if settings.gitlab_token is None:
        return None
    return GitLabClient(settings.gitlab_token.get_secret_value(), settings.gitlab_hostname,
                        status_retries=STATUS_RETRIES if settings.gitlab_status_retry_enabled else 0)


def build_sandbox(settings: Settings) -> Sandbox:
    """The sandbox `--sandbox` and `--sandbox-paths` ask for; SandboxError when it cannot be had."""
    return choose_sandbox(settings.sandbox, host_paths=settings.host_paths(), protected=settings.own_paths())


def open_backends(settings: Settings) -> Backends:
    """The stores, clients and runners of this process; with `--redis-url` state and locks are shared.

    Raises SandboxError when the sandbox that `--sandbox` asks for cannot be had.
    """
    for problem in use_template_overrides(settings.markdown_template_overrides_dir):
        log.error("--markdown-template-overrides-dir: %s", problem)
    data_dir = settings.data_dir
    state: StateStore
    locks: LockStore
    token = settings.gh_token.get_secret_value() if settings.gh_token else ""
    budget: WriteBudget | None = None
    installation_budget: Callable[[int], WriteBudget] | None = None
    app: GitHubApp | None
    redis = redis_backend(settings)
    if redis is not None:
        state, locks = RedisStateStore(redis), RedisLockStore(redis)
        # GitHub's limit is per token, across every process that uses it.
        budget = SharedWriteBudget(redis, token)
        app = github_app(settings, redis)
        if app is not None:
            # An App's limit is per installation, across every process acting as it.
            app_id = app.app_id
            installation_budget = functools.partial(_shared_installation_budget, redis, app_id)
    else:
        state, locks = SQLiteStateStore(data_dir / "atlas.db"), SQLiteLockStore(data_dir / "atlas.db")
        app = github_app(settings)
    # --default-tf-version names a version of the server's default distribution.
    tofu_default = settings.tf_distribution is Distribution.OPENTOFU
    github = GitHubClient(token, settings.gh_api_url, write_budget=budget, app=app,
                          installation_budget=installation_budget)
    clients: dict[VCSHost, VCSClient] = {}
    if settings.github_enabled or not settings.gitlab_enabled:
        clients[VCSHost.GITHUB] = github
    gitlab = gitlab_client(settings)
    if gitlab is not None:
        clients[VCSHost.GITLAB] = gitlab
    return Backends(
        state=state,
        locks=locks,
        vcs=VCSClients(clients),
        gitlab=gitlab,
        github=github if VCSHost.GITHUB in clients else None,
        github_app=app,
        terraform=TerraformRunner(
            settings.tofu_bin if tofu_default else settings.terraform_bin,
            plugin_cache_dir=data_dir / "plugin-cache",
            secrets=settings.secrets(),
            default_timeout=settings.terraform_timeout,
            concurrency=threading.BoundedSemaphore(settings.parallel_pool_size),
            sandbox=build_sandbox(settings),
            distribution=settings.tf_distribution,
        ),
        working_copies=WorkingCopies(data_dir / "repos", git_url=settings.gh_git_url, secrets=settings.secrets(),
                                     merge_depth=settings.checkout_depth,
                                     gitlab_url=settings.gitlab_base_url if settings.gitlab_enabled else None),
        artifacts=artifact_store(settings, redis),
        server_config=server_config_of(settings),
        versions=TerraformVersions(
            settings.tf_bin_dir or data_dir / "bin",
            data_dir / "terraform-versions",
            download_url=settings.tf_download_url,
            allow_download=settings.tf_download,
            default_version=None if tofu_default else settings.default_tf_version,
            default_binary=settings.terraform_bin,
        ),
        tofu_versions=TerraformVersions(
            settings.tf_bin_dir or data_dir / "bin",
            data_dir / "tofu-versions",
            download_url=settings.tofu_download_url,
            index_url=settings.tofu_index_url,
            allow_download=settings.tf_download,
            default_version=settings.default_tf_version if tofu_default else None,
            default_binary=settings.tofu_bin,
            layout=OPENTOFU,
        ),
        redis=redis,
    )


def server_config_of(settings: Settings) -> ServerConfig:
    """repos.yaml (`--repo-config`), its `policies:` checked against `--enable-policy-checks`."""
    config = load_server_config(settings.repo_config) if settings.repo_config else ServerConfig()
    if settings.enable_policy_checks and config.policies is None:
        raise SettingsError(
            "enable_policy_checks: --enable-policy-checks needs policy sets: add a `policies:` block with "
            "`policy_sets` to the repos.yaml given with --repo-config")
    if not settings.enable_policy_checks:
        named = ["--apply-requirements"] if POLICIES_PASSED in settings.apply_requirements else []
        named += [f"repos[{index}].apply_requirements" for index, entry in enumerate(config.repos)
                  if POLICIES_PASSED in (entry.apply_requirements or ())]
        if named:
            raise SettingsError(
                f"enable_policy_checks: {' and '.join(named)} require policies_passed, but policy checks are off, "
                "so no policy check would run and the requirement could never be judged: run with "
                "--enable-policy-checks (and policy sets in repos.yaml), or remove policies_passed")
    if config.policies is not None:
        for notice in config.policies.notices:
            log.warning("%s", notice)
        if not settings.enable_policy_checks:
            log.warning("%s: policies: the policy sets are not used without --enable-policy-checks", config.file)
    return config


def _shared_installation_budget(redis: RedisBackend, app_id: str, installation: int) -> WriteBudget:
    return SharedWriteBudget(redis, f"github-app:{app_id}:installation:{installation}")


def installation_token(app: GitHubApp) -> Callable[[str], str | None]:
    """The current token of the installation on a repository, for one git command."""

    def token(repo_full_name: str) -> str | None:
        return app.token(app.installation_id(repo_full_name))

    return token
def redis_backend(settings: Settings) -> RedisBackend | None:
    """Redis at `--redis-url` with atlas's keys below `--redis-key-prefix`; None without a Redis URL."""
    if settings.redis_url is None:
        return None
    return RedisBackend(settings.redis_url.get_secret_value(), settings.redis_key_prefix)


def artifact_store(settings: Settings, redis: RedisBackend | None) -> ArtifactStore:
    """The plan store the settings ask for: an S3 bucket when one is named, else Redis when set, else local files."""
    if settings.plans_s3_bucket:
        return S3ArtifactStore(settings.plans_s3_bucket, settings.plans_s3_prefix,
                               endpoint_url=settings.plans_s3_endpoint or None, region=settings.plans_s3_region)
    if redis is not None:
        return RedisArtifactStore(redis)
    return LocalArtifactStore(settings.data_dir / "plans")


def command_context(
    settings: Settings, backends: Backends, *, submit: JobSubmit | None, cancel_elsewhere: CancelElsewhere | None,
) -> CommandContext:
    """A context over `backends` that queues follow-up jobs with `submit`."""
    return CommandContext(
        settings=settings, state=backends.state, vcs=backends.vcs, terraform=backends.terraform,
        working_copies=backends.working_copies, locks=backends.locks, versions=backends.versions,
        tofu_versions=backends.tofu_versions,
        artifacts=backends.artifacts, server_config=backends.server_config, policy_cache=backends.policy_cache,
        submit=submit, cancel_elsewhere=cancel_elsewhere, notifier=build_notifier(settings),
        git_token=installation_token(backends.github_app) if backends.github_app is not None else None,
        remember_installation=backends.github_app.remember_installation if backends.github_app is not None else None,
        checks=backends.github.check_runs if settings.checks_enabled and backends.github is not None else None,
        live_output=RedisLiveOutput(backends.redis) if backends.redis is not None else None,
    )


def build_notifier(settings: Settings) -> Notifier:
    """The notifier of `--webhooks` (with `--slack-token` and `--webhook-http-headers`); one per process."""
    notifier = Notifier(
        settings.webhooks,
        slack_token=settings.slack_token.get_secret_value() if settings.slack_token else None,
        slack_base_url=settings.slack_api_url,
        http_headers=settings.webhook_http_headers,
        secrets=settings.secrets(),
    )
    # Deliveries still queued get a few seconds to go when the process exits.
    atexit.register(notifier.close, 5.0)
    return notifier


def rq_queue(backends: Backends) -> RQQueue:
    """The rq queue on the backends' Redis (`--redis-url` must be set)."""
    assert backends.redis is not None
    return RQQueue(backends.redis, backends.state)


def server_runtime(settings: Settings) -> ServerRuntime:
    """The server's context and queue: rq workers with `--redis-url`, else the embedded queue.

    The embedded queue runs jobs on threads of this process with this very context, so the
    context and the queue are made together here. Raises SandboxError as `open_backends` does.
    """
    backends = open_backends(settings)
    if settings.redis_url is not None:
        shared = rq_queue(backends)
        context = command_context(settings, backends, submit=shared.enqueue, cancel_elsewhere=shared.request_cancel)
        return ServerRuntime(context=context, queue=shared, github_app=backends.github_app, gitlab=backends.gitlab)
    made: list[CommandContext] = []

    def execute(job: Job) -> None:
        run_queued(job, made[0])

    embedded = EmbeddedQueue(execute, backends.state, workers=max(4, settings.parallel_pool_size))
    made.append(command_context(settings, backends, submit=embedded.enqueue, cancel_elsewhere=None))
    return ServerRuntime(context=made[0], queue=embedded, github_app=backends.github_app, gitlab=backends.gitlab)


def run_queued(job: Job, ctx: CommandContext) -> None:
    """Run any queued job to its end: a scheduled drift check, or a pull request's command."""
    if job.drift is not None:
        drift_jobs.run(job, ctx)
    else:
        run_job(job, ctx)


def report_interrupted_job(ctx: CommandContext, job: Job, why: str) -> None:
    """Report a job that stopped without finishing (its worker died, the server restarted), whatever it was."""
    if job.drift is not None:
        drift_jobs.report_interrupted(ctx, job, why)
    else:
        report_interrupted(ctx, job, why)


def worker_runtime(settings: Settings) -> tuple[CommandContext, RQQueue]:
    """An rq worker process's context and the queue it takes jobs from (`--redis-url` must be set)."""
    backends = open_backends(settings)
    queue = rq_queue(backends)
    context = command_context(settings, backends, submit=queue.enqueue, cancel_elsewhere=queue.request_cancel)
    return context, queue


def cli_context(settings: Settings) -> CommandContext:
    """The context of an admin CLI command (`atlas locks`, `atlas drift`).

    With `--redis-url` it queues follow-up jobs (a plan for the pull request a released lock passed
    to) on the rq queue the workers serve. On the embedded default the queue lives inside the
    server process, out of this one's reach: such a handoff stays pending in the lock store, and
    the server's handoff sweep plans it.
    """
    backends = open_backends(settings)
    if settings.redis_url is not None:
        queue = rq_queue(backends)
        return command_context(settings, backends, submit=queue.enqueue, cancel_elsewhere=queue.request_cancel)
    return command_context(settings, backends, submit=None, cancel_elsewhere=None)
