"""The sandbox that pull-request code runs in: what a confined process can see, write and reach.

Each test runs real commands in real bubblewrap through the terraform runner, as atlas runs `run`
steps and terraform, and checks from the host what the command could and could not do.
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from atlas.runtime.cancellation import CancelToken
from atlas.runtime.joblog import JobLog
from atlas.runtime.sandbox import (
    Bubblewrap,
    HostPath,
    RunScope,
    Sandbox,
    SandboxError,
    SandboxMode,
    Unconfined,
    check_host_paths,
    choose_sandbox,
    unreachable_terraform_config,
)
from atlas.runtime.terraform import RunResult, TerraformRunner
from tests.conftest import require_sandbox

SECRET = "sibling-secret-0123456789abcdef"


class Host:
    """A data dir with a working copy in it, as on a server, and a runner that confines commands to it."""

    def __init__(self, tmp_path: Path, sandbox: Sandbox | None = None) -> None:
        self.root = tmp_path
        self.data_dir = tmp_path / "data"
        self.workdir = self.data_dir / "repos" / "acme" / "infra" / "7" / "default"
        self.other_workdir = self.data_dir / "repos" / "acme" / "infra" / "8" / "default"
        for directory in (self.workdir, self.other_workdir):
            directory.mkdir(parents=True)
            (directory / "main.tf").write_text(f"# the code of {directory.parent.name}\n")
        (self.data_dir / "atlas.db").write_text("the database\n")
        self.config = tmp_path / "server.yaml"
        self.config.write_text("api-secret: in-the-config-file\n")
        self.sandbox = sandbox or require_sandbox()
        self.runner = TerraformRunner("terraform", plugin_cache_dir=self.data_dir / "plugin-cache",
                                      sandbox=self.sandbox, grace_period=1)
        self.log = JobLog(tmp_path / "job.log")

    def sh(self, script: str, *, scope: RunScope | None = None, cancel: CancelToken | None = None,
           timeout: float | None = None) -> RunResult:
        """`sh -c script` in the working copy, as a `run` step runs."""
        return self.runner.run_program(["/bin/sh", "-c", script], self.workdir, self.log,
                                       scope=scope or RunScope(writable=(self.workdir,)), cancel=cancel,
                                       timeout=timeout)


def bubblewrap(**fields: object) -> Sandbox:
    """The test sandbox with some of its fields replaced (host paths, hidden paths, home)."""
    sandbox = require_sandbox()
    assert isinstance(sandbox, Bubblewrap)
    return Bubblewrap(sandbox.binary, sandbox.version, **fields)  # type: ignore[arg-type]


def processes_with(marker: str, *, program: str | None = None) -> list[int]:
    """Host pids whose command line contains `marker` (and that run `program`, when given)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in command and (program is None or command.split(b"\0")[0] == program.encode()):
                found.append(int(entry.name))
    return found


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.fixture
def sibling() -> Iterator[subprocess.Popen[bytes]]:
    """A process beside atlas with a secret in its environment, as atlas's own process has."""
    process = subprocess.Popen(["sleep", "120"], env={**os.environ, "SIBLING_SECRET": SECRET})
    yield process
    process.kill()
    process.wait()


# --- processes ----------------------------------------------------------------------------------


def test_a_confined_command_sees_only_its_own_processes(tmp_path: Path, sibling: subprocess.Popen[bytes]) -> None:
    host = Host(tmp_path)

    result = host.sh("ls /proc | grep -E '^[0-9]+$' | tr '\\n' ' '; echo; cat /proc/[0-9]*/environ | tr '\\0' '\\n'")

    assert result.ok, result.output
    pids = result.output.splitlines()[0].split()
    assert pids and all(int(pid) < 10 for pid in pids), f"only the sandbox's own few processes: {pids}"
    assert str(os.getpid()) not in pids and str(sibling.pid) not in pids
    assert SECRET not in result.output


