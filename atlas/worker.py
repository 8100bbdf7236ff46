"""`atlas worker`: rq worker processes that run the jobs atlas servers queue in Redis.

The parent process forks `--concurrency` worker processes and supervises them: one that dies is
replaced, and SIGTERM (or Ctrl-C) is passed on so that each finishes the job it is running and
exits. Each worker process builds its own `CommandContext` from its settings once, at start (jobs
carry no secrets, only what to do), and runs rq jobs in that same process (rq's `SimpleWorker`), so
that context, with its terraform runner and running-job registry, serves every job. Each worker
process also runs a `Reaper` for jobs whose worker died elsewhere. See `atlas.jobs.rq` for how jobs
of one pull request stay in order across workers.

Nothing a job started outlives its worker (`atlas.runtime.lifetime`): terraform and every other
child dies with the worker process that started it, a worker process dies with the parent, and
the parent, as child subreaper, ends whatever a dead worker process's children left running.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from redis.exceptions import RedisError
from rq import SimpleWorker

from atlas import metrics
from atlas.bootstrap import report_interrupted_job, run_queued, worker_runtime
from atlas.commands.context import CommandContext
from atlas.config.settings import ENV_PREFIX, Settings, SettingsError, require_github_auth
from atlas.jobs.drain import SerialRunner
from atlas.jobs.queue import JobExecutor
from atlas.jobs.reaper import Reaper
from atlas.jobs.rq import AbandonedHook, QueueKeys, install_runner
from atlas.models import Job
from atlas.runtime.lifetime import become_subreaper, end_orphans, tie_to_parent
from atlas.startup import log_startup, prepare_process
from atlas.stores.redis.backend import RedisBackend

log = logging.getLogger(__name__)

RESPAWN_PAUSE_SECONDS = 1.0
"""How long the parent waits before replacing a worker process that died right after it started."""

ExecutorFactory = Callable[[CommandContext], JobExecutor]
"""Builds, from a worker process's context, what runs each job (tests pass one that runs no terraform)."""

AbandonedHookFactory = Callable[[CommandContext], AbandonedHook]
"""Builds, from a worker process's context, what tells a pull request that its job's worker died."""


def run_commands(ctx: CommandContext) -> JobExecutor:
    """The real executor: commands and drift checks (`run_queued`) with the worker's context."""
    return lambda job: run_queued(job, ctx)


def report_abandoned(ctx: CommandContext) -> AbandonedHook:
    """Tell the pull request that its command's worker died, and turn its status to failure (for a drift
    check: release its remediation's locks, and say so on `atlas/drift`)."""

    def report(job: Job) -> None:
        report_interrupted_job(ctx, job, "The atlas worker running this command stopped")

    return report


def redis_url_of(settings: Settings) -> str | None:
    return settings.redis_url.get_secret_value() if settings.redis_url else None


def run(
    settings: Settings,
    *,
    concurrency: int = 1,
    executor_factory: ExecutorFactory = run_commands,
    abandoned_factory: AbandonedHookFactory = report_abandoned,
    metrics_port: int | None = None,
) -> int:
    """`atlas worker`: check the settings, log the start, then fork and supervise the worker processes."""
    redis_url = redis_url_of(settings)
    if redis_url is None:
        raise SettingsError(
            f"--redis-url ({ENV_PREFIX}REDIS_URL) is required: workers take their jobs from Redis"
        )
    if concurrency < 1:
        raise SettingsError(f"--concurrency must be at least 1, got {concurrency}")
    if metrics_port is not None and not 0 < metrics_port <= 65535 - (concurrency - 1):
        raise SettingsError(f"--metrics-port must leave room for {concurrency} port(s) below 65536, "
                            f"got {metrics_port}")
    require_github_auth(settings, "workers read pull requests and comment")
    sandbox = prepare_process(settings)
    log_startup(settings, "worker", sandbox)
    redis = RedisBackend(redis_url, settings.redis_key_prefix)
    location = redis.location
    try:
        redis.ping()  # on a connection of its own, closed before forking: worker processes open their own
    except RedisError as error:
        log.error("cannot reach Redis at %s: %s", location, error)
        return 1
    pool = WorkerPool(settings, redis_url, concurrency, executor_factory, abandoned_factory,
                      metrics_port=metrics_port)
    log.info("starting %d worker process(es) on Redis at %s", concurrency, location,
             extra={"queue": pool.queue_name, "concurrency": concurrency})
    return pool.run()


