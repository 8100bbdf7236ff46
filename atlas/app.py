"""The Flask app factory: builds one atlas server from its settings, with nothing at import time.

Tests build as many apps as they like, each with its own data dir, state and queue.
"""

from __future__ import annotations

import logging

from flask import Flask, Response
from werkzeug.exceptions import HTTPException

from atlas import __version__, webhooks
from atlas.commands import run_job
from atlas.context import CommandContext, build_context
from atlas.queue import EmbeddedQueue, JobQueue
from atlas.settings import Settings

log = logging.getLogger(__name__)


def create_app(settings: Settings, *, context: CommandContext | None = None) -> Flask:
    """An atlas server: the webhook endpoint and health check over an embedded job queue."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    ctx = context or build_context(settings)
    queue: JobQueue = EmbeddedQueue(
        lambda job: run_job(job, ctx), ctx.state, workers=max(4, settings.parallel_pool_size)
    )

    app = Flask("atlas")
    app.config.update(
        MAX_CONTENT_LENGTH=webhooks.MAX_BODY_BYTES,
        ATLAS_SETTINGS=settings,
        ATLAS_CONTEXT=ctx,
        ATLAS_STATE=ctx.state,
        ATLAS_QUEUE=queue,
    )
    app.register_blueprint(webhooks.blueprint)

    @app.get("/healthz")
    def healthz() -> Response:
        return Response(f'{{"status": "ok", "version": "{__version__}"}}\n', mimetype="application/json")

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        return webhooks.text(error.code or 500, f"{error.name}: {error.description}")

    @app.errorhandler(Exception)
    def internal_error(error: Exception) -> Response:
        log.exception("unhandled error in request")
        return webhooks.text(500, "internal error; the server log has the details")

    return app
