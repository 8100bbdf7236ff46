"""What atlas counts for Prometheus: deliveries, jobs, terraform runs and GitHub calls, plus live gauges.

Counters and histograms are process-wide (as Prometheus metrics are) and live in `REGISTRY`; the
`record_*` functions are the one-line calls the rest of atlas makes. Gauges (queue depth, running
jobs, locks held) are read from the queue and the stores by `atlas.web.monitoring.ServerGauges` when
Prometheus scrapes; `server_registry` joins them to these and `exposition()` renders both.

Under gunicorn (`atlas server`) every web process counts into files of one directory
(prometheus_client's multiprocess mode, `PROMETHEUS_MULTIPROC_DIR`, set by `atlas.startup.share_metrics`
before this module is imported), and `/metrics` served by any of them sums what all of them counted.
Each `atlas worker` process serves its own (`serve_http`): Prometheus scrapes each.

Every label value comes from a closed set (commands, outcomes, known event names, VCS methods), so
nothing a webhook sender controls can grow the number of series.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from atlas.models import DriftStatus
from atlas.vcs import VCSClient

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


class _SharedMetrics(Collector):
    """The process-wide `REGISTRY`, as one collector of a server's own registry."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def shared_directory() -> str | None:
    """The directory the processes of this server count into (multiprocess mode), or None."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def server_registry(gauges: Collector) -> CollectorRegistry:
    """A registry with the process's metrics (every web process's, in multiprocess mode) and one server's
    gauges, for its `/metrics`."""
    registry = CollectorRegistry(auto_describe=False)
    directory = shared_directory()
    if directory is not None:
        # Python's process and GC metrics are per process, so multiprocess mode leaves them out.
        multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    else:
        registry.register(_SharedMetrics())
    registry.register(gauges)
    return registry


def forget_process(pid: int) -> None:
    """What a web process that exited kept for live gauges goes (its counters stay counted)."""
    directory = shared_directory()
    if directory is not None:
        multiprocess.mark_process_dead(pid, path=directory)  # type: ignore[no-untyped-call]


def exposition(registry: CollectorRegistry) -> bytes:
    """The registry's metrics in Prometheus's text format."""
    return generate_latest(registry)


def serve_http(port: int, host: str = "0.0.0.0") -> None:
    """Serve this process's metrics at `http://host:port/metrics` from a thread (a worker process's own)."""
    start_http_server(port, addr=host, registry=REGISTRY)
