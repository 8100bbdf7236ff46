"""The token goes only to the configured GitHub: a delivery cannot name where atlas clones from.

A listener stands on a foreign host and port; deliveries whose every URL names it (clone_url,
html_url, the head repository's) are planned from the configured GitHub, and the listener never
sees a connection, signed or (with --allow-unsigned-webhooks) unsigned. The repo allowlist is
matched against the configured host, not the payload's.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.atlas_plugin import FIXTURES, RunningAtlas
from tests.emulator import EmulatedRepo, GitHubEmulator, webhook_payload

APP_CHANGE = {
    "app/main.tf": (FIXTURES / "multi-project/app/main.tf").read_text().replace("replicas = 2", "replicas = 7")
}


class ForeignHost:
    """A TCP listener that records every connection made to it (and answers nothing)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.connections: list[bytes] = []
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    self.connections.append(conn.recv(65536))
                except OSError:
                    self.connections.append(b"")


@contextmanager
def foreign_host() -> Iterator[ForeignHost]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    host = ForeignHost(sock)
    thread = threading.Thread(target=host.serve, daemon=True)
    thread.start()
    try:
        yield host
    finally:
        sock.close()
        thread.join(timeout=5)


def pointing_at(value: Any, old: str, new: str) -> Any:
    """`value` with every string that names `old` naming `new` instead."""
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, dict):
        return {key: pointing_at(item, old, new) for key, item in value.items()}
    if isinstance(value, list):
        return [pointing_at(item, old, new) for item in value]
    return value


@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
def test_a_delivery_naming_a_foreign_clone_url_sends_nothing_there(
    start_atlas: Callable[..., RunningAtlas],
    github_emulator: GitHubEmulator,
    fixture_repo: Callable[..., EmulatedRepo],
    signed: bool,
) -> None:
    fixture_repo("multi-project")
    pull = github_emulator.open_pull("acme/infra", "more-replicas", APP_CHANGE)
    atlas = start_atlas() if signed else start_atlas(gh_webhook_secret=None, allow_unsigned_webhooks=True)
    with foreign_host() as foreign:
        payload = pointing_at(webhook_payload("pull_request", pull, "opened"), github_emulator.base_url, foreign.url)
        assert payload["repository"]["clone_url"] == f"{foreign.url}/acme/infra.git"
        assert payload["pull_request"]["head"]["repo"]["clone_url"] == f"{foreign.url}/acme/infra.git"

        response = atlas.deliver("pull_request", payload, secret=signed)
        assert response.status_code == 202, response.text
        atlas.wait_idle()

        [comment] = github_emulator.comments("acme/infra", pull.number)
        assert "Plan: 1 to add, 0 to change, 0 to destroy." in comment["body"]
        assert foreign.connections == [], "atlas connected to the host the payload named"
    assert github_emulator.token not in atlas.log_text()


def test_the_allowlist_is_matched_against_the_configured_host_not_the_payloads(
    start_atlas: Callable[..., RunningAtlas],
    github_emulator: GitHubEmulator,
    fixture_repo: Callable[..., EmulatedRepo],
) -> None:
    fixture_repo("multi-project")
    pull = github_emulator.open_pull("acme/infra", "more-replicas", APP_CHANGE)
    payload = pointing_at(webhook_payload("pull_request", pull, "opened"), github_emulator.base_url,
                          "https://github.com")

    refused = start_atlas(repo_allowlist="github.com/acme/*").deliver("pull_request", payload)
    allowed = start_atlas(repo_allowlist="127.0.0.1/acme/*").deliver("pull_request", payload)

    assert refused.status_code == 403
    assert "repository 127.0.0.1/acme/infra is not in this server's --repo-allowlist" in refused.text
    assert allowed.status_code == 202, allowed.text
