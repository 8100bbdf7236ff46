"""The `atlas` command line as a user runs it, the start-up log, gunicorn serving, and log lines."""

from __future__ import annotations

import argparse
import base64
import io
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from atlas import __version__, startup
from atlas.cli import main as cli
from atlas.cli import subcommand
from atlas.config.settings import load_settings, setting_infos
from atlas.logs import REDACTED, configure_logging, job_context
from tests.conftest import require_binary

REPO_ROOT = Path(__file__).resolve().parent.parent


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of an `atlas` run: no ATLAS_* from the machine, a home of its own."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ATLAS_")}
    env.update(PYTHONPATH=str(REPO_ROOT), HOME=str(tmp_path / "home"), COLUMNS="80", **extra)
    return env


def run_atlas(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "atlas", *args],
        cwd=tmp_path,
        env=clean_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- wrong settings: exit 2 with one line on stderr --------------------------------------------


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (
            ["--port", "abc"],
            {},
            'atlas: error: invalid setting --port (ATLAS_PORT): must be an integer between 1 and 65535, got "abc"',
        ),
        (
            [],
            {"ATLAS_LOG_LEVEL": "loud"},
            "atlas: error: invalid setting ATLAS_LOG_LEVEL (--log-level): must be one of debug, info, "
            'warning, error, got "loud"',
        ),
        (
            ["--gh-token", "t", "--repo-allowlist", "acme/*"],
            {},
            'atlas: error: invalid setting --repo-allowlist (ATLAS_REPO_ALLOWLIST): entry "acme/*" is not a '
            "HOST/OWNER/NAME glob; write it like github.com/acme/*",
        ),
        (
            [],
            {},
            "atlas: error: GitHub credentials are required (the server reads pull requests and comments): give a "
            "token (--gh-token, ATLAS_GH_TOKEN, or --gh-token-file) or a GitHub App (--gh-app-id with "
            "--gh-app-key-file or --gh-app-key); or, to serve GitLab, a GitLab token (--gitlab-token, "
            "ATLAS_GITLAB_TOKEN, or --gitlab-token-file)",
        ),
        (
            ["--prot", "4000"],
            {},
            "atlas server: error: unrecognized arguments: --prot 4000 (see 'atlas server --help')",
        ),
        (
            ["--ssl-cert-file", "/etc/atlas/cert.pem"],
            {},
            'atlas server: error: atlas does not support "ssl-cert-file": serve atlas behind a TLS-terminating '
            "reverse proxy (README: TLS and reverse proxies) (see 'atlas server --help')",
        ),
        (
            ["--gh-hostname=ghe.acme.com", "--prot", "4000"],
            {},
            'atlas server: error: atlas does not read "gh-hostname": use --gh-api-url (GitHub Enterprise: '
            "--gh-api-url https://HOST/api/v3); unrecognized arguments: --prot (see 'atlas server --help')",
        ),
    ],
)
def test_a_wrong_setting_exits_2_with_one_line(
    tmp_path: Path, args: list[str], env: dict[str, str], expected: str
) -> None:
    result = run_atlas(tmp_path, "server", *args, **env)
    assert result.returncode == 2
    assert result.stderr == expected + "\n"
    assert result.stdout == ""


