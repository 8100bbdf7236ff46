"""Notifications end to end: an apply through atlas sends a signed HTTP webhook and a Slack message.

The receivers are local HTTP servers (tests/notify_receivers.py); the Slack one speaks the part of
Slack's Web API that the official slack_sdk client calls.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest

from atlas.notify import SIGNATURE_HEADER, verify_signature
from tests.atlas_plugin import RunningAtlas, free_port
from tests.commands_world import DEVELOPER, REPO, app_change, comment, last_bot_comment, open_and_plan, statuses
from tests.emulator import EmulatedRepo, GitHubEmulator
from tests.notify_receivers import SlackReceiver, WebhookReceiver, running

SLACK_TOKEN = "xoxb-e2e-notatoken-123456"
SIGNING_SECRET = "whsec-e2e-signing-secret"
Start = Callable[..., RunningAtlas]


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with running(WebhookReceiver()) as started:
        yield started


@pytest.fixture
def slack() -> Iterator[SlackReceiver]:
    with running(SlackReceiver(SLACK_TOKEN)) as started:
        assert isinstance(started, SlackReceiver)
        yield started


@pytest.fixture
def world(start_atlas: Start, fixture_repo: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator) -> Start:
    fixture_repo("multi-project")
    github_emulator.set_permission(REPO, DEVELOPER, "write")
    return start_atlas


def flush(atlas: RunningAtlas) -> None:
    assert atlas.app.config["ATLAS_CONTEXT"].notifier.flush(30), "notifications still pending"


def test_an_apply_sends_a_signed_webhook_and_a_slack_message(
    world: Start, github_emulator: GitHubEmulator, receiver: WebhookReceiver, slack: SlackReceiver
) -> None:
    atlas = world(
        webhooks=json.dumps([
            {"event": "apply", "kind": "http", "url": f"{receiver.url}/atlas", "secret": SIGNING_SECRET},
            {"event": "apply", "kind": "slack", "channel": "C0INFRA", "branch-regex": "^main$"},
        ]),
        slack_token=SLACK_TOKEN,
        slack_api_url=slack.api_url,
        webhook_http_headers='{"X-Team": "platform"}',
    )
    pull = open_and_plan(atlas, github_emulator, "more-replicas", app_change(3))
    assert receiver.received() == []  # a plan is no apply

    assert comment(atlas, pull, "atlas apply") == 202
    atlas.wait_idle()
    flush(atlas)

    (request,) = receiver.received()
    assert request.path == "/atlas"
    assert verify_signature(request.body, request.headers[SIGNATURE_HEADER.lower()], SIGNING_SECRET)
    assert request.headers["x-team"] == "platform"
    body = request.json()
    assert (body["event"], body["success"], body["user"]) == ("apply", True, DEVELOPER)
    assert body["repo"]["full_name"] == REPO and body["pull"]["number"] == pull.number
    assert body["project"] == {"dir": "app", "workspace": "default", "name": None}
    assert body["summary"] == "Apply complete! Resources: 1 added, 0 changed, 0 destroyed."
    assert body["url"].startswith("https://atlas.example.test/jobs/")
    assert (body["Directory"], body["Workspace"], body["Pull"]["Num"]) == ("app", "default", pull.number)

    (message,) = slack.messages
    assert message["channel"] == "C0INFRA"
    assert message["text"] == f"Apply succeeded for app in {REPO}#{pull.number} by {DEVELOPER}"
    assert SLACK_TOKEN not in atlas.log_text() and SIGNING_SECRET not in atlas.log_text()


def test_a_dead_receiver_does_not_fail_the_apply(world: Start, github_emulator: GitHubEmulator) -> None:
    dead = f"http://127.0.0.1:{free_port()}/hooks"
    atlas = world(webhooks=json.dumps([{"event": "apply", "kind": "http", "url": dead}]))
    pull = open_and_plan(atlas, github_emulator, "more-replicas", app_change(3))

    assert comment(atlas, pull, "atlas apply") == 202
    atlas.wait_idle()

    assert "Apply complete! Resources: 1 added" in last_bot_comment(github_emulator, pull)
    assert statuses(github_emulator, pull.head_sha, "atlas/apply")[-1] == ("success", "1/1 projects applied")
    flush(atlas)
    assert "sending apply to webhooks[0] (http, host 127.0.0.1) failed" in atlas.log_text()
