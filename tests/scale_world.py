"""A world of real processes for issue 6's tests: `atlas server` and `atlas worker` processes on a real Redis.

`scale_world` gives a test the GitHub emulator, a Redis database of its own and a directory of
terraform state shared by every run (as a remote backend would be). From it the test starts real
`atlas server` processes (gunicorn; `--web-workers 2` with Redis) and `atlas worker` processes,
each worker with its own `--data-dir`, as if on hosts of their own. `embedded_world` is the same
without Redis. Every process leads a process group of its own, which teardown kills, together
with any terraform a killed process left behind.

The classes here do not need pytest, so the scale benchmarks build the same world.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
from redis import Redis
from redis.exceptions import RedisError

from atlas.stores.locks import ProjectLock
from atlas.stores.redis.backend import connect
from atlas.stores.redis.locks import RedisLockStore
from tests.atlas_plugin import FIXTURES, REPO_ROOT, WEBHOOK_SECRET
from tests.emulator import EmulatedPull, EmulatedRepo, GitHubEmulator, deliver, webhook_payload
from tests.redis_backends import backend_of
from tests.redis_plugin import INSTALL_HINT as REDIS_INSTALL_HINT
from tests.redis_plugin import free_port

DEVELOPER = "alice"
"""Who opens pull requests and comments; she may write to every repository the world creates."""
ATLAS_URL = "https://atlas.example.test"
START_TIMEOUT = 60.0
"""Seconds a process has to start answering; generous, as CI runs many tests at once on few cores."""

T = TypeVar("T")


class TimedOut(AssertionError):
    """Something a test waited for did not happen in time."""


def eventually(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.1) -> T:
    """The first truthy result of `check`, or TimedOut naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimedOut(f"{what} did not happen within {timeout:g} s")
        time.sleep(interval)


def child_pids(pid: int) -> list[int]:
    """The direct children of a process (Linux)."""
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


# --- Redis --------------------------------------------------------------------------------------


class RedisProcess:
    """A redis-server on a fixed free port, which a test may stop (or kill) and start again; without
    persistence, or with the append-only file the deployment files configure (`appendfsync everysec`)."""

    def __init__(self, directory: Path, *, append_only: bool = False) -> None:
        self.append_only = append_only
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError(f"redis-server is not on PATH: {REDIS_INSTALL_HINT}")
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> RedisProcess:
        """Start it (again, on the same port) and wait until it answers."""
        with (self.directory / f"redis-{self.port}.log").open("ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "yes" if self.append_only else "no", "--appendfsync", "everysec",
                 "--dir", str(self.directory)],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        client = Redis(port=self.port, socket_connect_timeout=1)
        try:
            eventually(lambda: self._answers(client), 15, f"redis-server answering on port {self.port}", 0.05)
        finally:
            client.close()
        return self

    def _answers(self, client: Redis) -> bool:
        if self.process is not None and self.process.poll() is not None:
            log = (self.directory / f"redis-{self.port}.log").read_text(errors="replace")
            raise RuntimeError(f"redis-server exited with {self.process.returncode}:\n{log}")
        try:
            return bool(client.ping())
        except RedisError:
            return False

    def kill(self) -> None:
        """SIGKILL, as the OOM killer or a lost node stops it: what it had not written to disk is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


# --- terraform that takes its time --------------------------------------------------------------


@dataclass
class SlowTerraform:
    """A terraform whose first `plan` (of all processes using it) sleeps a minute first; later plans are quick
    (or the first `apply`, made with `command="apply"`).

    The slow run creates `started` before it says `slow plan starting`; a test then finds, from the
    host, which atlas process runs it (inside its sandbox the run cannot know: its PID namespace is
    its own), and can end it if its atlas process died and left it running.
    """

    binary: Path
    started: Path
    command: str = "plan"

    @classmethod
    def create(cls, directory: Path, seconds: int = 60, only_in: str | None = None,
               command: str = "plan") -> SlowTerraform:
        """`only_in`: slow only in a project directory of that name (the others plan at once)."""
        real = shutil.which("terraform")
        if real is None:
            raise FileNotFoundError("terraform is not on PATH: install terraform 1.11 (see docs/)")
        directory.mkdir(parents=True, exist_ok=True)
        binary, started, taken = directory / "terraform", directory / "slow-plan-started", directory / "slow-plan-taken"
        where = f'[ "$(basename "$PWD")" = "{only_in}" ] && ' if only_in else ""
        binary.write_text(
            "#!/bin/sh\n"
            # mkdir is atomic: exactly one plan is slow.
            f'if [ "$1" = {command} ] && {where}mkdir "{taken}" 2>/dev/null; then\n'
            f'  touch "{started}"\n'
            f'  echo "slow {command} starting"\n'
            f"  sleep {seconds}\n"
            "fi\n"
            f'exec {real} "$@"\n'
        )
        binary.chmod(0o755)
        return cls(binary, started, command)

    def running(self) -> int | None:
        """The host pid of the slow run's script while it runs."""
        needle = str(self.binary).encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                words = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if len(words) > 2 and words[1] == needle and words[2] == self.command.encode():
                return int(entry.name)
        return None

    def started_by(self) -> int | None:
        """The pid of the atlas process running the slow plan, once it started: its first ancestor not bwrap."""
        if not self.started.exists():
            return None
        pid = self.running()
        while pid is not None and pid > 1:
            pid = _parent(pid)
            if pid is not None and _command_name(pid) != "bwrap":
                return pid
        return None

    def end_leftover(self) -> None:
        """Kill the slow plan if it still runs: it runs in a process group of its own."""
        pid = self.running()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(os.getpgid(pid), signal.SIGKILL)


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _command_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


