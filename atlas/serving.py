"""Serving atlas's Flask app: gunicorn's processes, `atlas.http.front`'s guarded HTTP reading, atlas's log handlers.

gunicorn forks, watches and gracefully stops the web processes; inside each, `front.FrontWorker`
reads requests on an event loop with deadlines and per-client bounds and hands only complete ones
to its request threads (see `atlas.http.front` for why, and docs/benchmarks.md for the measurements).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import flask
from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]
from gunicorn.glogging import Logger as GunicornLogger  # type: ignore[import-untyped]

from atlas import metrics
from atlas.config.settings import Settings
from atlas.http.front import FrontLimits, FrontWorker

AppFactory = Callable[[Settings], flask.Flask]
"""Builds the WSGI app from settings; `atlas.app.create_app` unless a test passes its own."""

DEFAULT_THREADS = 8
"""Request threads per worker process: webhooks return quickly, as the work goes to the queue."""

DEFAULT_GRACEFUL_TIMEOUT = 30
"""Seconds a worker has to finish its requests after SIGTERM before gunicorn kills it."""


class RoutedGunicornLogger(GunicornLogger):  # type: ignore[misc]
    """gunicorn's logger with its own handlers removed, so its lines go through atlas's root handler.

    Access lines come from `front.AccessLog`, on this logger's `gunicorn.access`.
    """

    def setup(self, cfg: Any) -> None:
        self.cfg = cfg
        self.loglevel = self.LOG_LEVELS.get(cfg.loglevel.lower(), logging.INFO)
        for log in (self.error_log, self.access_log):
            for handler in list(log.handlers):
                log.removeHandler(handler)
            log.propagate = True
        self.error_log.setLevel(self.loglevel)
        self.access_log.setLevel(logging.INFO)


class AtlasServer(BaseApplication):  # type: ignore[misc]
    """gunicorn running atlas: by default one worker process with `threads` request threads behind `Front`.

    The embedded job queue lives in the worker process, so several processes would be several
    queues; `workers` is for deployments whose queue is shared (Redis). The app is built in the
    worker after the fork (no preloading), so the queue's threads run in the process that serves.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        workers: int = 1,
        threads: int = DEFAULT_THREADS,
        graceful_timeout: int = DEFAULT_GRACEFUL_TIMEOUT,
        app_factory: AppFactory | None = None,
        limits: FrontLimits | None = None,
    ) -> None:
        self.settings = settings
        self.limits = limits or FrontLimits(max_connections_per_client=settings.max_connections_per_client)
        self.workers = workers
        self.threads = threads
        self.graceful_timeout = graceful_timeout
        self.app_factory = app_factory
        super().__init__(prog="atlas server")

    def options(self) -> dict[str, object]:
        """The gunicorn settings atlas runs with."""
        return {
            "bind": [f"0.0.0.0:{self.settings.port}"],
            "workers": self.workers,
            # A subclass per server, so that each worker process knows this server's limits.
            "worker_class": type("AtlasFrontWorker", (FrontWorker,), {"limits": self.limits}),
            "threads": self.threads,
            "preload_app": False,
            # Workers heartbeat from their event loop, so this bounds a stuck worker, not a slow request.
            "timeout": 60,
            "graceful_timeout": self.graceful_timeout,
            "proc_name": "atlas",
            "loglevel": self.settings.log_level,
            "logger_class": RoutedGunicornLogger,
            # gunicorn ≥ 24 otherwise creates a control socket under $HOME shared by every instance.
            "control_socket_disable": True,
            "child_exit": _web_process_exited,
        }

    def load_config(self) -> None:
        for name, value in self.options().items():
            if name in self.cfg.settings:  # options newer than the installed gunicorn are skipped
                self.cfg.set(name, value)

    def load(self) -> flask.Flask:
        factory = self.app_factory
        if factory is None:
            from atlas.app import create_app

            factory = create_app
        return factory(self.settings)


def _web_process_exited(server: Any, worker: Any) -> None:
    """gunicorn's `child_exit` hook, in the master: the web process's live metrics go with it."""
    metrics.forget_process(worker.pid)
