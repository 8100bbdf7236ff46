"""The Flask app factory: builds one atlas server from its settings, with nothing at import time.

Tests build as many apps as they like, each with its own data dir, state and queue.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable

from flask import Flask, Response, request
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from werkzeug.exceptions import HTTPException

from atlas import __version__, web
from atlas.bootstrap import report_interrupted_job, server_runtime
from atlas.commands.context import CommandContext
from atlas.commands.interrupted import recover_after_restart
from atlas.config.settings import Settings, require_webhook_secret
from atlas.drift.scheduler import start_scheduler
from atlas.gitlab.client import GitLabClient
from atlas.http import api, webhooks
from atlas.jobs.queue import JobQueue, QueueUnavailable
from atlas.jobs.reaper import Reaper
from atlas.jobs.rq import RQQueue
from atlas.runtime.lock_handoff import submit_handoff_plan

log = logging.getLogger(__name__)

STORE_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, QueueUnavailable, sqlite3.OperationalError)
"""What the stores raise while they cannot be reached (Redis down, SQLite busy or its disk gone): 503."""

HANDOFF_SWEEP_SECONDS = 5.0
"""How often the server looks for locks released elsewhere (the admin CLI) that passed to a waiter."""


class HandoffSweep(threading.Thread):
    """Plans for pull requests that a lock passed to while another process released it."""

    def __init__(self, ctx: CommandContext) -> None:
        super().__init__(name="atlas-handoff-sweep", daemon=True)
        self.ctx = ctx

    def run(self) -> None:
        while True:
            time.sleep(HANDOFF_SWEEP_SECONDS)
            try:
                for lock in self.ctx.locks.pending_handoffs():
                    submit_handoff_plan(self.ctx, lock)
            except Exception:
                log.exception("the lock handoff sweep failed; retrying")


def create_app(settings: Settings) -> Flask:
    """An atlas server: the webhook endpoint, pages and health over the embedded queue or rq workers."""
    require_webhook_secret(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    runtime = server_runtime(settings)
    ctx, queue = runtime.context, runtime.queue
    _start_queue(ctx, queue)
    HandoffSweep(ctx).start()
    start_scheduler(ctx)

    app = Flask("atlas")
    app.config.update(
        MAX_CONTENT_LENGTH=webhooks.MAX_BODY_BYTES,
        ATLAS_SETTINGS=settings,
        ATLAS_CONTEXT=ctx,
        ATLAS_STATE=ctx.state,
        ATLAS_QUEUE=queue,
        ATLAS_GITHUB_APP=runtime.github_app,
        # Whose notes are atlas's own on GitLab (asked of GitLab once, when --gitlab-user is unset).
        ATLAS_GITLAB_USERNAME=_identity(runtime.gitlab),
    )
    app.register_blueprint(webhooks.blueprint)
    app.register_blueprint(api.blueprint)
    web.init_app(app, ctx, queue, settings)

    @app.get("/healthz")
    def healthz() -> Response:
        problem = _backend_problem(queue)
        if problem:
            body = json.dumps({"status": "unavailable", "version": __version__, "problem": problem})
            return Response(body + "\n", status=503, mimetype="application/json")
        return Response(json.dumps({"status": "ok", "version": __version__}) + "\n", mimetype="application/json")

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        return webhooks.text(error.code or 500, f"{error.name}: {error.description}")

    @app.errorhandler(Exception)
    def internal_error(error: Exception) -> Response:
        if isinstance(error, STORE_UNREACHABLE):
            where = webhooks.store_location(settings)
            log.warning("answered %s %s with 503: %s is unreachable (%s)", request.method, request.path, where, error)
            return webhooks.text(503, f"atlas cannot read its state now: {where} is unreachable; try again shortly")
        log.exception("unhandled error in request")
        return webhooks.text(500, "internal error; the server log has the details")

    return app


def _identity(gitlab: GitLabClient | None) -> Callable[[], str] | None:
    """How the webhook edge learns the GitLab token's user, asked of GitLab on first use."""
    if gitlab is None:
        return None
    return lambda: gitlab.username


def _start_queue(ctx: CommandContext, queue: JobQueue) -> None:
    """rq: reap the jobs of workers that died; embedded: re-queue what was queued before a restart."""
    if isinstance(queue, RQQueue):
        Reaper(queue, lambda job: report_interrupted_job(ctx, job, "The atlas worker running this command stopped")
               ).start()
        return
    for job in recover_after_restart(ctx, report_interrupted_job):
        log.info("re-queueing job %s (%s on %s), queued before the restart", job.id, job.command, job.pull.key)
        queue.enqueue(job)


def _backend_problem(queue: JobQueue) -> str | None:
    """Why the server cannot take work now (Redis unreachable), or None."""
    try:
        queue.depth()
    except QueueUnavailable as error:
        return str(error)
    return None
