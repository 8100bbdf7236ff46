"""The terraform runner's mechanics (streaming, environment, stopping, concurrency) and the job log.

Most tests stand a small shell script in for terraform, since what they check is how atlas runs a
process, not what terraform prints; `version()` runs the real terraform.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from atlas.runtime.cancellation import CancelToken
from atlas.runtime.joblog import JobLog
from atlas.runtime.terraform import RunResult, TerraformError, TerraformRunner
from tests.conftest import require_binary

SECRET = "s3cr3t-webhook-value"


def fake_terraform(tmp_path: Path, body: str) -> str:
    """A shell script standing in for terraform; `body` is its text after the shebang."""
    script = tmp_path / "fake-terraform"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def make_runner(
    tmp_path: Path,
    binary: str,
    *,
    secrets: Sequence[str] = (),
    default_timeout: float = 60,
    concurrency: threading.Semaphore | None = None,
    grace_period: float = 5,
) -> TerraformRunner:
    return TerraformRunner(
        binary,
        plugin_cache_dir=tmp_path / "plugin-cache",
        secrets=secrets,
        default_timeout=default_timeout,
        concurrency=concurrency,
        grace_period=grace_period,
    )


def job_log(tmp_path: Path, name: str = "job") -> JobLog:
    return JobLog(tmp_path / "jobs" / f"{name}.log")


def is_alive(pid: int) -> bool:
    """Whether `pid` still runs (a zombie waiting for its reaper counts as gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return False
    return fields[0] not in ("Z", "X")


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def child_pid(output: str) -> int:
    """The pid a fake terraform printed as `child <pid>`."""
    found = re.search(r"child (\d+)", output)
    assert found is not None, output
    return int(found.group(1))


# --- the job log -------------------------------------------------------------------------------


def test_job_log_appends_lines_sections_and_reads_them_back(tmp_path: Path) -> None:
    log = job_log(tmp_path)
    log.section("plan app/default")
    log.write("first line\n")
    log.write("second\nthird")

    assert log.read() == "=== plan app/default ===\nfirst line\nsecond\nthird\n"
    assert (tmp_path / "jobs" / "job.log").read_text() == log.read()


def test_job_log_redacts_secrets_before_writing_or_notifying(tmp_path: Path) -> None:
    log = JobLog(tmp_path / "job.log", redactor=[SECRET, "ghs_token"])
    seen: list[str] = []
    log.subscribe(seen.append)

    log.write(f"header: Bearer ghs_token and {SECRET}!")

    assert log.read() == "header: Bearer *** and ***!\n"
    assert seen == ["header: Bearer *** and ***!"]


def test_job_log_subscribers_get_live_lines_and_replay_without_gaps(tmp_path: Path) -> None:
    log = job_log(tmp_path)
    log.write("before")
    live: list[str] = []
    replayed: list[str] = []
    log.subscribe(live.append)
    log.subscribe(replayed.append, replay=True)
    log.write("after")
    log.unsubscribe(live.append)
    log.write("unsubscribed")

    assert live == ["after"]
    assert replayed == ["before", "after", "unsubscribed"]


def test_a_failing_subscriber_does_not_break_the_job_that_writes(tmp_path: Path) -> None:
    log = job_log(tmp_path)

    def broken(_line: str) -> None:
        raise BrokenPipeError("browser went away")

    log.subscribe(broken)
    log.write("one")
    log.write("two")

    assert log.read() == "one\ntwo\n"


def test_job_log_is_safe_to_write_from_many_threads(tmp_path: Path) -> None:
    log = job_log(tmp_path)

    def write_many(prefix: str) -> None:
        for number in range(200):
            log.write(f"{prefix}-{number}")

    threads = [threading.Thread(target=write_many, args=(f"t{index}",)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    lines = log.read().splitlines()
    assert len(lines) == 800
    assert all(re.fullmatch(r"t\d-\d+", line) for line in lines)


# --- running -----------------------------------------------------------------------------------


def test_each_line_reaches_the_log_while_the_process_still_runs(tmp_path: Path) -> None:
    # The script only prints its second line once a subscriber has seen the first one.
    seen_marker = tmp_path / "first-line-seen"
    binary = fake_terraform(
        tmp_path,
        f"""echo "first"
for i in $(seq 100); do
  if [ -e {seen_marker} ]; then echo "second: the first line was streamed"; exit 0; fi
  sleep 0.05
done
echo "second: nobody saw the first line"
exit 3
""",
    )
    log = job_log(tmp_path)
    log.subscribe(lambda line: seen_marker.touch() if line == "first" else None)

    result = make_runner(tmp_path, binary).run(["plan"], tmp_path, log)

    assert result.exit_code == 0
    assert result.output == "first\nsecond: the first line was streamed\n"
    assert log.read() == "$ terraform plan\nfirst\nsecond: the first line was streamed\n"


def test_stdout_and_stderr_arrive_interleaved_and_a_last_line_without_newline_is_kept(
    tmp_path: Path,
) -> None:
    binary = fake_terraform(tmp_path, 'echo out-1; echo err-1 >&2; echo out-2; printf "no newline"; exit 1\n')

    result = make_runner(tmp_path, binary).run(["init", "-input=false"], tmp_path, job_log(tmp_path))

    assert result == RunResult(
        exit_code=1,
        output="out-1\nerr-1\nout-2\nno newline\n",
        duration_seconds=result.duration_seconds,
    )
    assert not result.ok


def test_the_child_environment_has_no_atlas_secrets_and_the_automation_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATLAS_GH_TOKEN", "ghs_atlas")
    monkeypatch.setenv("ATLAS_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_github")
    monkeypatch.setenv("GH_TOKEN", "ghs_gh")
    monkeypatch.setenv("GITLAB_TOKEN", "glpat_gitlab")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "data" / "prometheus-multiproc"))
    monkeypatch.setenv("DEPLOY_NOTE", f"the secret is {SECRET}")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    environment_before = dict(os.environ)
    binary = fake_terraform(tmp_path, "env\n")
    runner = make_runner(tmp_path, binary, secrets=[SECRET])

    result = runner.run(["plan"], tmp_path, job_log(tmp_path), env={"TF_VAR_region": "eu-west-1"})

    child_env = dict(line.split("=", 1) for line in result.output.splitlines() if "=" in line)
    for name in ("ATLAS_GH_TOKEN", "ATLAS_WEBHOOK_SECRET", "GITHUB_TOKEN", "GH_TOKEN", "GITLAB_TOKEN",
                 "PROMETHEUS_MULTIPROC_DIR", "DEPLOY_NOTE"):
        assert name not in child_env
    assert SECRET not in result.output
    assert child_env["AWS_REGION"] == "eu-west-1"
    assert child_env["TF_VAR_region"] == "eu-west-1"
    assert child_env["TF_IN_AUTOMATION"] == "1"
    assert child_env["TF_INPUT"] == "0"
    assert child_env["CHECKPOINT_DISABLE"] == "1"
    assert child_env["TF_PLUGIN_CACHE_DIR"] == str(tmp_path / "plugin-cache")
    assert (tmp_path / "plugin-cache").is_dir()
    assert dict(os.environ) == environment_before


def test_build_env_is_the_same_scrubbing_for_other_children(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATLAS_DATA_DIR", "/var/lib/atlas")
    monkeypatch.setenv("LEAKY", f"x{SECRET}x")
    runner = make_runner(tmp_path, "terraform", secrets=[SECRET])

    env = runner.build_env({"GIT_TERMINAL_PROMPT": "0", "TF_INPUT": "1"})

    assert "ATLAS_DATA_DIR" not in env
    assert "LEAKY" not in env
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    assert env["TF_INPUT"] == "1", "explicit extras win over the defaults"


def test_a_secret_printed_by_the_process_is_redacted_in_output_and_log(tmp_path: Path) -> None:
    binary = fake_terraform(tmp_path, f'echo "local-exec says {SECRET}"\n')
    log = job_log(tmp_path)

    result = make_runner(tmp_path, binary, secrets=[SECRET]).run(["apply"], tmp_path, log)

    assert result.output == "local-exec says ***\n"
    assert SECRET not in log.read()


def test_cancel_interrupts_the_process_group_so_terraform_can_clean_up(tmp_path: Path) -> None:
    binary = fake_terraform(
        tmp_path,
        """trap 'echo "interrupted: releasing state lock"; exit 130' INT
echo "planning"
while :; do sleep 0.05; done
""",
    )
    log = job_log(tmp_path)
    cancel = CancelToken()
    log.subscribe(lambda line: cancel.cancel() if line == "planning" else None)

    result = make_runner(tmp_path, binary, grace_period=30).run(["plan"], tmp_path, log, cancel=cancel)

    assert result.cancelled and not result.timed_out
    assert result.exit_code == 130
    assert result.output == "planning\ninterrupted: releasing state lock\n"
    assert result.duration_seconds < 10, "SIGINT alone stopped it, long before the grace period ended"
    assert "atlas: cancelled; interrupting terraform so it releases its lock" in log.read()


def test_a_process_ignoring_sigint_is_killed_with_its_children_after_the_grace_period(
    tmp_path: Path,
) -> None:
    # A background child of a script ignores SIGINT, like a provider plugin that hangs.
    binary = fake_terraform(
        tmp_path,
        """trap 'echo "ignoring SIGINT"' INT
sleep 300 &
echo "child $!"
while :; do sleep 0.05; done
""",
    )
    log = job_log(tmp_path)
    cancel = CancelToken()
    log.subscribe(lambda line: cancel.cancel() if line.startswith("child ") else None)

    result = make_runner(tmp_path, binary, grace_period=0.5).run(["apply"], tmp_path, log, cancel=cancel)

    assert result.cancelled
    assert result.exit_code == -9
    assert "ignoring SIGINT" in result.output
    assert "atlas: terraform did not stop within 0.5s; killing it" in log.read()
    child = child_pid(result.output)
    assert wait_until(lambda: not is_alive(child)), "the whole process group was killed"


def test_a_run_past_its_timeout_is_stopped_and_says_so(tmp_path: Path) -> None:
    binary = fake_terraform(
        tmp_path,
        """trap 'echo "interrupted"; exit 1' INT
echo "refreshing"
while :; do sleep 0.05; done
""",
    )
    log = job_log(tmp_path)

    result = make_runner(tmp_path, binary, default_timeout=60).run(["plan"], tmp_path, log, timeout=0.5)

    assert result.timed_out and not result.cancelled
    assert result.output == "refreshing\ninterrupted\n"
    assert "atlas: timed out after 0.5s; interrupting terraform so it releases its lock" in log.read()
    assert result.duration_seconds < 10


def test_the_concurrency_semaphore_bounds_how_many_processes_run_at_once(tmp_path: Path) -> None:
    intervals = tmp_path / "intervals"
    binary = fake_terraform(
        tmp_path,
        f"""echo "start $(date +%s.%N)" >> {intervals}
sleep 0.3
echo "end $(date +%s.%N)" >> {intervals}
""",
    )
    runner = make_runner(tmp_path, binary, concurrency=threading.Semaphore(1))
    logs = [job_log(tmp_path, f"job-{index}") for index in range(3)]
    results: list[RunResult] = []
    threads = [
        threading.Thread(target=lambda log=log: results.append(runner.run(["plan"], tmp_path, log))) for log in logs
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [result.exit_code for result in results] == [0, 0, 0]
    events = [line.split() for line in intervals.read_text().splitlines()]
    kinds = [kind for kind, _ in sorted(events, key=lambda event: float(event[1]))]
    assert kinds == ["start", "end"] * 3, "never two processes at once"
    waited = [log for log in logs if "waiting for a free terraform slot" in log.read()]
    assert len(waited) >= 1


def test_cancel_while_waiting_for_a_slot_never_starts_the_process(tmp_path: Path) -> None:
    started = tmp_path / "started"
    semaphore = threading.Semaphore(1)
    semaphore.acquire()
    runner = make_runner(tmp_path, fake_terraform(tmp_path, f"touch {started}\n"), concurrency=semaphore)
    cancel = CancelToken()
    threading.Timer(0.2, cancel.cancel).start()

    result = runner.run(["plan"], tmp_path, job_log(tmp_path), cancel=cancel)

    assert result.cancelled
    assert not started.exists()
    assert semaphore.acquire(blocking=False) is False, "the slot it never got was not released"


def test_a_missing_binary_is_a_failed_run_that_says_what_is_missing(tmp_path: Path) -> None:
    log = job_log(tmp_path)
    runner = make_runner(tmp_path, str(tmp_path / "no-such-terraform"))

    result = runner.run(["init"], tmp_path, log)

    assert result.exit_code == 127
    assert "cannot run" in result.output and "no-such-terraform" in result.output
    with pytest.raises(TerraformError, match="no-such-terraform"):
        runner.version()


def test_version_reads_the_real_terraform(tmp_path: Path) -> None:
    terraform = require_binary("terraform", "install Terraform >= 1.4 from https://developer.hashicorp.com")
    printed = subprocess.run([terraform, "version"], capture_output=True, text=True, check=True).stdout

    version = make_runner(tmp_path, terraform).version()

    assert re.fullmatch(r"\d+\.\d+\.\d+.*", version)
    assert f"Terraform v{version}" in printed


def test_a_process_that_leaves_a_child_holding_the_output_open_still_finishes(tmp_path: Path) -> None:
    # Like a local-exec that starts a daemon: the run ends once the grace period has passed.
    binary = fake_terraform(tmp_path, 'sleep 300 &\necho "child $!"\necho done\n')

    result = make_runner(tmp_path, binary, grace_period=0.3).run(["apply"], tmp_path, job_log(tmp_path))

    assert result.exit_code == 0
    assert result.output.endswith("done\n")
    child = child_pid(result.output)
    assert wait_until(lambda: not is_alive(child))


@pytest.mark.parametrize("before", ["", "a", "ab", "abc"])
@pytest.mark.parametrize("after", ["", "z", "yz"])
def test_a_secret_is_redacted_inside_longer_base64_at_every_alignment(tmp_path: Path, before: str, after: str) -> None:
    """`base64encode(file("/proc/1/environ"))` puts a secret anywhere inside a long base64 string."""
    encoded = base64.b64encode(f"{before}SECRET={SECRET}{after}".encode()).decode()
    log = JobLog(tmp_path / "job.log", redactor=[SECRET])

    log.write(f'+ environ = "{encoded}"')
    log.write(f'+ urlsafe = "{encoded.replace("+", "-").replace("/", "_")}"')

    written = log.read()
    assert written.count("***") == 2
    for line in written.splitlines():
        value = line.split('"')[1]
        for piece in value.split("***"):
            decodable = piece.replace("-", "+").replace("_", "/").rstrip("=")
            for start in range(4):
                chunk = decodable[start:][: (len(decodable) - start) // 4 * 4]
                assert SECRET.encode() not in base64.b64decode(chunk)


def test_percent_encoded_and_hex_secrets_are_redacted_and_scrubbed_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "It's a Secret/to Everybody"
    redact = JobLog(tmp_path / "job.log", redactor=[secret]).redactor
    assert redact(f"https://h/?s={quote(secret, safe='')}") == "https://h/?s=***"
    assert redact(f"s={quote_plus(secret)}&x=1") == "s=***&x=1"
    lower_escapes = re.sub(r"%[0-9A-F]{2}", lambda escape: escape.group().lower(), quote(secret, safe=""))
    assert redact(f"s={lower_escapes}") == "s=***"
    assert redact(f"dump {secret.encode().hex()}") == "dump ***"
    monkeypatch.setenv("BASIC_AUTH", base64.b64encode(f"user:{secret}".encode()).decode())

    assert "BASIC_AUTH" not in make_runner(tmp_path, "terraform", secrets=[secret]).build_env()


def test_a_run_dies_with_the_process_that_started_it_even_when_that_one_is_sigkilled(tmp_path: Path) -> None:
    # The runner in a process of its own, from a thread as jobs run; the run writes its pid, then sleeps.
    pid_file = tmp_path / "terraform.pid"
    binary = fake_terraform(tmp_path, f'echo $$ > "{pid_file}"\nexec sleep 300\n')
    program = (
        "import threading, pathlib\n"
        "from atlas.runtime.joblog import JobLog\n"
        "from atlas.runtime.terraform import TerraformRunner\n"
        f"runner = TerraformRunner({binary!r}, plugin_cache_dir=pathlib.Path({str(tmp_path / 'cache')!r}))\n"
        f"log = JobLog(pathlib.Path({str(tmp_path / 'job.log')!r}))\n"
        f"thread = threading.Thread(target=runner.run, args=(['plan'], pathlib.Path({str(tmp_path)!r}), log))\n"
        "thread.start(); thread.join()\n"
    )
    supervisor = subprocess.Popen([sys.executable, "-c", program], env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        assert wait_until(lambda: pid_file.exists() and pid_file.read_text().strip() != "", 30), "the run started"
        run = int(pid_file.read_text())
        assert is_alive(run)

        os.kill(supervisor.pid, signal.SIGKILL)  # its process only: the run has a process group of its own
        supervisor.wait(10)

        assert wait_until(lambda: not is_alive(run), 1.0), "the run outlived the process that started it"
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
        if pid_file.exists() and pid_file.read_text().strip():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(int(pid_file.read_text()), signal.SIGKILL)
