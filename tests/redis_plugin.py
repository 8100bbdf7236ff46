"""Fixtures that stand up Redis and `atlas worker`: real processes, as in production.

A real `redis-server` starts once per test session (so once per xdist worker) on a free port, and
each test gets a database of its own, flushed (`redis_url`, `redis_client`); a test that stops
Redis starts a server of its own (`private_redis`). `start_worker` runs `atlas worker` processes
whose executor records what each job did instead of running terraform: run as a module
(`python -m tests.redis_plugin worker ...`) this file is `atlas worker` with that executor.
A job's `message` tells the recording executor what to do: `{"sleep": 2.5, "raise": false}`; a job
cancelled through the worker's `RunningJobs` stops sleeping and records that it was interrupted.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from redis import Redis
from redis.exceptions import RedisError

from atlas.commands.context import CommandContext
from atlas.jobs.queue import JobExecutor
from atlas.jobs.rq import AbandonedHook
from atlas.models import CommandName, Job, JobStatus, PullRequest, Repo
from atlas.stores.redis.backend import connect, text

REPO_ROOT = Path(__file__).resolve().parents[1]
INSTALL_HINT = "install redis-server (apt-get install redis-server)"
DATABASES = 10_000
"""Databases each test server has; tests take the next one, so none sees another's keys."""
EVENTS_KEY = "test:events"
"""The Redis list the recording executor and abandoned hook append their events to."""

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def eventually(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.05) -> T:
    """The first truthy result of `check`, or a failure naming `what` did not happen in time."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout} s", pytrace=False)
        time.sleep(interval)


@dataclass
class RedisServer:
    """A redis-server process of the tests, on 127.0.0.1."""

    port: int
    process: subprocess.Popen[bytes]
    log_file: Path

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start_redis_server(directory: Path) -> RedisServer:
    """Start redis-server on a free port, without persistence, and wait until it answers."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail(f"redis-server is not on PATH: {INSTALL_HINT}", pytrace=False)
    directory.mkdir(parents=True, exist_ok=True)
    for _ in range(5):  # another process may take the free port before redis-server binds it
        port = free_port()
        log_file = directory / f"redis-{port}.log"
        with log_file.open("wb") as log:
            process = subprocess.Popen(
                [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--databases", str(DATABASES), "--dir", str(directory)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        server = RedisServer(port, process, log_file)
        client = Redis(port=port, socket_connect_timeout=1)
        deadline = time.monotonic() + 10
        while process.poll() is None and time.monotonic() < deadline:
            try:
                client.ping()
            except RedisError:
                time.sleep(0.05)
                continue
            client.close()
            return server
        server.stop()
    pytest.fail(f"redis-server did not start; see {log_file}", pytrace=False)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_redis_server(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


_next_database = itertools.count(1)


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The URL of a fresh database of the session's Redis, for this test alone."""
    url = redis_server.url(next(_next_database) % DATABASES)
    client = connect(url)
    client.flushdb()
    client.close()
    return url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[Redis]:
    client = connect(redis_url)
    yield client
    client.close()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, which it may stop."""
    server = start_redis_server(tmp_path / "private-redis")
    yield server
    server.stop()


# --- atlas worker processes with a recording executor ----------------------------------------------


REPO = Repo(
    full_name="acme/infra", clone_url="http://git.invalid/acme/infra.git", html_url="http://git.invalid/acme/infra"
)


def make_recorded_job(number: int, *, sleep: float = 0, fail: bool = False) -> Job:
    """A job of pull request `number` that the recording executor runs for `sleep` seconds, then fails or succeeds."""
    pull = PullRequest(repo=REPO, number=number, head_sha="a" * 40, head_ref="x", base_ref="main", author="me")
    return Job(command=CommandName.PLAN, pull=pull, message=json.dumps({"sleep": sleep, "raise": fail}))


def record(events: Redis, event: str, job: Job, **fields: Any) -> None:
    entry = {"event": event, "job": job.id, "pull": job.serial_key, "pid": os.getpid(), "time": time.time(), **fields}
    events.rpush(EVENTS_KEY, json.dumps(entry))


@dataclass
class JobEvents:
    """What the recording executors and abandoned hooks of this test's workers recorded, oldest first."""

    client: Redis

    def all(self) -> list[dict[str, Any]]:
        return [json.loads(text(entry) or "{}") for entry in self.client.lrange(EVENTS_KEY, 0, -1)]

    def of(self, event: str) -> list[dict[str, Any]]:
        return [entry for entry in self.all() if entry["event"] == event]


# Test modules get these helpers as fixtures: importing this module before pytest registers it as
# a plugin would keep pytest from rewriting its asserts.


@pytest.fixture(name="recorded_job")
def recorded_job_fixture() -> Callable[..., Job]:
    return make_recorded_job


@pytest.fixture
def job_events(redis_client: Redis) -> JobEvents:
    return JobEvents(redis_client)


@pytest.fixture(name="eventually")
def eventually_fixture() -> Callable[..., Any]:
    return eventually


def recording_executor(ctx: CommandContext) -> JobExecutor:
    """Runs a job as its `message` says, recording its start and end, and its status as `run_job` does."""
    events = connect(os.environ["ATLAS_REDIS_URL"])

    def execute(job: Job) -> None:
        instructions = json.loads(job.message or "{}")
        ctx.state.set_job_status(job.id, JobStatus.RUNNING)
        # PR_GET_DUMPABLE of the worker process that runs the job.
        record(events, "start", job, dumpable=ctypes.CDLL(None).prctl(3, 0, 0, 0, 0))
        token = ctx.running.start(job)
        try:
            if token.wait(float(instructions.get("sleep", 0))):
                record(events, "interrupted", job)
                return
        finally:
            ctx.running.finish(job)
        if instructions.get("raise"):
            raise RuntimeError(f"job {job.id} was told to raise")
        record(events, "end", job)
        ctx.state.set_job_status(job.id, JobStatus.SUCCEEDED, "recorded")

    return execute


def recording_abandoned_hook(ctx: CommandContext) -> AbandonedHook:
    events = connect(os.environ["ATLAS_REDIS_URL"])
    return lambda job: record(events, "abandoned", job)


@dataclass
class WorkerProcess:
    """One `atlas worker` under test, in a process group of its own."""

    process: subprocess.Popen[bytes]
    log_file: Path
    data_dir: Path
    stopped: bool = field(default=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def wait_for_log(self, needle: str, count: int = 1, timeout: float = 30) -> None:
        eventually(lambda: self.log_text().count(needle) >= count or self.process.poll() is not None,
                   timeout, f"{count} log line(s) {needle!r} from worker {self.pid}")
        if self.log_text().count(needle) < count:
            pytest.fail(f"worker {self.pid} exited with {self.process.returncode}:\n{self.log_text()}", pytrace=False)

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL the worker and its worker processes at once, as when its host dies."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        self.stopped = True

    def wait(self, timeout: float = 30) -> int:
        return self.process.wait(timeout)


def worker_env(tmp_path: Path, redis_url: str, **extra: str) -> dict[str, str]:
    """The environment of an `atlas worker` run: no ATLAS_* from the machine, Redis and a token given."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ATLAS_")}
    env.update(
        PYTHONPATH=str(REPO_ROOT),
        HOME=str(tmp_path / "home"),
        ATLAS_REDIS_URL=redis_url,
        ATLAS_GH_TOKEN="test-token-for-workers",
    )
    env.update(extra)
    return env


@pytest.fixture
def start_worker(tmp_path: Path, redis_url: str) -> Iterator[Callable[..., WorkerProcess]]:
    """Start `atlas worker` (with the recording executor) on this test's Redis database."""
    workers: list[WorkerProcess] = []

    def start(*args: str, concurrency: int = 1, env: dict[str, str] | None = None, own_data_dir: bool = True) -> (
        WorkerProcess
    ):
        """`own_data_dir=False` leaves `--data-dir` to the arguments (or a config file)."""
        data_dir = tmp_path / f"worker-{len(workers)}"
        log_file = tmp_path / f"worker-{len(workers)}.log"
        data_dir_args = ["--data-dir", str(data_dir)] if own_data_dir else []
        with log_file.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "tests.redis_plugin", "worker", "--concurrency", str(concurrency),
                 *data_dir_args, *args],
                cwd=REPO_ROOT,
                env=worker_env(tmp_path, redis_url, **(env or {})),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = WorkerProcess(process, log_file, data_dir)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        # The whole group: worker processes may outlive a parent that failed.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.process.pid, signal.SIGKILL)
        worker.process.wait(10)


def main(argv: list[str]) -> int:
    """`atlas worker` with the recording executor and abandoned hook."""
    from atlas import worker
    from atlas.cli.main import build_parser
    from atlas.cli.subcommand import settings_from_args

    args = build_parser().parse_args(argv)
    return worker.run(settings_from_args(args), concurrency=args.concurrency, executor_factory=recording_executor,
                      abandoned_factory=recording_abandoned_hook)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