# --- atlas processes ----------------------------------------------------------------------------


@dataclass
class AtlasProcess:
    """One `atlas server` or `atlas worker` process under test, leading a process group of its own."""

    process: subprocess.Popen[bytes]
    log_file: Path
    data_dir: Path
    stopped: bool = field(default=False, init=False)
    """Whether the test stopped it on purpose (`terminate`, `kill`)."""

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def check_running(self) -> None:
        if self.process.poll() is not None:
            raise AssertionError(f"process {self.pid} exited with {self.process.returncode}:\n{self.log_text()}")

    def wait_for_log(self, needle: str, count: int = 1, timeout: float = START_TIMEOUT) -> None:
        def logged() -> bool:
            self.check_running()
            return self.log_text().count(needle) >= count

        eventually(logged, timeout, f"{count} log line(s) {needle!r} from process {self.pid}")

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM, as an orchestrator stops a process, and wait for it to exit; its exit status."""
        self.stopped = True
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        """SIGKILL the whole process group (not the terraform it runs, which has a group of its own)."""
        self.stopped = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.process.wait(10)


@dataclass
class AtlasServerProcess(AtlasProcess):
    """`atlas server` (gunicorn) answering on `url`."""

    url: str = ""

    def deliver(self, event: str, payload: dict[str, Any], timeout: float = 30) -> requests.Response:
        """A delivery signed as GitHub signs it."""
        return deliver(f"{self.url}/events", event, payload, secret=WEBHOOK_SECRET, timeout=timeout)

    def pull_event(self, pull: EmulatedPull, action: str = "opened") -> requests.Response:
        return self.deliver("pull_request", webhook_payload("pull_request", pull, action))

    def comment(self, pull: EmulatedPull, body: str, user: str = DEVELOPER) -> requests.Response:
        """Comment on the pull request as `user` and deliver the comment's webhook."""
        return self.deliver("issue_comment", webhook_payload("issue_comment", pull, "created", body=body,
                                                             commenter=user))

    def healthz(self) -> requests.Response:
        return requests.get(f"{self.url}/healthz", timeout=10)

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> None:
        def healthy() -> bool:
            self.check_running()
            try:
                return self.healthz().status_code == 200
            except requests.ConnectionError:
                return False

        eventually(healthy, timeout, f"atlas server {self.pid} answering /healthz with 200")


@dataclass
class AtlasWorkerProcess(AtlasProcess):
    """`atlas worker`: the supervising parent, whose children are the worker processes that run jobs."""

    concurrency: int = 1

    def worker_pids(self) -> list[int]:
        return child_pids(self.pid)

    def job_logs(self) -> list[Path]:
        """The output of the jobs this worker ran: only the worker that runs a job has its log."""
        return sorted((self.data_dir / "jobs").glob("*.log"))

    def ran(self, job_output: str) -> bool:
        """Whether a job of this worker printed `job_output`."""
        return any(job_output in log.read_text(errors="replace") for log in self.job_logs())


