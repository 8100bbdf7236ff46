"""`POST /events` answers every delivery clearly, and refuses without side effects."""

from __future__ import annotations

import json
from collections.abc import Callable

import requests

from tests.atlas_plugin import FIXTURES, RunningAtlas
from tests.emulator import EmulatedPull, EmulatedRepo, GitHubEmulator, sign, webhook_payload

APP_CHANGE = {
    "app/main.tf": (FIXTURES / "multi-project/app/main.tf").read_text().replace("replicas = 2", "replicas = 5")
}


def opened_pull(fixture_repo: Callable[..., EmulatedRepo], emulator: GitHubEmulator) -> EmulatedPull:
    fixture_repo("multi-project")
    return emulator.open_pull("acme/infra", "more-replicas", APP_CHANGE)


def assert_nothing_ran(atlas: RunningAtlas, emulator: GitHubEmulator, pull: EmulatedPull) -> None:
    atlas.wait_idle()
    assert emulator.comments("acme/infra", pull.number) == []
    assert emulator.statuses("acme/infra", pull.head_sha) == []
    assert atlas.app.config["ATLAS_STATE"].jobs() == []


def test_healthz_answers_ok(start_atlas: Callable[..., RunningAtlas]) -> None:
    response = requests.get(f"{start_atlas().url}/healthz", timeout=5)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_ping_is_answered(
    start_atlas: Callable[..., RunningAtlas], github_emulator: GitHubEmulator, fixture_repo: Callable[..., EmulatedRepo]
) -> None:
    repo = fixture_repo("multi-project")
    response = start_atlas().deliver("ping", webhook_payload("ping", repo))
    assert (response.status_code, response.text.strip()) == (200, "pong")


def test_bad_signature_is_refused_with_401_and_nothing_runs(
    start_atlas: Callable[..., RunningAtlas],
    fixture_repo: Callable[..., EmulatedRepo],
    github_emulator: GitHubEmulator,
) -> None:
    atlas = start_atlas()
    pull = opened_pull(fixture_repo, github_emulator)
    response = atlas.deliver("pull_request", webhook_payload("pull_request", pull, "opened"), secret="not the secret")
    assert response.status_code == 401
    assert "does not match" in response.text
    assert_nothing_ran(atlas, github_emulator, pull)


def test_missing_signature_is_refused_with_401_and_nothing_runs(
    start_atlas: Callable[..., RunningAtlas],
    fixture_repo: Callable[..., EmulatedRepo],
    github_emulator: GitHubEmulator,
) -> None:
    atlas = start_atlas()
    pull = opened_pull(fixture_repo, github_emulator)
    response = atlas.deliver("pull_request", webhook_payload("pull_request", pull, "opened"), secret=False)
    assert response.status_code == 401
    assert "missing X-Hub-Signature-256" in response.text
    assert_nothing_ran(atlas, github_emulator, pull)


def test_signature_over_different_bytes_is_refused(
    start_atlas: Callable[..., RunningAtlas],
    fixture_repo: Callable[..., EmulatedRepo],
    github_emulator: GitHubEmulator,
) -> None:
    """The HMAC covers the raw body: re-serialised JSON with the same meaning does not verify."""
    atlas = start_atlas()
    pull = opened_pull(fixture_repo, github_emulator)
    payload = webhook_payload("pull_request", pull, "opened")
    signed = json.dumps(payload).encode()
    sent = json.dumps(payload, indent=2).encode()
    response = requests.post(
        f"{atlas.url}/events",
        data=sent,
        timeout=10,
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": "pull_request",
            "X-GitHub-Delivery": "d-1",
            "X-Hub-Signature-256": sign(signed, atlas.secret or ""),
        },
    )
    assert response.status_code == 401
    assert_nothing_ran(atlas, github_emulator, pull)


def test_unsigned_delivery_is_accepted_when_no_secret_is_configured(
    start_atlas: Callable[..., RunningAtlas],
    fixture_repo: Callable[..., EmulatedRepo],
    github_emulator: GitHubEmulator,
) -> None:
    atlas = start_atlas(gh_webhook_secret=None, allow_unsigned_webhooks=True)
    pull = opened_pull(fixture_repo, github_emulator)
    assert atlas.pull_event(pull, secret=False).status_code == 202
    atlas.wait_idle()
    assert len(github_emulator.comments("acme/infra", pull.number)) == 1


def test_malformed_json_gets_400_with_the_reason(start_atlas: Callable[..., RunningAtlas]) -> None:
    atlas = start_atlas()
    response = atlas.deliver("pull_request", b'{"action": "opened", ')
    assert response.status_code == 400
    assert "not valid JSON" in response.text


def test_payload_missing_what_the_event_needs_gets_400_naming_it(
    start_atlas: Callable[..., RunningAtlas],
    fixture_repo: Callable[..., EmulatedRepo],
    github_emulator: GitHubEmulator,
) -> None:
    atlas = start_atlas()
    pull = opened_pull(fixture_repo, github_emulator)
    payload = webhook_payload("pull_request", pull, "opened")
    del payload["pull_request"]["head"]["sha"]
    response = atlas.deliver("pull_request", payload)
    assert response.status_code == 400
    assert "pull_request.head.sha" in response.text
    assert_nothing_ran(atlas, github_emulator, pull)


