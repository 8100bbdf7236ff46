"""The real `atlas server` command under gunicorn, driven over HTTP from a signed webhook to a comment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import requests

from tests.atlas_plugin import FIXTURES, WEBHOOK_SECRET, free_port, wait_for
from tests.emulator import EmulatedRepo, GitHubEmulator, deliver, webhook_payload


def test_atlas_server_under_gunicorn_plans_a_pull_request(
    tmp_path: Path,
    github_emulator: GitHubEmulator,
    fixture_repo: Callable[..., EmulatedRepo],
) -> None:
    fixture_repo("multi-project")
    pull = github_emulator.open_pull(
        "acme/infra",
        "more-replicas",
        {
            "app/main.tf": (FIXTURES / "multi-project/app/main.tf").read_text().replace("replicas = 2", "replicas = 4"),
        },
    )
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATLAS_")}
    env.update(
        {
            "ATLAS_GH_TOKEN": github_emulator.token,
            "ATLAS_GH_WEBHOOK_SECRET": WEBHOOK_SECRET,
        }
    )
    config = tmp_path / "atlas.yaml"
    config.write_text(f"gh-api-url: {github_emulator.api_url}\nrepo-allowlist: '127.0.0.1/acme/*'\n")
    log_path = tmp_path / "server.log"
    with log_path.open("w") as log_file:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "atlas",
                "server",
                "--config",
                str(config),
                "--port",
                str(port),
                "--data-dir",
                str(tmp_path / "data"),
            ],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def healthy() -> bool:
            assert server.poll() is None, f"atlas server exited:\n{log_path.read_text()}"
            try:
                return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
            except requests.ConnectionError:
                return False

        wait_for(healthy, 30, "the server to answer /healthz")
        response = deliver(
            f"http://127.0.0.1:{port}/events",
            "pull_request",
            webhook_payload("pull_request", pull, "opened"),
            secret=WEBHOOK_SECRET,
        )
        assert response.status_code == 202, response.text
        wait_for(lambda: bool(github_emulator.comments("acme/infra", pull.number)), 60, "the plan comment")
        [comment] = github_emulator.comments("acme/infra", pull.number)
        assert "Plan: 1 to add, 0 to change, 0 to destroy." in comment["body"]
        wait_for(
            lambda: any(s["state"] == "success" for s in github_emulator.statuses("acme/infra", pull.head_sha)),
            30,
            "the success status",
        )
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    output = log_path.read_text()
    assert "gunicorn" in output.lower() or "Booting worker" in output
    assert github_emulator.token not in output
    assert WEBHOOK_SECRET not in output