def test_a_wrong_config_file_exits_2_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "server.yaml"
    config.write_text("gh-token: ghp_abc\nport: 4141\nallowlist: '*'\n")
    result = run_atlas(tmp_path, "server", "--config", str(config))
    assert (result.returncode, result.stderr) == (
        2,
        f'atlas: error: {config}: unknown setting "allowlist" (did you mean "repo-allowlist"?)\n',
    )
    result = run_atlas(tmp_path, "server", ATLAS_CONFIG=str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert (
        result.stderr == f"atlas: error: {tmp_path / 'nope.yaml'}: cannot read config file: No such file or directory\n"
    )


def test_an_uncreatable_data_dir_exits_2_with_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = run_atlas(tmp_path, "server", "--data-dir", str(blocker / "atlas"), ATLAS_GH_TOKEN="t",
                       ATLAS_GH_WEBHOOK_SECRET="s")
    assert result.returncode == 2
    assert result.stderr == (
        f"atlas: error: cannot create the data directory {blocker / 'atlas'}: Not a directory "
        "(set --data-dir or ATLAS_DATA_DIR)\n"
    )


def test_the_server_refuses_to_start_without_a_webhook_secret_unless_told_to_accept_unsigned(tmp_path: Path) -> None:
    result = run_atlas(tmp_path, "server", "--data-dir", str(tmp_path / "data"), ATLAS_GH_TOKEN="t")

    assert result.returncode == 2
    assert result.stderr == (
        "atlas: error: --gh-webhook-secret (ATLAS_GH_WEBHOOK_SECRET) is required: without it anyone who can "
        "reach the server can send it events. Set it (or --gh-webhook-secret-file) to the GitHub webhook's "
        "secret, or pass --allow-unsigned-webhooks for a local trial\n"
    )
    assert not (tmp_path / "data").exists(), "nothing starts before the refusal"


def test_server_help_points_to_readme_sections_that_exist(tmp_path: Path) -> None:
    help_text = " ".join(run_atlas(tmp_path, "server", "--help").stdout.split())
    headings = re.findall(r"^#+ (.+)$", (Path(__file__).resolve().parents[1] / "README.md").read_text(), re.M)

    for section in subcommand.README_SECTIONS:
        assert f'"{section}"' in help_text
        assert section in headings, f"README.md has no section {section!r}"


# --- help and version ---------------------------------------------------------------------------


def help_blocks(help_text: str) -> dict[str, str]:
    """Each option's help, joined onto one line, keyed by its first flag."""
    blocks: dict[str, str] = {}
    current = ""
    for line in help_text.splitlines():
        match = re.match(r"^  (--[a-z0-9-]+)", line)
        if match:
            current = match.group(1)
            blocks[current] = line.strip()
        elif current and line.startswith(" " * 10):
            blocks[current] += " " + line.strip()
        else:
            current = ""
    return blocks


def test_server_help_lists_every_flag_with_its_env_twin_and_default(tmp_path: Path) -> None:
    result = run_atlas(tmp_path, "server", "--help")
    assert result.returncode == 0
    text = result.stdout
    assert text.startswith("usage: atlas server ")
    assert "Run the atlas server. It receives GitHub webhooks" in text
    for heading in ("GitHub settings:", "Server settings:", "Terraform settings:", "Logging settings:"):
        assert heading in text
    blocks = help_blocks(text)
    for info in setting_infos():
        block = blocks[info.flag]
        assert f"[env: {info.env}]" in block, block
        if info.shown_default is not None:
            assert f"(default: {info.shown_default})" in block, block
    assert re.search(r"--port PORT +Port to listen on\. \[env: ATLAS_PORT\]", text)
    assert "(default: 4141)" in blocks["--port"]
    assert "--allow-draft-prs [true|false]" in text and "--no-allow-draft-prs" in text
    assert "[env: ATLAS_CONFIG]" in blocks["--config"]
    assert "--dev" in blocks
    assert "example:\n  export ATLAS_GH_TOKEN=" in text
    assert "config/server.example.yaml" in text


def test_version_prints_atlas_and_terraform_versions(tmp_path: Path) -> None:
    terraform = require_binary(
        "terraform", "install Terraform 1.11 from https://developer.hashicorp.com/terraform/install"
    )
    result = run_atlas(tmp_path, "version")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0] == f"atlas {__version__}"
    assert re.fullmatch(rf"terraform \d+\.\d+\.\d+ \({re.escape(terraform)}\)", lines[1]), lines[1]

    missing = run_atlas(tmp_path, "version", ATLAS_TERRAFORM_BIN="no-such-terraform")
    assert missing.stdout.splitlines()[1] == "terraform: 'no-such-terraform' not found or not runnable"

    flag = run_atlas(tmp_path, "--version")
    assert (flag.returncode, flag.stdout) == (0, f"atlas {__version__}\n")


def test_atlas_without_a_command_says_to_choose_one(tmp_path: Path) -> None:
    result = run_atlas(tmp_path)
    assert result.returncode == 2
    assert result.stderr == "atlas: error: the following arguments are required: COMMAND (see 'atlas --help')\n"


def test_a_registered_subcommand_reuses_the_settings_flags(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: list[object] = []

    def run(args: argparse.Namespace) -> int:
        seen.append(subcommand.settings_from_args(args).port)
        return 7

    monkeypatch.setitem(
        cli.SUBCOMMANDS,
        "worker",
        subcommand.Subcommand("worker", "Run jobs.", run, add_arguments=subcommand.add_settings_arguments),
    )
    assert cli.main(["worker", "--port", "4500", "--data-dir", str(tmp_path)]) == 7
    assert seen == [4500]


# --- start-up -----------------------------------------------------------------------------------


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Leaves the root logger as it was: configure_logging() changes it for the whole process."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_startup_creates_the_data_dir_and_logs_a_summary_without_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    settings = load_settings(
        {"gh_token": "ghp_startuptoken", "data_dir": str(tmp_path / "data"), "port": "4999"},
        env={},
    )
    startup.log_startup(settings, "server", startup.prepare_process(settings))
    assert (tmp_path / "data").is_dir()
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert re.match(
        rf"^\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ INFO atlas.startup atlas {__version__} starting server port=4999 ",
        lines[0],
    )
    assert f"data_dir={tmp_path / 'data'}" in lines[0]
    assert "repo_allowlist=none" in lines[0]
    assert "gh_api_url=https://api.github.com" in lines[0]
    assert (
        "WARNING atlas.startup the repository allowlist is empty, so atlas acts on no repository; set "
        "--repo-allowlist (ATLAS_REPO_ALLOWLIST)" in err
    )
    assert "WARNING atlas.startup no webhook secret is set" in err
    assert ("WARNING atlas.startup --gh-token was given on the command line, where every user of this host can "
            "read it (ps, /proc/PID/cmdline); pass it as ATLAS_GH_TOKEN or in a file with --gh-token-file "
            "instead") in err
    assert "ghp_startuptoken" not in err


