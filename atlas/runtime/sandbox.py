"""Confining the processes that run a pull request's code: terraform, `run` steps, workflow hooks.

`terraform plan` evaluates the pull request's own code, and terraform's functions (`file`,
`fileset`, `filebase64`) read any file the process can read; a `run` step or a hook is any command
the repository names. Scrubbing atlas's secrets from their environment is not enough: such code
could read atlas's `/proc/<pid>/environ`, its data dir (other pull requests' working copies and
plans, the database, job logs) and the files atlas was configured with. So on Linux each of these
processes runs in a bubblewrap sandbox:

- its own PID namespace and `/proc`: atlas and other jobs are invisible;
- a mount namespace built from nothing: the system directories read-only, a private `/tmp` and
  home directory, the run's working copy (and the stage's own plan files) writable, the terraform
  binary and the shared plugin cache reachable, the operator's `--sandbox-paths`, and nothing else:
  not the data dir, not atlas's config or key files, not other working copies;
- no capabilities, `no_new_privs`, its own session (no terminal to inject into), and it dies with
  the atlas process that started it (`--die-with-parent`);
- the host's network, which providers and backends need.

`Bubblewrap` builds that command line; `Unconfined` runs commands as they are, for `--sandbox off`
or a host without bubblewrap. `choose_sandbox` decides between them at start-up.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import glob
import os
import shutil
import signal
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from atlas.config.sandbox_settings import HostPath, SandboxMode

BWRAP = "bwrap"
"""The bubblewrap binary, looked up on PATH."""

INSTALL_HINT = "install bubblewrap (Debian and Ubuntu: apt-get install bubblewrap; Fedora: dnf install bubblewrap)"

NAMESPACE_HINT = (
    "bubblewrap needs unprivileged user namespaces: on the host, user.max_user_namespaces above 0 (and on "
    "Debian kernel.unprivileged_userns_clone=1, on Ubuntu 23.10+ kernel.apparmor_restrict_unprivileged_userns=0 "
    "or an AppArmor profile that allows them); in a container, a seccomp profile that allows clone/unshare of "
    "namespaces, no AppArmor mount denial and an unmasked /proc (see the Security section of deploy/README.md)"
)

SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
"""Host directories every sandbox sees, read-only: programs, libraries, and /etc (certificates, DNS, users)."""

HOST_CREDENTIALS = ("/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-", "/etc/ssl/private",
                    "/etc/ssh/ssh_host_*_key")
"""What under /etc holds the host's own credentials (globs); hidden even though /etc is visible."""

SANDBOX_TMP = "/tmp"
"""Every sandbox's private, empty temporary directory (TMPDIR points at it)."""

_PROBE_TIMEOUT_SECONDS = 20.0
_SOURCES = "--sandbox-paths (and --var-file-allowlist)"


class SandboxError(Exception):
    """The sandbox cannot be had as configured; the message says why and what to do."""


@dataclass(frozen=True)
class RunScope:
    """What one confined run may reach besides the system: paths it may write, and paths it may only read."""

    writable: tuple[Path, ...] = ()
    readable: tuple[Path, ...] = ()

    def plus(self, *, writable: Iterable[Path] = (), readable: Iterable[Path] = ()) -> RunScope:
        return RunScope((*self.writable, *writable), (*self.readable, *readable))


class Sandbox(Protocol):
    """How atlas starts a process that runs pull-request code."""

    @property
    def confined(self) -> bool:
        """Whether processes are confined at all."""
        ...

    @property
    def isolation(self) -> str:
        """One line saying which isolation is in force, for the start-up log and /status."""
        ...

    @property
    def warning(self) -> str | None:
        """What operators must be warned about (in the log, /status and the pages), or None."""
        ...

    def command(self, argv: Sequence[str], cwd: Path, scope: RunScope) -> list[str]:
        """The command line that runs `argv` in `cwd`, confined to `scope`."""
        ...

    def environment(self, env: Mapping[str, str]) -> dict[str, str]:
        """The environment to start the command with, adjusted to what the sandbox contains."""
        ...

    def interrupt_group(self, pid: int) -> int | None:
        """The process group to send SIGINT to for the command started as `pid` (None: not started yet)."""
        ...