def test_without_the_sandbox_the_same_command_reads_a_siblings_environment(
    tmp_path: Path, sibling: subprocess.Popen[bytes]
) -> None:
    """What the sandbox prevents: the probe above is not blind."""
    host = Host(tmp_path, Unconfined())

    result = host.sh(f"tr '\\0' '\\n' < /proc/{sibling.pid}/environ")

    assert f"SIBLING_SECRET={SECRET}" in result.output


# --- the file system ----------------------------------------------------------------------------


def test_only_the_working_copy_is_writable_and_tmp_is_private(tmp_path: Path) -> None:
    host = Host(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    marker = f"atlas-sandbox-test-{os.getpid()}"
    targets = (outside, host.data_dir, tmp_path, Path("/etc"), Path("/usr"), Path("/"), Path("/tmp"))

    result = host.sh(textwrap.dedent(f"""\
        echo mine > written-here && echo wrote-working-copy
        for target in {' '.join(map(str, targets))}; do
            (echo x > "$target/{marker}") 2>/dev/null && echo "wrote $target" || echo "refused $target"
        done
        """))

    assert result.ok, result.output
    assert "wrote-working-copy" in result.output and (host.workdir / "written-here").read_text() == "mine\n"
    for target in targets:
        assert not (target / marker).exists(), f"{target} on the host is untouched"
    # /tmp (where the test's directories are) is the sandbox's own: writes there land in memory, not on the host.
    for target in (Path("/etc"), Path("/usr"), Path("/")):
        assert f"refused {target}\n" in result.output


def test_the_data_dir_other_working_copies_and_atlas_files_are_not_there(tmp_path: Path) -> None:
    host = Host(tmp_path, bubblewrap(hidden=(tmp_path / "data", tmp_path / "server.yaml")))

    result = host.sh(textwrap.dedent(f"""\
        cat main.tf
        ls -A {host.data_dir} | tr '\\n' ' '; echo
        cat {host.data_dir}/atlas.db ../../8/default/main.tf {host.other_workdir}/main.tf {host.config} 2>&1
        cat ../../../../../atlas.db 2>&1
        """))

    assert "# the code of 7" in result.output, "its own working copy is there"
    assert "# the code of 8" not in result.output
    assert "the database" not in result.output and "in-the-config-file" not in result.output
    assert "No such file or directory" in result.output
    data_dir_listing = result.output.splitlines()[1].split()
    assert data_dir_listing == ["plugin-cache", "repos"], "only the path to its working copy, and the plugin cache"


def test_host_paths_are_reachable_read_write_or_read_only(tmp_path: Path) -> None:
    state, credentials = tmp_path / "state", tmp_path / "credentials"
    state.mkdir()
    credentials.write_text("[default]\nregion = eu-west-1\n")
    host = Host(tmp_path, bubblewrap(host_paths=(HostPath(state), HostPath(credentials, read_only=True))))

    result = host.sh(f"echo s > {state}/app.tfstate && cat {credentials} && (echo x >> {credentials}) 2>&1")

    assert (state / "app.tfstate").read_text() == "s\n"
    assert "region = eu-west-1" in result.output
    assert "Read-only file system" in result.output and credentials.read_text().count("\n") == 2


def test_the_home_directory_is_empty_and_private_and_host_credentials_are_hidden(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "credentials").write_text("aws_secret_access_key = AKIA-home\n")
    host = Host(tmp_path, bubblewrap(home=home))

    result = host.sh(f"ls -A {home} | wc -l; echo x > {home}/scratch && echo home-writable; "
                     "head -c 64 /etc/shadow 2>/dev/null | wc -c")

    lines = result.output.split()
    assert lines[0] == "0", "the real home's files are not there"
    assert "home-writable" in lines and not (home / "scratch").exists()
    assert lines[-1] == "0", "nothing of /etc/shadow can be read"


def test_the_terraform_binary_and_plugin_cache_are_reachable_and_only_init_writes_the_cache(tmp_path: Path) -> None:
    probe = tmp_path / "bin" / "terraform"
    probe.parent.mkdir()
    probe.write_text('#!/bin/sh\n(echo "$1" > "$TF_PLUGIN_CACHE_DIR/written-by-$1") 2>/dev/null '
                     '&& echo "$1 wrote the cache" || echo "$1 could not write the cache"\n')
    probe.chmod(probe.stat().st_mode | stat.S_IEXEC)
    host = Host(tmp_path)
    runner = TerraformRunner(str(probe), plugin_cache_dir=host.data_dir / "plugin-cache", sandbox=host.sandbox)

    init = runner.run(["init"], host.workdir, host.log, scope=RunScope(writable=(host.workdir,)))
    plan = runner.run(["plan"], host.workdir, host.log, scope=RunScope(writable=(host.workdir,)))

    assert init.ok and "init wrote the cache" in init.output
    assert plan.ok and "plan could not write the cache" in plan.output
    assert (host.data_dir / "plugin-cache" / "written-by-init").exists()


def test_the_network_is_the_hosts(tmp_path: Path) -> None:
    """Providers and backends need it."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def answer() -> None:
        connection, _ = server.accept()
        with connection:
            connection.sendall(b"hello from the host\n")

    threading.Thread(target=answer, daemon=True).start()
    host = Host(tmp_path)

    result = host.sh(f"exec bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}; head -1 <&3'")

    server.close()
    assert "hello from the host" in result.output


# --- stopping -----------------------------------------------------------------------------------


def test_cancel_interrupts_the_confined_process_so_terraform_can_release_its_lock(tmp_path: Path) -> None:
    host = Host(tmp_path)
    cancel = CancelToken()
    threading.Thread(target=lambda: wait_until(lambda: "ready" in host.log.read()) and cancel.cancel(),
                     daemon=True).start()

    started = time.monotonic()
    result = host.sh('trap "echo releasing the state lock; exit 1" INT; echo ready; '
                     "while true; do sleep 0.1; done", cancel=cancel)

    assert result.cancelled
    assert "releasing the state lock" in result.output, "SIGINT reached the command inside the sandbox"
    assert time.monotonic() - started < 10


def test_a_confined_process_ignoring_sigint_dies_with_everything_it_started(tmp_path: Path) -> None:
    host = Host(tmp_path)
    marker = f"marker-{os.getpid()}-{time.monotonic_ns()}"
    cancel = CancelToken()
    threading.Thread(target=lambda: wait_until(lambda: "ready" in host.log.read()) and cancel.cancel(),
                     daemon=True).start()

    result = host.sh(f"trap '' INT; sh -c 'sleep 300; : {marker}' & echo ready; sleep 300", cancel=cancel)

    assert result.cancelled
    assert wait_until(lambda: not processes_with(marker)), "nothing of the sandbox is left running"


def test_a_sandbox_dies_with_the_atlas_process_that_started_it(tmp_path: Path) -> None:
    marker = f"orphan-{os.getpid()}-{time.monotonic_ns()}"
    program = textwrap.dedent(f"""
        from pathlib import Path
        from atlas.runtime.joblog import JobLog
        from atlas.runtime.sandbox import RunScope, choose_sandbox
        from atlas.runtime.terraform import TerraformRunner
        runner = TerraformRunner("terraform", plugin_cache_dir=Path({str(tmp_path / 'cache')!r}),
                                 sandbox=choose_sandbox("required"))
        here = Path({str(tmp_path)!r})
        runner.run_program(["/bin/sh", "-c", "sleep 300; : {marker}"], here, JobLog(here / "job.log"),
                           scope=RunScope(writable=(here,)))
        """)
    atlas = subprocess.Popen([sys.executable, "-c", program], start_new_session=True)
    try:
        assert wait_until(lambda: bool(processes_with(marker, program="/bin/sh"))), "the confined command started"
    finally:
        os.kill(atlas.pid, signal.SIGKILL)  # only atlas, as when it is OOM-killed
        atlas.wait()
    assert wait_until(lambda: not processes_with(f": {marker}")), "--die-with-parent took the sandbox with it"


# --- choosing the sandbox at start-up --------------------------------------------------------------


def test_required_refuses_to_start_without_bubblewrap_and_says_what_to_install() -> None:
    with pytest.raises(SandboxError) as refused:
        choose_sandbox(SandboxMode.REQUIRED, binary="/nonexistent/bwrap")

    assert "--sandbox required" in str(refused.value)
    assert "apt-get install bubblewrap" in str(refused.value)


def test_required_refuses_a_bubblewrap_that_cannot_create_namespaces_and_says_what_to_enable(tmp_path: Path) -> None:
    denied = tmp_path / "bwrap"
    denied.write_text("#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n")
    denied.chmod(0o755)

    with pytest.raises(SandboxError) as refused:
        choose_sandbox("required", binary=str(denied))

    message = str(refused.value)
    assert "setting up uid map: Permission denied" in message
    assert "unprivileged user namespaces" in message and "seccomp" in message


def test_auto_without_bubblewrap_runs_unconfined_with_a_loud_warning() -> None:
    sandbox = choose_sandbox("auto", binary="/nonexistent/bwrap")

    assert not sandbox.confined
    assert sandbox.warning is not None and "WITHOUT a sandbox" in sandbox.warning
    assert "apt-get install bubblewrap" in sandbox.warning
    assert sandbox.isolation.startswith("none (--sandbox auto")


def test_off_is_explicit_and_unconfined() -> None:
    sandbox = choose_sandbox("off")

    assert not sandbox.confined and sandbox.warning is None
    assert sandbox.isolation.startswith("none (--sandbox off)")


def test_auto_with_bubblewrap_confines() -> None:
    require_sandbox()

    sandbox = choose_sandbox("auto")

    assert sandbox.confined and sandbox.warning is None
    assert sandbox.isolation.startswith("bubblewrap ")


# --- --sandbox-paths ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "parsed"), [
    ("/srv/state", HostPath(Path("/srv/state"))),
    ("/srv/state/", HostPath(Path("/srv/state"))),
    ("/etc/creds:ro", HostPath(Path("/etc/creds"), read_only=True)),
    ("/srv/cache:rw", HostPath(Path("/srv/cache"))),
])
def test_a_sandbox_path_is_path_or_path_ro(text: str, parsed: HostPath) -> None:
    assert HostPath.parse(text) == parsed


@pytest.mark.parametrize("text", ["relative/state", ":ro", ""])
def test_a_sandbox_path_must_be_absolute(text: str) -> None:
    with pytest.raises(ValueError):
        HostPath.parse(text)


def own_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    data, config, token = tmp_path / "srv" / "atlas", tmp_path / "etc" / "server.yaml", tmp_path / "keys" / "token"
    data.mkdir(parents=True)
    for file in (config, token):
        file.parent.mkdir(parents=True)
        file.write_text("x")
    return data, config, token


@pytest.mark.parametrize("exposed", ["srv", "srv/atlas", "srv/atlas/repos", "etc", "etc/server.yaml", "keys", "."])
def test_a_sandbox_path_that_holds_or_lies_in_atlas_own_files_is_refused(tmp_path: Path, exposed: str) -> None:
    protected = own_files(tmp_path)
    (tmp_path / "srv" / "atlas" / "repos").mkdir(exist_ok=True)

    with pytest.raises(SandboxError, match="must not reach"):
        check_host_paths([HostPath(tmp_path / exposed)], protected)


def test_a_sandbox_path_through_a_link_into_the_data_dir_is_refused(tmp_path: Path) -> None:
    protected = own_files(tmp_path)
    (tmp_path / "innocent").symlink_to(tmp_path / "srv")

    with pytest.raises(SandboxError, match="must not reach"):
        check_host_paths([HostPath(tmp_path / "innocent")], protected)


def test_a_missing_sandbox_path_is_refused_and_others_pass(tmp_path: Path) -> None:
    protected = own_files(tmp_path)
    (tmp_path / "state").mkdir()
    (tmp_path / "etc" / "aws-credentials").write_text("x")

    check_host_paths([HostPath(tmp_path / "state"), HostPath(tmp_path / "etc" / "aws-credentials", read_only=True)],
                     protected)
    with pytest.raises(SandboxError, match="does not exist"):
        check_host_paths([HostPath(tmp_path / "nowhere")], protected)


# --- the atlas process itself -------------------------------------------------------------------------


NOBODY = 65534
"""Root reads every process's environment, so as root both processes of the test run as nobody."""


def environ_readable_by_same_user(pid: int) -> bool:
    """Whether another, unprivileged process of `pid`'s user can read `/proc/<pid>/environ`."""
    as_nobody = {"user": NOBODY, "group": NOBODY} if os.geteuid() == 0 else {}
    reader = subprocess.run(["cat", f"/proc/{pid}/environ"], capture_output=True, check=False, timeout=30,
                            **as_nobody)  # type: ignore[call-overload]
    return bool(reader.returncode == 0)


@pytest.mark.parametrize("undumpable", [False, True])
def test_an_undumpable_process_hides_its_environment_from_its_own_user(undumpable: bool) -> None:
    # As root, the child first becomes nobody, a process like any other (changing user clears the flag,
    # so it is set again as every process starts), then marks itself as atlas does.
    program = textwrap.dedent(f"""
        import ctypes, os, sys, time
        from atlas.runtime.sandbox import mark_undumpable
        if os.geteuid() == 0:
            os.setgid({NOBODY}); os.setuid({NOBODY})
            ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)
        if {undumpable}:
            assert mark_undumpable()
        print("ready", flush=True)
        time.sleep(60)
        """)
    child = subprocess.Popen([sys.executable, "-c", program], stdout=subprocess.PIPE,
                             env={**os.environ, "CHILD_SECRET": SECRET})
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == b"ready"
        assert environ_readable_by_same_user(child.pid) is not undumpable
    finally:
        child.kill()
        child.wait()


def test_the_atlas_command_marks_itself_undumpable_before_reading_settings() -> None:
    program = "import ctypes, sys; from atlas.cli.main import main; main(['version']); " \
              "print('dumpable', ctypes.CDLL(None).prctl(3, 0, 0, 0, 0))"
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True)

    assert "dumpable 0" in done.stdout