def test_event_atlas_does_not_handle_is_ignored_with_200(
    start_atlas: Callable[..., RunningAtlas],
    fixture_repo: Callable[..., EmulatedRepo],
    github_emulator: GitHubEmulator,
    github_data_dir: object,
) -> None:
    atlas = start_atlas()
    pull = opened_pull(fixture_repo, github_emulator)
    push = json.loads((github_data_dir / "webhooks/push.json").read_text())
    response = atlas.deliver("push", push)
    assert response.status_code == 200
    assert response.text.startswith("ignored: ")
    labeled = webhook_payload("pull_request", pull, "opened")
    labeled["action"] = "labeled"
    response = atlas.deliver("pull_request", labeled)
    assert response.status_code == 200
    assert response.text.startswith("ignored: ") and "labeled" in response.text
    assert_nothing_ran(atlas, github_emulator, pull)


def test_draft_pull_request_is_ignored_unless_drafts_are_allowed(
    start_atlas: Callable[..., RunningAtlas],
    fixture_repo: Callable[..., EmulatedRepo],
    github_emulator: GitHubEmulator,
) -> None:
    atlas = start_atlas()
    fixture_repo("multi-project")
    pull = github_emulator.open_pull("acme/infra", "wip", APP_CHANGE, draft=True)
    response = atlas.pull_event(pull)
    assert response.status_code == 200
    assert "draft" in response.text
    assert_nothing_ran(atlas, github_emulator, pull)

    ready = atlas.pull_event(pull, "ready_for_review")
    assert ready.status_code == 202
    atlas.wait_idle()
    assert len(github_emulator.comments("acme/infra", pull.number)) == 1


def test_repository_outside_the_allowlist_is_refused_with_403(
    start_atlas: Callable[..., RunningAtlas],
    fixture_repo: Callable[..., EmulatedRepo],
    github_emulator: GitHubEmulator,
) -> None:
    atlas = start_atlas(repo_allowlist="github.com/acme/*")
    pull = opened_pull(fixture_repo, github_emulator)
    response = atlas.pull_event(pull)
    assert response.status_code == 403
    assert "127.0.0.1/acme/infra" in response.text and "--repo-allowlist" in response.text
    assert_nothing_ran(atlas, github_emulator, pull)


def test_default_allowlist_allows_nothing(
    start_atlas: Callable[..., RunningAtlas],
    fixture_repo: Callable[..., EmulatedRepo],
    github_emulator: GitHubEmulator,
) -> None:
    atlas = start_atlas(repo_allowlist=None)
    pull = opened_pull(fixture_repo, github_emulator)
    assert atlas.pull_event(pull).status_code == 403
    assert_nothing_ran(atlas, github_emulator, pull)


def test_body_over_25_mib_gets_413(start_atlas: Callable[..., RunningAtlas]) -> None:
    atlas = start_atlas()
    response = atlas.deliver("pull_request", b"{" + b" " * (25 * 1024 * 1024) + b"}")
    assert response.status_code == 413


def test_form_encoded_delivery_is_accepted(
    start_atlas: Callable[..., RunningAtlas],
    fixture_repo: Callable[..., EmulatedRepo],
    github_emulator: GitHubEmulator,
) -> None:
    atlas = start_atlas()
    pull = opened_pull(fixture_repo, github_emulator)
    response = atlas.deliver("pull_request", webhook_payload("pull_request", pull, "opened"), form_encoded=True)
    assert response.status_code == 202
    atlas.wait_idle()
    assert len(github_emulator.comments("acme/infra", pull.number)) == 1


def test_delivery_refused_with_5xx_runs_when_redelivered(
    start_atlas: Callable[..., RunningAtlas],
    fixture_repo: Callable[..., EmulatedRepo],
    github_emulator: GitHubEmulator,
) -> None:
    atlas = start_atlas()
    pull = opened_pull(fixture_repo, github_emulator)
    queue = atlas.app.config["ATLAS_QUEUE"]
    queue.shutdown(wait=True)  # the queue cannot take work: the delivery is refused, not accepted
    refused = atlas.pull_event(pull, delivery_id="redeliver-me")
    assert refused.status_code == 503
    assert "redeliver" in refused.text

    atlas.app.config["ATLAS_QUEUE"] = type(queue)(queue._execute, atlas.app.config["ATLAS_STATE"], workers=2)
    redelivered = atlas.pull_event(pull, delivery_id="redeliver-me")
    assert redelivered.status_code == 202
    atlas.wait_idle()
    assert len(github_emulator.comments("acme/infra", pull.number)) == 1


def test_acknowledgement_does_not_wait_for_the_plan(
    start_atlas: Callable[..., RunningAtlas],
    fixture_repo: Callable[..., EmulatedRepo],
    github_emulator: GitHubEmulator,
) -> None:
    """The 202 comes back before any git or terraform work: nothing is on the PR yet."""
    atlas = start_atlas()
    pull = opened_pull(fixture_repo, github_emulator)
    response = atlas.pull_event(pull)
    comments_at_ack = github_emulator.comments("acme/infra", pull.number)
    assert response.status_code == 202
    assert comments_at_ack == []
    atlas.wait_idle()