@dataclass
class ScaleWorld:
    """The emulator, terraform state shared by all runs, Redis (or not) and the atlas processes of a test."""

    root: Path
    emulator: GitHubEmulator
    state_dir: Path
    redis_url: str | None
    processes: list[AtlasProcess] = field(default_factory=list)
    slow_terraforms: list[SlowTerraform] = field(default_factory=list)
    atlas_command: tuple[str, ...] = (sys.executable, "-m", "atlas")
    """How to run `atlas` (a benchmark may run it through a launcher)."""

    # Repositories and pull requests

    def create_repo(self, full_name: str = "acme/infra") -> EmulatedRepo:
        """`full_name` holding the multi-project fixture (app and db), its state under `state_of(full_name)`."""
        repo = self.emulator.create_repo(full_name, source_dir=FIXTURES / "multi-project",
                                         substitutions={"__STATE_DIR__": str(self.state_of(full_name))})
        self.emulator.set_permission(full_name, DEVELOPER, "write")
        return repo

    def state_of(self, full_name: str) -> Path:
        return self.state_dir / full_name

    def open_pull(self, full_name: str, branch: str, projects: tuple[str, ...] = ("app",)) -> EmulatedPull:
        """A pull request by the developer changing the given projects of the multi-project fixture."""
        changes: dict[str, str | None] = {}
        if "app" in projects:
            main_tf = (FIXTURES / "multi-project/app/main.tf").read_text()
            changes["app/main.tf"] = main_tf.replace("replicas = 2", "replicas = 3")
        if "db" in projects:
            main_tf = (FIXTURES / "multi-project/db/main.tf").read_text()
            changes["db/main.tf"] = main_tf.replace('"production"', '"staging"')
        return self.emulator.open_pull(full_name, branch, changes, author=DEVELOPER)

    def bot_comments(self, pull: EmulatedPull) -> list[str]:
        """What atlas said on the pull request, oldest first."""
        comments = self.emulator.comments(pull.repo.full_name, pull.number)
        return [c["body"] for c in comments if c["user"] == self.emulator.bot_login]

    def statuses(self, pull: EmulatedPull, context: str) -> list[tuple[str, str]]:
        """(state, description) of every status `context` got on the pull request's head, in order."""
        return [(s["state"], s["description"]) for s in self.emulator.statuses(pull.repo.full_name, pull.head_sha)
                if s["context"] == context]

    def latest_state(self, pull: EmulatedPull, context: str) -> str | None:
        """The state of the last status `context` got on the pull request's head, None before the first."""
        said = self.statuses(pull, context)
        return said[-1][0] if said else None

    def wait_for_comment(self, pull: EmulatedPull, starting: str, timeout: float = 90, count: int = 1) -> str:
        """The `count`-th comment of atlas's that starts with `starting`, once it is there."""

        def found() -> str | None:
            for process in self.processes:
                if isinstance(process, AtlasServerProcess) and not process.stopped:
                    process.check_running()
            said = [body for body in self.bot_comments(pull) if body.startswith(starting)]
            return said[count - 1] if len(said) >= count else None

        return eventually(found, timeout, f"atlas's comment #{count} starting {starting!r} on {pull.repo.full_name}"
                                          f"#{pull.number} (atlas said: {self.bot_comments(pull)!r})")

    def locks_of(self, pull: EmulatedPull) -> list[ProjectLock]:
        """The project locks the pull request holds, as every atlas process sees them in Redis."""
        assert self.redis_url is not None, "locks are in Redis only in a world with Redis"
        client = connect(self.redis_url)
        try:
            return RedisLockStore(backend_of(client)).for_pull(pull.repo.full_name, pull.number)
        finally:
            client.close()

    # Processes

    def slow_terraform(self, only_in: str | None = None, seconds: int = 60, command: str = "plan") -> SlowTerraform:
        slow = SlowTerraform.create(self.root / f"slow-terraform-{len(self.slow_terraforms)}", seconds=seconds,
                                    only_in=only_in, command=command)
        self.slow_terraforms.append(slow)
        return slow

    def start_server(
        self,
        *,
        web_workers: int | None = None,
        redis_url: str | None = None,
        data_dir: Path | None = None,
        terraform_bin: Path | None = None,
        extra_args: tuple[str, ...] = (),
        wait: bool = True,
        sandbox: str = "required",
        env: dict[str, str | None] | None = None,
    ) -> AtlasServerProcess:
        """`atlas server` on a free port; with the world's Redis and 2 web workers unless told otherwise.

        `env` changes its environment (None removes a variable), as `sandbox` its `--sandbox`.
        """
        redis_url = redis_url or self.redis_url
        web_workers = web_workers or (2 if redis_url else 1)
        index = len(self.processes)
        port = free_port()
        data_dir = data_dir or self.root / f"server-{index}"
        args = ["server", "--port", str(port), "--web-workers", str(web_workers), *extra_args]
        server = AtlasServerProcess(*self._spawn(f"server-{index}", args, data_dir, redis_url, terraform_bin,
                                                 sandbox=sandbox, env_changes=env or {}),
                                    url=f"http://127.0.0.1:{port}")
        self.processes.append(server)
        if wait:
            server.wait_healthy()
        return server

    def start_worker(
        self, *, concurrency: int = 1, terraform_bin: Path | None = None, extra_args: tuple[str, ...] = (),
        wait: bool = True, sandbox: str = "required", env: dict[str, str | None] | None = None,
    ) -> AtlasWorkerProcess:
        """`atlas worker` with a data directory of its own, on the world's Redis (`env` as for the server)."""
        assert self.redis_url is not None, "workers need a world with Redis"
        index = len(self.processes)
        args = ["worker", "--concurrency", str(concurrency), *extra_args]
        worker = AtlasWorkerProcess(
            *self._spawn(f"worker-{index}", args, self.root / f"worker-{index}", self.redis_url, terraform_bin,
                         sandbox=sandbox, env_changes=env or {}),
            concurrency=concurrency,
        )
        self.processes.append(worker)
        if wait:
            worker.wait_for_log("listening on queue", count=concurrency)
        return worker

    def _spawn(
        self, name: str, args: list[str], data_dir: Path, redis_url: str | None, terraform_bin: Path | None,
        *, sandbox: str = "required", env_changes: dict[str, str | None] | None = None,
    ) -> tuple[subprocess.Popen[bytes], Path, Path]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("ATLAS_")}
        # Secrets through the environment, as an operator would pass them; never in argv.
        env.update(PYTHONPATH=str(REPO_ROOT), HOME=str(self.root / "home"), ATLAS_GH_TOKEN=self.emulator.token,
                   ATLAS_GH_WEBHOOK_SECRET=WEBHOOK_SECRET)
        if redis_url:
            env["ATLAS_REDIS_URL"] = redis_url
        for variable, value in (env_changes or {}).items():
            if value is None:
                env.pop(variable, None)
            else:
                env[variable] = value
        settings = ["--data-dir", str(data_dir), "--gh-api-url", self.emulator.api_url, "--repo-allowlist", "*",
                    "--gh-user", self.emulator.bot_login, "--atlas-url", ATLAS_URL, "--sandbox", sandbox]
        if sandbox != "off":
            # Confined as in production; the shared state (and a slow terraform's marker) reached through
            # --sandbox-paths.
            reachable = [str(self.state_dir), *(str(slow.binary.parent) for slow in self.slow_terraforms)]
            settings += ["--sandbox-paths", ",".join(reachable)]
        if terraform_bin is not None:
            settings += ["--terraform-bin", str(terraform_bin)]
        log_file = self.root / f"{name}.log"
        with log_file.open("ab") as log:
            process = subprocess.Popen(
                [*self.atlas_command, *args, *settings],
                cwd=self.root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        return process, log_file, data_dir

    def stop(self) -> None:
        """Kill every process the world started, and the terraform runs they left behind."""
        for process in self.processes:
            process.kill()
        for slow in self.slow_terraforms:
            slow.end_leftover()


def new_world(root: Path, emulator: GitHubEmulator, redis_url: str | None) -> ScaleWorld:
    state_dir = root / "tfstate"
    state_dir.mkdir(parents=True, exist_ok=True)
    return ScaleWorld(root=root, emulator=emulator, state_dir=state_dir, redis_url=redis_url)


# --- fixtures -----------------------------------------------------------------------------------


def _require(binary: str, hint: str) -> None:
    if shutil.which(binary) is None:
        pytest.fail(f"{binary} is not on PATH: {hint}", pytrace=False)


@pytest.fixture
def scale_world(tmp_path: Path, github_emulator: GitHubEmulator, redis_url: str) -> Iterator[ScaleWorld]:
    """A world with a Redis database of this test's own; its processes are killed at the end."""
    _require("terraform", "install terraform 1.11")
    world = new_world(tmp_path, github_emulator, redis_url)
    yield world
    world.stop()


@pytest.fixture
def embedded_world(tmp_path: Path, github_emulator: GitHubEmulator) -> Iterator[ScaleWorld]:
    """A world without Redis: `atlas server` runs jobs in its embedded queue."""
    _require("terraform", "install terraform 1.11")
    world = new_world(tmp_path, github_emulator, None)
    yield world
    world.stop()


@pytest.fixture
def persistent_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server of this test's own with the append-only file on, as deployed, which it may kill."""
    _require("redis-server", REDIS_INSTALL_HINT)
    server = RedisProcess(tmp_path / "persistent-redis", append_only=True).start()
    yield server
    server.stop()


@pytest.fixture
def restartable_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server of this test's own, which it may stop and start again on the same port."""
    _require("redis-server", REDIS_INSTALL_HINT)
    server = RedisProcess(tmp_path / "own-redis").start()
    yield server
    server.stop()
