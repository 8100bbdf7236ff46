"""Running terraform: one subprocess per step, streamed into the job log, stoppable, with a clean environment.

Atlas runs terraform itself rather than through python-terraform because it needs every line as it
arrives (for the live job page), an environment built per run, and a way to stop a run that leaves
the state lock released.

The environment matters because terraform runs the pull request's own code: a `local-exec`
provisioner or an `external` data source can read every environment variable and print it into the
plan. So each child gets the server's environment minus everything atlas owns (its `ATLAS_*`
settings, GitHub tokens, any value containing a known secret, plain or encoded), never `os.environ`
as it is. And each child runs in the runner's sandbox (`atlas.runtime.sandbox`), confined to the `RunScope`
its caller names (the working copy) plus the terraform binary and the plugin cache.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from atlas import metrics
from atlas.logs import secret_forms
from atlas.models import Distribution
from atlas.runtime.cancellation import CancelToken
from atlas.runtime.filelock import file_lock
from atlas.runtime.joblog import JobLog, Redactor
from atlas.runtime.lifetime import dies_with_this_process
from atlas.runtime.sandbox import RunScope, Sandbox, Unconfined, signal_run
from atlas.runtime.tfcli import UnreadableOutput, read_version

DEFAULT_TIMEOUT_SECONDS = 3600.0
"""How long one terraform command may run before atlas stops it."""

DEFAULT_GRACE_SECONDS = 10.0
"""How long terraform gets after SIGINT to release its state lock before it is killed."""

SECRET_VARIABLES = frozenset({"GITHUB_TOKEN", "GH_TOKEN", "GITLAB_TOKEN"})
"""Variables that hold VCS credentials under their conventional names."""

SERVER_VARIABLES = frozenset({"PROMETHEUS_MULTIPROC_DIR"})
"""Variables atlas sets for itself (their values name the data dir, which the PR's code has no business with)."""

ATLAS_VARIABLE_PREFIX = "ATLAS_"

_POLL_SECONDS = 0.05
_LEFTOVER_KILL_WAIT_SECONDS = 1.0


def scrubbed_environ(secrets: Iterable[str] = (), base: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of `base` (the server's environment) without atlas's own variables or any secret value.

    A value is dropped when it holds a secret in any form the redactor knows (plain, base64, URL-encoded).
    """
    secret_values = sorted(secret_forms(secrets), key=len, reverse=True)
    source = os.environ if base is None else base
    return {
        name: value
        for name, value in source.items()
        if not name.startswith(ATLAS_VARIABLE_PREFIX)
        and name not in SECRET_VARIABLES
        and name not in SERVER_VARIABLES
        and not any(secret in value for secret in secret_values)
    }


class TerraformError(Exception):
    """Terraform itself is unusable (missing binary, unreadable version); not a failed plan."""


@dataclass(frozen=True)
class RunResult:
    """How one terraform command ended and everything it printed (stdout and stderr, interleaved)."""

    exit_code: int
    output: str
    duration_seconds: float
    timed_out: bool = False
    cancelled: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.cancelled


class TerraformRunner:
    """Runs terraform commands for every job of the server, at most `concurrency` at a time."""

    def __init__(
        self,
        binary: str = "terraform",
        *,
        plugin_cache_dir: Path,
        secrets: Sequence[str] = (),
        default_timeout: float = DEFAULT_TIMEOUT_SECONDS,
        concurrency: threading.Semaphore | None = None,
        grace_period: float = DEFAULT_GRACE_SECONDS,
        sandbox: Sandbox | None = None,
        distribution: Distribution = Distribution.TERRAFORM,
    ) -> None:
        self.binary = binary
        self.distribution = distribution
        self.plugin_cache_dir = plugin_cache_dir
        self.secrets = tuple(s for s in secrets if s)
        self.default_timeout = default_timeout
        self.concurrency = concurrency
        self.grace_period = grace_period
        self.sandbox: Sandbox = sandbox if sandbox is not None else Unconfined("no sandbox given to this runner")
        self._redact = Redactor(self.secrets)
        self._version: str | None = None

    def build_env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """One child's environment: the scrubbed server environment, automation flags, then `extra`."""
        self.plugin_cache_dir.mkdir(parents=True, exist_ok=True)
        env = scrubbed_environ(self.secrets)
        env.update(
            TF_IN_AUTOMATION="1",
            TF_INPUT="0",
            TF_PLUGIN_CACHE_DIR=str(self.plugin_cache_dir),
            CHECKPOINT_DISABLE="1",
        )
        env.update(extra or {})
        return env

    def version(self) -> str:
        """The terraform version, e.g. `1.11.4`."""
        if self._version is None:
            try:
                self._version = read_version(self.binary, self.build_env())
            except (OSError, subprocess.TimeoutExpired) as error:
                raise TerraformError(f"cannot run {self.binary} version: {error}") from error
            except UnreadableOutput as error:
                raise TerraformError(f"cannot read the version of {self.binary}: {self._redact(str(error)).strip()}"
                                     ) from error
        return self._version

    def run(
        self,
        args: Sequence[str],
        cwd: Path,
        log: JobLog,
        *,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        cancel: CancelToken | None = None,
        echo: bool = True,
        scope: RunScope | None = None,
    ) -> RunResult:
        """Run `terraform <args>` in `cwd`, streaming its output to `log` line by line.

        With `echo=False` the output is only returned, not logged (for `show -json`, which is one
        enormous line of data rather than something a person reads). `scope` is what the run may
        reach in its sandbox (default: `cwd`, writable); the plugin cache is writable for `init` only.
        """
        log.write(f"$ terraform {shlex.join(args)}")
        scope = (scope or RunScope(writable=(cwd,))).plus(readable=self._binary_paths())
        if args and args[0] == "init":
            # terraform's provider plugin cache is not safe for concurrent writers (parallel inits
            # fail with "text file busy" and half-written providers), so inits sharing the cache
            # take turns, across threads, processes and sandboxes; plans and applies only read it.
            with self._plugin_cache_lock():
                result = self._run_in_slot([self.binary, *args], cwd, log, env, timeout, cancel, echo,
                                           scope.plus(writable=(self.plugin_cache_dir,)))
        else:
            result = self._run_in_slot([self.binary, *args], cwd, log, env, timeout, cancel, echo,
                                       scope.plus(readable=(self.plugin_cache_dir,)))
        metrics.record_terraform(args[0] if args else "", result.duration_seconds)
        return result

    @contextmanager
    def _plugin_cache_lock(self) -> Iterator[None]:
        with file_lock(self.plugin_cache_dir / ".init.lock"):
            yield

    def run_program(
        self,
        argv: Sequence[str],
        cwd: Path,
        log: JobLog,
        *,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        cancel: CancelToken | None = None,
        echo: bool = True,
        scope: RunScope | None = None,
    ) -> RunResult:
        """Run any program (a `run` step, a hook) exactly as terraform runs: same environment, sandbox, slot and stop.

        The terraform binary is reachable, and the plugin cache writable: such commands often run
        `terraform init` themselves.
        """
        log.write(f"$ {shlex.join(argv)}")
        scope = (scope or RunScope(writable=(cwd,))).plus(readable=self._binary_paths(),
                                                          writable=(self.plugin_cache_dir,))
        return self._run_in_slot(list(argv), cwd, log, env, timeout, cancel, echo, scope)

    def _binary_paths(self) -> tuple[Path, ...]:
        """The terraform binary, by the path atlas runs it as; the sandbox adds what a link points at."""
        located = shutil.which(self.binary)
        return (Path(located),) if located else ()

    def _run_in_slot(
        self,
        argv: list[str],
        cwd: Path,
        log: JobLog,
        env: Mapping[str, str] | None,
        timeout: float | None,
        cancel: CancelToken | None,
        echo: bool,
        scope: RunScope,
    ) -> RunResult:
        if not self._acquire_slot(log, cancel):
            log.write("atlas: cancelled while waiting for a free terraform slot")
            return RunResult(exit_code=-1, output="", duration_seconds=0.0, cancelled=True)
        try:
            return self._run(argv, cwd, log, env, timeout, cancel, echo, scope)
        finally:
            if self.concurrency is not None:
                self.concurrency.release()

    def _acquire_slot(self, log: JobLog, cancel: CancelToken | None) -> bool:
        if self.concurrency is None or self.concurrency.acquire(blocking=False):
            return True
        log.write("atlas: waiting for a free terraform slot (--parallel-pool-size)")
        while not self.concurrency.acquire(timeout=_POLL_SECONDS):
            if cancel is not None and cancel.cancelled:
                return False
        return True

    def _run(
        self,
        argv: list[str],
        cwd: Path,
        log: JobLog,
        env: Mapping[str, str] | None,
        timeout: float | None,
        cancel: CancelToken | None,
        echo: bool,
        scope: RunScope,
    ) -> RunResult:
        lines: list[str] = []

        def emit(raw: bytes) -> None:
            line = self._redact(raw.decode("utf-8", errors="replace").rstrip("\r"))
            lines.append(line)
            if echo:
                log.write(line)

        started = time.monotonic()
        if self.plugin_cache_dir in (*scope.writable, *scope.readable):
            self.plugin_cache_dir.mkdir(parents=True, exist_ok=True)
        try:
            process = subprocess.Popen(
                self.sandbox.command(argv, cwd, scope),
                cwd=cwd,
                env=self.sandbox.environment(self.build_env(env)),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                # Its own process group, so a stop reaches terraform and the providers it started.
                start_new_session=True,
                # Dead with the process that supervises it, even when that one is SIGKILLed.
                preexec_fn=dies_with_this_process(),
            )
        except OSError as error:
            message = self._redact(f"cannot run {argv[0]}: {error}")
            log.write(message)
            return RunResult(exit_code=127, output=message, duration_seconds=time.monotonic() - started)

        assert process.stdout is not None
        stop = _Stop(process, self.sandbox, log, cancel, started, self.default_timeout if timeout is None else timeout)
        output = _LineReader(process.stdout.fileno(), emit)
        exited_at: float | None = None
        while True:
            if output.eof:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=_POLL_SECONDS)
            else:
                output.read(_POLL_SECONDS)
            now = time.monotonic()
            if process.poll() is None:
                stop.check(now, self.grace_period)
                continue
            if output.eof:
                break
            # Terraform exited but something it started still holds the output pipe open.
            if exited_at is None:
                exited_at = now
            elif now - exited_at >= self.grace_period + _LEFTOVER_KILL_WAIT_SECONDS:
                break
            elif now - exited_at >= self.grace_period:
                signal_run(process.pid, self.sandbox, signal.SIGKILL)
        output.close()
        process.stdout.close()
        return RunResult(
            exit_code=process.wait(),
            output="".join(f"{line}\n" for line in lines),
            duration_seconds=time.monotonic() - started,
            timed_out=stop.timed_out,
            cancelled=stop.cancelled,
        )


class _LineReader:
    """Reads a pipe without blocking and hands over each complete line as soon as it arrives."""

    def __init__(self, fd: int, on_line: Callable[[bytes], None]) -> None:
        self.fd = fd
        self.on_line = on_line
        self.eof = False
        self._pending = b""
        os.set_blocking(fd, False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(fd, selectors.EVENT_READ)

    def read(self, timeout: float) -> None:
        """Read what has arrived within `timeout`."""
        if not self._selector.select(timeout):
            return
        try:
            chunk = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        if not chunk:
            self.eof = True
            return
        *complete, self._pending = (self._pending + chunk).split(b"\n")
        for line in complete:
            self.on_line(line)

    def close(self) -> None:
        """Hand over a last line that had no newline."""
        self._selector.close()
        if self._pending:
            self.on_line(self._pending)
            self._pending = b""


class _Stop:
    """Stops a process on cancel or timeout: SIGINT to its group first, SIGKILL after the grace period."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        sandbox: Sandbox,
        log: JobLog,
        cancel: CancelToken | None,
        started: float,
        timeout: float,
    ) -> None:
        self.process = process
        self.sandbox = sandbox
        self.log = log
        self.cancel = cancel
        self.timeout = timeout
        self.deadline = started + timeout
        self.cancelled = False
        self.timed_out = False
        self._interrupted_at: float | None = None
        self._killed = False

    def check(self, now: float, grace_period: float) -> None:
        """Called while the process runs: interrupt it, or kill it, when its time has come."""
        if self._interrupted_at is None:
            if self.cancel is not None and self.cancel.cancelled:
                self.cancelled = True
                reason = "cancelled"
            elif now >= self.deadline:
                self.timed_out = True
                reason = f"timed out after {self.timeout:g}s"
            else:
                return
            self.log.write(f"atlas: {reason}; interrupting terraform so it releases its lock")
            signal_run(self.process.pid, self.sandbox, signal.SIGINT)
            self._interrupted_at = now
        elif not self._killed and now - self._interrupted_at >= grace_period:
            self.log.write(f"atlas: terraform did not stop within {grace_period:g}s; killing it")
            signal_run(self.process.pid, self.sandbox, signal.SIGKILL)
            self._killed = True