@dataclass(frozen=True)
class Unconfined:
    """Commands run as they are, with atlas's own view of the file system and processes."""

    reason: str = "--sandbox off"
    warning: str | None = None

    @property
    def confined(self) -> bool:
        return False

    @property
    def isolation(self) -> str:
        return f"none ({self.reason}): pull-request code can read what atlas's user can read"

    def command(self, argv: Sequence[str], cwd: Path, scope: RunScope) -> list[str]:
        return list(argv)

    def environment(self, env: Mapping[str, str]) -> dict[str, str]:
        return dict(env)

    def interrupt_group(self, pid: int) -> int | None:
        return pid


@dataclass(frozen=True)
class Bubblewrap:
    """Runs each command in a fresh bubblewrap sandbox (see the module docstring for what it contains).

    `host_paths` are the operator's `--sandbox-paths`; `hidden` are paths that must not be visible even
    where a system directory would show them (the data dir, atlas's config and key files).
    """

    binary: str
    version: str = "bubblewrap"
    host_paths: tuple[HostPath, ...] = ()
    hidden: tuple[Path, ...] = ()
    home: Path | None = field(default_factory=lambda: _home_dir(os.environ.get("HOME")))

    @property
    def confined(self) -> bool:
        return True

    @property
    def warning(self) -> str | None:
        return None

    @property
    def isolation(self) -> str:
        extra = f"; also reachable: {', '.join(map(str, self.host_paths))}" if self.host_paths else ""
        return (f"{self.version}: own PID, mount, IPC and UTS namespaces; writable: the job's working copy "
                f"only; hidden: the data dir, atlas's config and key files{extra}")

    def command(self, argv: Sequence[str], cwd: Path, scope: RunScope) -> list[str]:
        # The root, built of empty directories leading to the mounts, is made read-only last.
        return [self.binary, *self._layout, *self._bind_arguments(scope), "--remount-ro", "/", "--chdir", str(cwd),
                "--", *argv]

    def environment(self, env: Mapping[str, str]) -> dict[str, str]:
        # The server's TMPDIR may name a directory the sandbox does not contain.
        return {**env, "TMPDIR": SANDBOX_TMP}

    def interrupt_group(self, pid: int) -> int | None:
        # bwrap itself dies of SIGINT, and with --die-with-parent takes the sandbox with it before
        # terraform could release its state lock; so SIGINT goes to the command's own session
        # (--new-session), whose leader is bwrap's only child (--as-pid-1).
        children = _children(pid)
        return children[0] if children else None

    @functools.cached_property
    def _layout(self) -> tuple[str, ...]:
        """What every sandbox has: its namespaces, the system read-only, private /tmp and home, masks."""
        arguments: list[str] = ["--die-with-parent", "--unshare-all", "--share-net", "--new-session",
                                "--as-pid-1", "--cap-drop", "ALL"]
        for directory in SYSTEM_DIRS:
            path = Path(directory)
            if path.is_symlink():
                arguments += ["--symlink", os.readlink(path), directory]
            elif path.is_dir():
                arguments += ["--ro-bind", directory, directory]
        resolv = Path("/etc/resolv.conf")
        if resolv.is_symlink():
            # Often a link into /run (systemd-resolved), which the sandbox does not otherwise contain.
            target = resolv.resolve()
            if target.is_file() and not _under_any(target, SYSTEM_DIRS):
                arguments += ["--ro-bind", str(target), str(target)]
        arguments += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", SANDBOX_TMP]
        if self.home is not None:
            arguments += ["--tmpfs", str(self.home)]
        credentials = [Path(found) for pattern in HOST_CREDENTIALS for found in sorted(glob.glob(pattern))]
        for hidden in (*self.hidden, *credentials):
            arguments += _mask(hidden, self.home)
        return tuple(arguments)

    def _bind_arguments(self, scope: RunScope) -> list[str]:
        modes: dict[Path, bool] = {}  # path -> writable
        for host in self.host_paths:
            modes[host.path] = modes.get(host.path, False) or not host.read_only
        for path in scope.readable:
            absolute = Path(os.path.abspath(path))
            if absolute.exists():
                modes.setdefault(absolute, False)
                real = absolute.resolve()
                if real != absolute:  # a link: what it points at must be there too
                    modes.setdefault(real, False)
        for path in scope.writable:
            modes[Path(os.path.abspath(path))] = True
        arguments: list[str] = []
        # Parents before children, so that a directory bound inside another stays visible.
        for path, writable in sorted(modes.items(), key=lambda item: (len(item[0].parts), str(item[0]))):
            arguments += ["--bind" if writable else "--ro-bind", str(path), str(path)]
        return arguments