def test_startup_stays_quiet_about_what_is_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], restore_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A terraform configuration in this machine's home would be named: the sandbox hides it.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TF_CLI_CONFIG_FILE", raising=False)
    settings = load_settings(
        {
            "repo_allowlist": "github.com/acme/*",
            "data_dir": str(tmp_path),
            "terraform_bin": sys.executable,
        },
        env={"ATLAS_GH_TOKEN": "t", "ATLAS_GH_WEBHOOK_SECRET": "s"},
    )
    startup.log_startup(settings, "server", startup.prepare_process(settings))
    err = capsys.readouterr().err
    assert "WARNING" not in err
    assert "repo_allowlist=github.com/acme/*" in err


# --- gunicorn -----------------------------------------------------------------------------------

GUNICORN_PROGRAM = textwrap.dedent(
    """
    import flask, sys
    from atlas.startup import prepare_process
    from atlas.serving import AtlasServer
    from atlas.config.settings import load_settings

    def create_app(settings):
        app = flask.Flask("stub")

        @app.get("/hello")
        def hello():
            return "hello from " + str(settings.port)

        @app.get("/dumpable")
        def dumpable():
            import ctypes

            return str(ctypes.CDLL(None).prctl(3, 0, 0, 0, 0))  # PR_GET_DUMPABLE, in the gunicorn worker

        return app

    settings = load_settings({"port": sys.argv[1], "data_dir": sys.argv[2], "gh_token": "ghp_gunicorntoken"})
    prepare_process(settings)
    AtlasServer(settings, threads=2, graceful_timeout=5, app_factory=create_app).run()
    """
)


def test_gunicorn_serves_the_app_and_logs_through_atlas(tmp_path: Path) -> None:
    port = free_port()
    stderr_path = tmp_path / "stderr"
    with stderr_path.open("w") as stderr:
        server = subprocess.Popen(
            [sys.executable, "-c", GUNICORN_PROGRAM, str(port), str(tmp_path / "data")],
            cwd=tmp_path,
            env=clean_env(tmp_path, ATLAS_LOG_FORMAT="json"),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = requests.get(f"http://127.0.0.1:{port}/hello", timeout=2)
                break
            except requests.ConnectionError:
                assert server.poll() is None, stderr_path.read_text()
                assert time.monotonic() < deadline, stderr_path.read_text()
                time.sleep(0.1)
        assert response.text == f"hello from {port}"
        dumpable = requests.get(f"http://127.0.0.1:{port}/dumpable", timeout=5).text
        assert dumpable == "0", "gunicorn's workers are not dumpable: same-user processes cannot read their memory"
        requests.get(f"http://127.0.0.1:{port}/ghp_gunicorntoken", timeout=5)
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0

    records = [json.loads(line) for line in stderr_path.read_text().splitlines()]
    assert {
        "logger": "gunicorn.error",
        "level": "info",
        "message": f"Listening at: http://0.0.0.0:{port} ({server.pid})",
    } in [{key: r[key] for key in ("logger", "level", "message")} for r in records]
    access = [r for r in records if r["logger"] == "gunicorn.access"]
    assert access[0]["message"] == "GET /hello 200"
    assert access[0]["remote"] == "127.0.0.1"
    assert isinstance(access[0]["duration_ms"], int)
    assert access[2]["message"] == "GET /*** 404"
    assert "ghp_gunicorntoken" not in stderr_path.read_text()


# --- log lines ----------------------------------------------------------------------------------


def capture_logging(fmt: str, secrets: list[str]) -> io.StringIO:
    stream = io.StringIO()
    configure_logging("debug", "json" if fmt == "json" else "text", secrets, stream=stream)
    return stream


def test_text_lines_carry_time_level_logger_message_and_fields(restore_logging: None) -> None:
    stream = capture_logging("text", [])
    logging.getLogger("atlas.http.webhooks").info("received %s", "pull_request", extra={"delivery": "d 1"})
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ INFO atlas.http.webhooks received pull_request delivery=\"d 1\"\n",
        stream.getvalue(),
    )