class WorkerPool:
    """The parent process: forks the worker processes, replaces those that die, stops them on SIGTERM."""

    def __init__(
        self,
        settings: Settings,
        redis_url: str,
        concurrency: int,
        executor_factory: ExecutorFactory,
        abandoned_factory: AbandonedHookFactory,
        *,
        metrics_port: int | None = None,
    ) -> None:
        self.settings = settings
        self.metrics_port = metrics_port
        self._slots: dict[int, int] = {}
        """Worker process pid -> its slot (0..concurrency-1), which names its metrics port."""
        self.redis_url = redis_url
        self.concurrency = concurrency
        self.executor_factory = executor_factory
        self.abandoned_factory = abandoned_factory
        self.queue_name = QueueKeys(RedisBackend(redis_url, settings.redis_key_prefix)).rq_queue_name
        self._children: dict[int, float] = {}
        self._stop_signals = 0
        self._subreaper = False

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._request_stop)
        signal.signal(signal.SIGINT, self._request_stop)
        # What a dead worker process's terraform started (providers, a `run` step's commands) is
        # re-parented here rather than to init, so that it can be ended with its worker.
        self._subreaper = become_subreaper()
        for slot in range(self.concurrency):
            self._spawn(slot)
        while self._children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            if pid not in self._children:
                continue  # an orphan of a dead worker process, ended below
            started = self._children.pop(pid)
            slot = self._slots.pop(pid, 0)
            if self._subreaper and status != 0:
                ended = end_orphans(lambda: self._children.keys())
                if ended:
                    log.warning("ended %d process(es) that worker process %d left behind: %s", len(ended), pid,
                                " ".join(map(str, ended)))
            if self._stop_signals:
                continue
            log.error("worker process %d exited unexpectedly (%s); starting another", pid, _exit_reason(status))
            if time.monotonic() - started < RESPAWN_PAUSE_SECONDS:
                time.sleep(RESPAWN_PAUSE_SECONDS)
            if not self._stop_signals:
                self._spawn(slot)
        log.info("atlas worker stopped")
        return 0

    def _spawn(self, slot: int) -> None:
        # Held back until the child has dropped this process's handlers, which would signal its siblings.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            # A worker process and its jobs end with `atlas worker`, even when it is SIGKILLed.
            tie_to_parent(parent)
            # rq installs its own handlers once it starts working.
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            status = 1
            try:
                if self.metrics_port is not None:
                    metrics.serve_http(self.metrics_port + slot)
                    log.info("worker process %d serves its metrics on port %d", os.getpid(), self.metrics_port + slot)
                status = serve(self.settings, self.redis_url, self.executor_factory, self.abandoned_factory)
            except BaseException:
                log.exception("worker process %d failed", os.getpid())
            finally:
                logging.shutdown()
                os._exit(status)
        self._children[pid] = time.monotonic()
        self._slots[pid] = slot
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    def _request_stop(self, signum: int, frame: FrameType | None) -> None:
        self._stop_signals += 1
        if self._stop_signals == 1:
            log.info("stopping: each worker process finishes the job it is running, then exits")
        else:
            log.warning("stopping now: interrupting running jobs")
        for pid in list(self._children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


def serve(
    settings: Settings,
    redis_url: str,
    executor_factory: ExecutorFactory = run_commands,
    abandoned_factory: AbandonedHookFactory = report_abandoned,
) -> int:
    """One worker process: build the context, run rq jobs until asked to stop; the exit status."""
    name = f"atlas-{socket.gethostname()}-{os.getpid()}"
    ctx, queue = worker_runtime(settings)
    stopping = threading.Event()
    install_runner(SerialRunner(
        queue, executor_factory(ctx), ctx.state, worker_name=name, stopping=stopping,
        interrupt=lambda job: ctx.running.cancel_pull(job.pull.key),
    ))
    reaper = Reaper(queue, abandoned_factory(ctx))
    reaper.start()
    worker = AtlasWorker(
        [queue.keys.rq_queue_name],
        connection=queue.backend.binary,
        name=name,
        stopping=stopping,
        log_job_description=False,
    )
    log.info("worker process %d listening on queue %s", os.getpid(), queue.keys.rq_queue_name)
    try:
        # rq's per-job lines repeat what atlas logs about each job.
        worker.work(logging_level="DEBUG" if settings.log_level == "debug" else "WARNING")
    finally:
        reaper.stop()
        install_runner(None)
    return 0


class AtlasWorker(SimpleWorker):
    """rq's in-process worker, which also tells atlas's drain when a stop is requested and keeps rq's
    heartbeats up while a long job runs (rq extends them only between jobs in a `SimpleWorker`)."""

    def __init__(self, *args: Any, stopping: threading.Event, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stopping = stopping

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping.set()
        super().request_stop(signum, frame)  # type: ignore[no-untyped-call]

    def perform_job(self, job: Any, queue: Any, execution: Any) -> bool:
        done = threading.Event()

        def keep_alive() -> None:
            while not done.wait(self.job_monitoring_interval):
                try:
                    self.maintain_heartbeats(job, execution)
                except RedisError as error:
                    log.warning("could not extend rq's heartbeat of %s: %s", self.name, error)

        thread = threading.Thread(target=keep_alive, name="atlas-rq-heartbeat", daemon=True)
        thread.start()
        try:
            performed: bool = super().perform_job(job, queue, execution)
            return performed
        finally:
            done.set()
            thread.join()


def _exit_reason(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"
