"""`GET /status` (JSON for people and scripts) and `GET /metrics` (Prometheus), and counting deliveries.

The gauges (queue depth, running jobs, locks held, drift) are not kept up to date by anyone:
`ServerGauges` reads them from the queue and the stores when Prometheus scrapes, so they cannot drift.

Deliveries are counted by an `after_request` hook on `/events`, from the answer atlas gave: every
way out of the webhook handler (including Flask's own 413) is counted once, in one place.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from flask import Blueprint, Response, request
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from atlas import __version__, metrics
from atlas.jobs.queue import JobQueue
from atlas.models import DriftStatus, JobStatus
from atlas.stores.locks import LockStore
from atlas.stores.state import StateStore
from atlas.web.site import Site, current_site, require_login


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


WEBHOOK_ENDPOINT = "webhooks.receive_event"
"""The Flask endpoint of `POST /events`, whose answers are counted as deliveries."""

monitoring = Blueprint("monitoring", __name__)
monitoring.before_request(require_login)


@monitoring.get("/status")
def status() -> Response:
    site = current_site()
    running = site.ctx.state.jobs(statuses=(JobStatus.RUNNING,), limit=1000)
    body = {
        "version": __version__,
        "queue": "redis" if site.ctx.settings.redis_url is not None else "embedded",
        "queue_depth": site.queue.depth(),
        "running_jobs": [
            {
                "id": record.job.id,
                "command": record.job.command.value,
                "pull": record.job.pull.key,
                "started_at": record.started_at.isoformat() if record.started_at else None,
            }
            for record in running
        ],
        # Job workers: the embedded pool's threads, or the `atlas worker` processes registered in Redis.
        "workers": site.queue.workers(),
        "workers_busy": len(site.queue.running()),
        "web_processes": site.ctx.settings.web_workers,
        "locks": site.ctx.locks.count(),
        "sandbox": sandbox_status(site),
    }
    return Response(json.dumps(body, indent=2) + "\n", mimetype="application/json")


def sandbox_status(site: Site) -> dict[str, object]:
    """How this process confines pull-request code: the mode asked for, what is in force, and any warning."""
    sandbox = site.ctx.terraform.sandbox
    return {
        "mode": site.ctx.settings.sandbox.value,
        "confined": sandbox.confined,
        "isolation": sandbox.isolation,
        "warning": sandbox.warning,
    }


@monitoring.get("/metrics")
def prometheus_metrics() -> Response:
    # `content_type`, not `mimetype`: Flask would add a second charset to prometheus-client's own.
    return Response(metrics.exposition(current_site().metrics), content_type=metrics.CONTENT_TYPE)


def delivery_result(response: Response) -> str:
    """What atlas did with a delivery, from its answer."""
    if response.status_code == 200:
        text = response.get_data(as_text=True)
        if text.startswith("pong"):
            return "ping"
        if text.startswith("already accepted"):
            return "duplicate"
        return "ignored"
    return {
        202: "queued",
        400: "bad_payload",
        401: "bad_signature",
        403: "not_allowed",
        405: "bad_method",
        413: "too_large",
        503: "unavailable",
    }.get(response.status_code, "error" if response.status_code >= 500 else str(response.status_code))


def count_delivery(response: Response) -> Response:
    """An app-wide `after_request` hook counting each answer of `POST /events`."""
    if request.endpoint == WEBHOOK_ENDPOINT:
        metrics.record_delivery(request.headers.get("X-GitHub-Event"), delivery_result(response))
    return response
