"""`GET /status` (JSON for people and scripts) and `GET /metrics` (Prometheus), and counting deliveries.

Deliveries are counted by an `after_request` hook on `/events`, from the answer atlas gave: every
way out of the webhook handler (including Flask's own 413) is counted once, in one place.
"""

from __future__ import annotations

import json

from flask import Blueprint, Response, request

from atlas import __version__, metrics
from atlas.models import JobStatus
from atlas.web.site import Site, current_site, require_login

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