def choose_sandbox(
    mode: SandboxMode | str,
    *,
    host_paths: Sequence[HostPath] = (),
    protected: Sequence[Path] = (),
    binary: str = BWRAP,
) -> Sandbox:
    """The sandbox this process runs pull-request code in, as `--sandbox` asks; SandboxError when it cannot.

    `protected` are atlas's own paths (the data dir, config and key files): a host path that holds one
    of them, or lies inside one, is refused, and they are hidden inside every sandbox.
    """
    mode = SandboxMode(mode)
    check_host_paths(host_paths, protected)
    if mode is SandboxMode.OFF:
        return Unconfined("--sandbox off")
    problem = probe_bubblewrap(binary)
    if problem is None:
        located = shutil.which(binary) or binary
        return Bubblewrap(located, bubblewrap_version(located), tuple(host_paths), _existing(protected))
    if mode is SandboxMode.REQUIRED:
        raise SandboxError(f"--sandbox required, but {problem}")
    return Unconfined(
        f"--sandbox auto, and {problem}",
        warning=(f"pull-request code runs WITHOUT a sandbox because {problem}: any pull request can read "
                 "this server's data dir (other pull requests' code and plans, the database, job logs) and "
                 "the files atlas can read. Fix it, or set --sandbox off to say that this is intended."),
    )


def check_host_paths(host_paths: Sequence[HostPath], protected: Sequence[Path]) -> None:
    """SandboxError for a host path that does not exist, or that holds or lies in one of atlas's own paths."""
    guarded = [(path, path.resolve()) for path in protected]
    for host in host_paths:
        if not host.path.exists():
            raise SandboxError(f"{_SOURCES}: {host.path} does not exist")
        real = host.path.resolve()
        for path, real_protected in guarded:
            if real_protected == real or real_protected.is_relative_to(real):
                raise SandboxError(
                    f"{_SOURCES}: {host} holds {path}, which pull-request code must not reach "
                    "(atlas's data dir and its config and key files stay outside every sandbox); "
                    "name a directory that does not contain it")
            if real.is_relative_to(real_protected):
                raise SandboxError(
                    f"{_SOURCES}: {host} lies inside {path}, which pull-request code must not reach; "
                    "name a directory outside it")