def bwrap_arguments(sandbox: Sandbox, scope: RunScope) -> Sequence[str]:
    return sandbox.command(["true"], Path("/"), scope)


def test_bind_mounts_go_parents_first_so_nested_paths_stay_visible(tmp_path: Path) -> None:
    outer, inner = tmp_path / "outer", tmp_path / "outer" / "inner"
    inner.mkdir(parents=True)
    sandbox = bubblewrap(host_paths=(HostPath(inner, read_only=True),))

    arguments = list(bwrap_arguments(sandbox, RunScope(writable=(outer,))))

    assert arguments.index(str(outer)) < arguments.index(str(inner))


def test_terraforms_own_configuration_outside_the_sandbox_is_named_at_start_up(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".terraform.d").mkdir(parents=True)
    (home / ".terraformrc").write_text('credentials "app.terraform.io" { token = "x" }\n')
    cli_config = tmp_path / "terraform.rc"
    cli_config.write_text("")
    env = {"HOME": str(home), "TF_CLI_CONFIG_FILE": str(cli_config)}

    assert unreachable_terraform_config([], env) == [cli_config, home / ".terraformrc", home / ".terraform.d"]
    assert unreachable_terraform_config([HostPath(home / ".terraformrc", read_only=True), HostPath(cli_config)],
                                        env) == [home / ".terraform.d"]
    assert unreachable_terraform_config([HostPath(tmp_path)], env) == []
