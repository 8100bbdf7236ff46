"""atlas's web side for operators: pages for locks, jobs and pull requests, `/status` and `/metrics`.

`init_app` adds it to an app built by `atlas.app.create_app`: the `pages` and `monitoring`
blueprints, optional basic auth over both, the delivery counter on `/events`, and the sweep that
expires old job output.
"""

from __future__ import annotations

from datetime import timedelta

from flask import Flask

from atlas import metrics
from atlas.commands.context import CommandContext
from atlas.jobs.queue import JobQueue
from atlas.web.audit import audit_api, audit_pages
from atlas.web.auth import BasicAuth
from atlas.web.csrf import CsrfTokens, load_or_create_key
from atlas.web.drift import drift_pages
from atlas.web.monitoring import ServerGauges, count_delivery, monitoring
from atlas.web.output import OutputExpiry
from atlas.web.pages import pages
from atlas.web.site import EXTENSION, Site, WebSettings

__all__ = ["Site", "WebSettings", "init_app", "monitoring", "pages"]


def init_app(app: Flask, ctx: CommandContext, queue: JobQueue, settings: WebSettings) -> Site:
    """Serve the pages, `/status` and `/metrics` from `app`, guarded by basic auth when it is configured."""
    auth = None
    if settings.web_username and settings.web_password is not None:
        auth = BasicAuth(settings.web_username, settings.web_password)
    elif settings.web_username or settings.web_password is not None:
        # One without the other would leave the pages open while the operator believes them closed.
        raise ValueError("set --web-username and --web-password together, or neither")
    site = Site(
        ctx=ctx,
        queue=queue,
        csrf=CsrfTokens(load_or_create_key(ctx.settings.data_dir)),
        metrics=metrics.server_registry(ServerGauges(queue, ctx.state, ctx.locks)),
        auth=auth,
        retention_days=settings.job_log_retention_days,
    )
    app.extensions[EXTENSION] = site
    app.register_blueprint(pages)
    app.register_blueprint(monitoring)
    for blueprint in (drift_pages, audit_pages, audit_api):
        app.register_blueprint(blueprint)
    app.after_request(count_delivery)
    # Every page (drift and audit too) carries the warning of a server running pull-request code unconfined.
    app.context_processor(lambda: {"sandbox_warning": ctx.terraform.sandbox.warning})
    OutputExpiry(ctx, timedelta(days=settings.job_log_retention_days)).start()
    return site