@functools.cache
def probe_bubblewrap(binary: str = BWRAP) -> str | None:
    """Why bubblewrap cannot confine processes on this host, or None when a trial sandbox ran."""
    located = shutil.which(binary)
    if located is None:
        return f"bubblewrap ({binary}) is not installed: {INSTALL_HINT}"
    trial = Bubblewrap(located, home=None)
    try:
        completed = subprocess.run(
            trial.command(["true"], Path("/"), RunScope()), stdin=subprocess.DEVNULL, capture_output=True,
            text=True, timeout=_PROBE_TIMEOUT_SECONDS, check=False, env=trial.environment(os.environ),
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"bubblewrap ({located}) could not be run: {error}"
    if completed.returncode != 0:
        said = " ".join((completed.stderr or completed.stdout).split()) or f"exit status {completed.returncode}"
        return f"bubblewrap ({located}) cannot create a sandbox here ({said}); {NAMESPACE_HINT}"
    return None


@functools.cache
def bubblewrap_version(binary: str) -> str:
    """`bubblewrap 0.8.0`, or `bubblewrap` when it does not say."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        completed = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10, check=False)
        if completed.returncode == 0 and completed.stdout.strip():
            return completed.stdout.strip()
    return "bubblewrap"


def unreachable_terraform_config(host_paths: Sequence[HostPath], env: Mapping[str, str] | None = None) -> list[Path]:
    """Terraform's own CLI configuration on this host (`TF_CLI_CONFIG_FILE`, `~/.terraformrc`,
    `~/.terraform.d`) that a sandbox will not contain, so that start-up can say how to add it."""
    env = os.environ if env is None else env
    candidates = [Path(env["TF_CLI_CONFIG_FILE"])] if env.get("TF_CLI_CONFIG_FILE") else []
    if env.get("HOME"):
        candidates += [Path(env["HOME"]) / ".terraformrc", Path(env["HOME"]) / ".terraform.d"]
    return [path for path in candidates
            if path.exists() and not _under_any(path, SYSTEM_DIRS)
            and not any(path == host.path or path.is_relative_to(host.path) for host in host_paths)]


def mark_undumpable() -> bool:
    """Make this process non-dumpable, so that processes of the same user cannot read its memory or environment.

    Linux then gives `/proc/<pid>/environ`, `mem`, `maps` … to root and refuses ptrace. The flag is
    inherited by forked children (gunicorn and rq workers) and reset by exec (terraform). Returns
    whether it took effect (False off Linux).
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name, use_errno=True)
    except OSError:
        return False
    pr_set_dumpable = 4
    return bool(libc.prctl(pr_set_dumpable, 0, 0, 0, 0) == 0)


def signal_run(pid: int, sandbox: Sandbox, signum: signal.Signals) -> None:
    """Send `signum` to the command started as `pid`: SIGINT to its own process group, others to everything."""
    target = sandbox.interrupt_group(pid)
    groups = {target} if target is not None else set()
    if signum is not signal.SIGINT:
        groups.add(pid)
    for group in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signum)


def _mask(path: Path, home: Path | None) -> list[str]:
    """Arguments that hide `path` where a system directory would show it."""
    absolute = Path(os.path.abspath(path))
    if not absolute.exists():
        return []
    shown_at = [candidate for candidate in {absolute, absolute.resolve()} if _under_any(candidate, SYSTEM_DIRS)]
    if home is not None:
        shown_at = [candidate for candidate in shown_at if not candidate.is_relative_to(home)]
    arguments: list[str] = []
    for candidate in sorted(shown_at):
        if absolute.is_dir():
            arguments += ["--tmpfs", str(candidate)]
        else:
            arguments += ["--ro-bind", "/dev/null", str(candidate)]
    return arguments


def _under_any(path: Path, directories: Iterable[str]) -> bool:
    return any(path == Path(directory) or path.is_relative_to(directory) for directory in directories)


def _existing(paths: Iterable[Path]) -> tuple[Path, ...]:
    return tuple(Path(os.path.abspath(path)) for path in paths if Path(path).exists())


def _home_dir(home: str | None) -> Path | None:
    """The home directory to give a private, empty copy of, unless it is / or holds the system."""
    if not home or not os.path.isabs(home):
        return None
    path = Path(os.path.normpath(home))
    if path == Path("/") or any(Path(directory).is_relative_to(path) for directory in SYSTEM_DIRS):
        return None
    if _under_any(path, SYSTEM_DIRS):
        return None
    return path


def _children(pid: int) -> list[int]:
    """The direct children of `pid` (Linux), oldest first."""
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        pass
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if parent == pid:
            found.append(int(entry.name))
    return sorted(found)