def test_lines_inside_a_job_context_carry_its_fields(restore_logging: None) -> None:
    stream = capture_logging("text", [])
    log = logging.getLogger("atlas.jobs.queue")
    with job_context(repo="acme/infra", pr=7, job_id="j1"):
        with job_context(project="network"):
            log.info("running", extra={"step": "plan"})
        log.info("finished")
    log.info("idle")
    lines = [line.split(" ", 1)[1] for line in stream.getvalue().splitlines()]
    assert lines == [
        "INFO atlas.jobs.queue running repo=acme/infra pr=7 project=network job_id=j1 step=plan",
        "INFO atlas.jobs.queue finished repo=acme/infra pr=7 job_id=j1",
        "INFO atlas.jobs.queue idle",
    ]


def test_json_lines_are_one_object_each(restore_logging: None) -> None:
    stream = capture_logging("json", [])
    with job_context(repo="acme/infra", pr=7):
        logging.getLogger("atlas.commands").warning("plan failed", extra={"project": "dns"})
    record = json.loads(stream.getvalue())
    assert record["level"] == "warning"
    assert record["logger"] == "atlas.commands"
    assert record["message"] == "plan failed"
    assert (record["repo"], record["pr"], record["project"]) == ("acme/infra", 7, "dns")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["time"])


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_secrets_are_redacted_from_messages_arguments_fields_and_tracebacks(restore_logging: None, fmt: str) -> None:
    token = "ghp_redactme123"
    stream = capture_logging(fmt, [token, "hook-secret"])
    log = logging.getLogger("atlas.github.client")
    log.info("cloning %s", f"https://x-access-token:{token}@github.com/acme/infra.git")
    log.info("token is " + token, extra={"header": f"token {token}"})
    with job_context(repo=f"acme/{token}"):
        log.info("context")
    try:
        raise RuntimeError(f"git failed with {token} and hook-secret")
    except RuntimeError:
        log.exception("git failed")
    output = stream.getvalue()
    assert token not in output
    assert "hook-secret" not in output
    assert "https://x-access-token:***@github.com/acme/infra.git" in output
    assert output.count("***") >= 6


def test_configuring_logging_again_replaces_the_handler(restore_logging: None) -> None:
    first = capture_logging("text", [])
    second = capture_logging("text", [])
    logging.getLogger("atlas").warning("once")
    assert first.getvalue() == ""
    assert second.getvalue().count("once") == 1


def test_a_short_secret_is_redacted_only_where_it_stands_alone(restore_logging: None) -> None:
    stream = capture_logging("text", ["s3"])
    logging.getLogger("atlas").info("secret=s3 but not in s3cret or as3")
    assert "secret=*** but not in s3cret or as3" in stream.getvalue()


def test_a_secret_is_redacted_from_log_lines_in_base64_hex_and_percent_encoding(restore_logging: None) -> None:
    token = "ghp_encodedtoken0123456789"
    stream = capture_logging("text", [token])
    header = base64.b64encode(f"x-access-token:{token}".encode()).decode()  # git's Authorization: Basic …
    logging.getLogger("atlas").info("Authorization: Basic %s", header)
    logging.getLogger("atlas").info("url %s", "https://h/?token=" + token.replace("_", "%5F").replace("g", "%67"))
    logging.getLogger("atlas").info("hex %s", token.encode().hex())

    output = stream.getvalue()
    assert "Authorization: Basic eC1hY2Nlc3MtdG9rZW46***" in output
    assert f"hex {REDACTED}" in output
    assert base64.b64decode(header) not in output.encode()


def test_an_unreadable_secret_file_stops_the_server_with_the_reason_and_not_the_secret(tmp_path: Path) -> None:
    token = tmp_path / "gh-token"
    token.write_text("ghp_neverprinted0123")

    both = run_atlas(tmp_path, "server", "--gh-token-file", str(token), ATLAS_GH_TOKEN="ghp_alsoneverprinted")
    missing = run_atlas(tmp_path, "server", "--gh-token-file", str(tmp_path / "nowhere"))

    assert both.returncode == 2 and missing.returncode == 2
    assert both.stderr == ("atlas: error: invalid setting --gh-token-file (ATLAS_GH_TOKEN_FILE): give --gh-token or "
                           "--gh-token-file, not both\n")
    assert missing.stderr == (f"atlas: error: invalid setting --gh-token-file (ATLAS_GH_TOKEN_FILE): cannot read "
                              f"{tmp_path / 'nowhere'}: No such file or directory\n")
    assert "neverprinted" not in both.stderr + both.stdout + missing.stderr + missing.stdout
