"""What atlas counts for Prometheus: deliveries, jobs, terraform runs and GitHub calls, plus live gauges.

Counters and histograms are process-wide (as Prometheus metrics are) and live in `REGISTRY`; the
`record_*` functions are the one-line calls the rest of atlas makes. Gauges (queue depth, running
jobs, locks held) are not kept up to date by anyone: `ServerGauges` reads them from the queue and
the stores when Prometheus scrapes, so they cannot drift. `exposition()` renders both for one server.

Every label value comes from a closed set (commands, outcomes, known event names, VCS methods), so
nothing a webhook sender controls can grow the number of series.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from atlas import __version__
from atlas.models import DriftStatus, JobStatus, PullRequest, Repo
from atlas.vcs import ChangedFile, CommitState, Issue, Permission, PostedComment, VCSClient

if TYPE_CHECKING:
    # Only named in annotations: the modules that record metrics (terraform, commands) stay free of them.
    from atlas.jobs.queue import JobQueue
    from atlas.stores.locks import LockStore
    from atlas.stores.state import StateStore

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The Content-Type of `exposition()`'s text."""

REGISTRY = CollectorRegistry(auto_describe=True)
"""The process's counters and histograms (and Python's process, platform and GC metrics)."""

for _collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    REGISTRY.register(_collector)

JOB_BUCKETS = (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0)
"""Job durations: a help reply takes a second, a large plan or apply many minutes."""

TERRAFORM_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
"""One terraform command: `workspace select` takes under a second, an apply up to the timeout."""

DELIVERIES = Counter(
    "atlas_deliveries",
    "GitHub webhook deliveries received, by event and by what atlas did with them.",
    ["event", "result"],
    registry=REGISTRY,
)
JOBS = Counter("atlas_jobs", "Jobs finished, by command and outcome.", ["command", "outcome"], registry=REGISTRY)
JOB_SECONDS = Histogram(
    "atlas_job_duration_seconds",
    "How long jobs ran, from start to outcome, by command.",
    ["command"],
    buckets=JOB_BUCKETS,
    registry=REGISTRY,
)
TERRAFORM_SECONDS = Histogram(
    "atlas_terraform_duration_seconds",
    "How long each terraform command ran, by terraform subcommand.",
    ["command"],
    buckets=TERRAFORM_BUCKETS,
    registry=REGISTRY,
)
GITHUB_CALLS = Counter(
    "atlas_github_api_calls", "Calls to the GitHub API, by VCS client method.", ["method"], registry=REGISTRY
)
GITHUB_ERRORS = Counter(
    "atlas_github_api_errors",
    "Calls to the GitHub API that failed after retries, by VCS client method.",
    ["method"],
    registry=REGISTRY,
)

DRIFT_CHECK_SECONDS = Histogram(
    "atlas_drift_check_duration_seconds",
    "How long drift checks took (checkout, plan and any remediation), by what they found.",
    ["status"],
    buckets=TERRAFORM_BUCKETS,
    registry=REGISTRY,
)

GITHUB_EVENTS = frozenset({
    "check_run", "check_suite", "create", "delete", "installation", "installation_repositories",
    "issue_comment", "issues", "ping", "pull_request", "pull_request_review", "pull_request_review_comment",
    "pull_request_review_thread", "push", "repository", "status", "workflow_run",
})
"""Event names counted by name; any other `X-GitHub-Event` value is counted as `other`."""

TERRAFORM_COMMANDS = frozenset({
    "apply", "destroy", "fmt", "force-unlock", "get", "graph", "import", "init", "output", "plan",
    "providers", "refresh", "show", "state", "taint", "test", "untaint", "validate", "version", "workspace",
})
"""Terraform subcommands counted by name; anything else is counted as `other`."""

VCS_METHODS = frozenset(name for name in dir(VCSClient) if not name.startswith("_"))
"""The `VCSClient` methods, the label values of the GitHub call counters."""


def record_delivery(event: str | None, result: str) -> None:
    """Count one delivery: its `X-GitHub-Event` and what atlas answered (`queued`, `ignored`, …)."""
    name = event if event in GITHUB_EVENTS else ("none" if not event else "other")
    DELIVERIES.labels(event=name, result=result).inc()


def record_job(command: str, outcome: str, seconds: float) -> None:
    """Count one finished job (outcome: a finished `JobStatus`) and observe how long it ran."""
    JOBS.labels(command=str(command), outcome=str(outcome)).inc()
    JOB_SECONDS.labels(command=str(command)).observe(max(seconds, 0.0))


def record_terraform(command: str, seconds: float) -> None:
    """Observe one terraform run; `command` is its subcommand (`init`, `plan`, `apply`, …)."""
    name = command if command in TERRAFORM_COMMANDS else "other"
    TERRAFORM_SECONDS.labels(command=name).observe(max(seconds, 0.0))


def record_drift_check(status: DriftStatus, seconds: float) -> None:
    """Observe one drift check of one project and what it found."""
    DRIFT_CHECK_SECONDS.labels(status=DriftStatus(status).value).observe(max(seconds, 0.0))


def record_github_call(method: str, ok: bool) -> None:
    """Count one call of a VCS client method; `ok` is False when it failed."""
    name = method if method in VCS_METHODS else "other"
    GITHUB_CALLS.labels(method=name).inc()
    if not ok:
        GITHUB_ERRORS.labels(method=name).inc()


class ServerGauges(Collector):
    """The gauges of one server, read from its queue and stores each time Prometheus scrapes."""

    def __init__(self, queue: JobQueue, state: StateStore, locks: LockStore) -> None:
        self.queue = queue
        self.state = state
        self.locks = locks

    def collect(self) -> Iterable[Metric]:
        info = GaugeMetricFamily("atlas_build_info", "Always 1; the version atlas runs.", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        yield GaugeMetricFamily("atlas_queue_depth", "Jobs waiting to start.", value=self.queue.depth())
        running = self.state.jobs(statuses=(JobStatus.RUNNING,), limit=100_000)
        yield GaugeMetricFamily("atlas_jobs_running", "Jobs running now, in every process.", value=len(running))
        yield GaugeMetricFamily("atlas_locks_held", "Project locks held by pull requests.", value=self.locks.count())
        yield drift_gauge(self.state)


def drift_gauge(state: StateStore) -> GaugeMetricFamily:
    """`atlas_drift_projects{repo,status}`: projects by what their latest drift check found (every status, 0 too)."""
    gauge = GaugeMetricFamily(
        "atlas_drift_projects", "Projects by the result of their latest drift check.", labels=["repo", "status"]
    )
    counts: dict[str, dict[DriftStatus, int]] = {}
    for record in state.drift_records():
        by_status = counts.setdefault(record.repo, dict.fromkeys(DriftStatus, 0))
        by_status[record.status] += 1
    for repo in sorted(counts):
        for status, count in counts[repo].items():
            gauge.add_metric([repo, status.value], count)
    return gauge


class _SharedMetrics(Collector):
    """The process-wide `REGISTRY`, as one collector of a server's own registry."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def server_registry(gauges: ServerGauges) -> CollectorRegistry:
    """A registry with the process's metrics and one server's gauges, for its `/metrics`."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SharedMetrics())
    registry.register(gauges)
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    """The registry's metrics in Prometheus's text format."""
    return generate_latest(registry)


T = TypeVar("T")


class MeteredVCSClient:
    """A `VCSClient` that counts each call (and each failed one) of the client it wraps.

    Wrap the GitHub client once where the context is built; commands stay unaware of it.
    """

    def __init__(self, inner: VCSClient) -> None:
        self.inner = inner

    def __repr__(self) -> str:
        return f"MeteredVCSClient({self.inner!r})"

    def _call(self, method: str, call: Callable[[], T]) -> T:
        try:
            result = call()
        except Exception:
            record_github_call(method, ok=False)
            raise
        record_github_call(method, ok=True)
        return result

    def changed_files(self, pull: PullRequest) -> list[ChangedFile]:
        return self._call("changed_files", lambda: self.inner.changed_files(pull))

    def post_comment(self, repo: Repo, number: int, body: str) -> PostedComment:
        return self._call("post_comment", lambda: self.inner.post_comment(repo, number, body))

    def set_status(
        self,
        repo: Repo,
        sha: str,
        state: CommitState,
        context: str,
        description: str,
        target_url: str | None = None,
    ) -> None:
        self._call("set_status", lambda: self.inner.set_status(repo, sha, state, context, description, target_url))

    def get_pull(self, repo: Repo, number: int) -> PullRequest:
        return self._call("get_pull", lambda: self.inner.get_pull(repo, number))

    def resolve_ref(self, repo: Repo, ref: str) -> str:
        return self._call("resolve_ref", lambda: self.inner.resolve_ref(repo, ref))

    def react(self, repo: Repo, comment_id: int, reaction: str) -> None:
        self._call("react", lambda: self.inner.react(repo, comment_id, reaction))

    def permission(self, repo: Repo, user: str) -> Permission:
        return self._call("permission", lambda: self.inner.permission(repo, user))

    def is_team_member(self, org: str, team_slug: str, user: str) -> bool:
        return self._call("is_team_member", lambda: self.inner.is_team_member(org, team_slug, user))

    def approvals(self, repo: Repo, number: int) -> list[str]:
        return self._call("approvals", lambda: self.inner.approvals(repo, number))

    def is_mergeable(self, repo: Repo, number: int, ignore_contexts: tuple[str, ...] = ()) -> bool:
        return self._call("is_mergeable", lambda: self.inner.is_mergeable(repo, number, ignore_contexts))

    def merge(self, repo: Repo, number: int, sha: str, method: str = "merge") -> None:
        self._call("merge", lambda: self.inner.merge(repo, number, sha, method))

    def hide_comment(self, node_id: str, classifier: str = "OUTDATED") -> None:
        self._call("hide_comment", lambda: self.inner.hide_comment(node_id, classifier))

    def list_comments(self, repo: Repo, number: int) -> list[tuple[PostedComment, str, str]]:
        return self._call("list_comments", lambda: self.inner.list_comments(repo, number))

    def get_repo(self, full_name: str) -> Repo:
        return self._call("get_repo", lambda: self.inner.get_repo(full_name))

    def branch_head(self, repo: Repo, branch: str) -> str:
        return self._call("branch_head", lambda: self.inner.branch_head(repo, branch))

    def find_issue(self, repo: Repo, title: str, label: str) -> Issue | None:
        return self._call("find_issue", lambda: self.inner.find_issue(repo, title, label))

    def create_issue(self, repo: Repo, title: str, body: str, labels: Sequence[str] = ()) -> Issue:
        return self._call("create_issue", lambda: self.inner.create_issue(repo, title, body, labels))

    def update_issue(self, repo: Repo, number: int, body: str) -> None:
        self._call("update_issue", lambda: self.inner.update_issue(repo, number, body))

    def close_issue(self, repo: Repo, number: int) -> None:
        self._call("close_issue", lambda: self.inner.close_issue(repo, number))
