"""Notifications: the `webhooks:` config, Slack messages and signed HTTP webhooks, over real HTTP.

Receivers run on 127.0.0.1 (tests/notify_receivers.py): a plain webhook endpoint and one shaped
after Slack's Web API, which the official slack_sdk client talks to unchanged.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import pytest

from atlas.notify import (
    SIGNATURE_HEADER,
    ApplyNotification,
    DriftedProject,
    DriftNotification,
    Notifier,
    ProjectRef,
    PullRef,
    RemediationNotification,
    RepoRef,
    RetryPolicy,
    WebhookConfigError,
    WebhookEvent,
    matching_webhooks,
    parse_http_headers,
    parse_webhooks,
    verify_signature,
)
from tests.atlas_plugin import wait_for
from tests.notify_receivers import SlackReceiver, WebhookReceiver, running

SLACK_TOKEN = "xoxb-1234-5678-notarealtoken"
SIGNING_SECRET = "whsec-receivers-know-this"
FAST = RetryPolicy(attempts=3, backoff=0.05, max_backoff=0.2, timeout=2)


def apply_result(*, success: bool = True, workspace: str = "default", base: str = "main") -> ApplyNotification:
    return ApplyNotification(
        repo=RepoRef(full_name="acme/infra", url="https://github.com/acme/infra"),
        pull=PullRef(
            number=42, url="https://github.com/acme/infra/pull/42", base_branch=base, head_branch="add-bucket",
            head_commit="0123456789abcdef0123456789abcdef01234567", author="bob", title="Add a bucket",
        ),
        project=ProjectRef(dir="envs/prod", workspace=workspace, name="prod"),
        user="alice",
        success=success,
        url="https://atlas.example.com/jobs/7",
        summary="Apply complete! Resources: 1 added, 0 changed, 0 destroyed." if success else "Error: boom",
    )


def drift_check() -> DriftNotification:
    return DriftNotification(
        repo=RepoRef(full_name="acme/infra"),
        branch="main",
        check_id="check-1",
        projects=(
            DriftedProject(project=ProjectRef(dir="envs/prod", workspace="prod"), has_drift=True, to_change=2,
                           summary="Plan: 0 to add, 2 to change, 0 to destroy."),
            DriftedProject(project=ProjectRef(dir="envs/dev", workspace="dev"), has_drift=False),
        ),
    )


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with running(WebhookReceiver()) as started:
        yield started


@pytest.fixture
def slack() -> Iterator[SlackReceiver]:
    with running(SlackReceiver(SLACK_TOKEN)) as started:
        assert isinstance(started, SlackReceiver)
        yield started


def http_notifier(url: str, **entry: object) -> Notifier:
    webhooks = parse_webhooks([{"event": "apply", "kind": "http", "url": url, "secret": SIGNING_SECRET, **entry}])
    return Notifier(webhooks, retry=FAST)


def dead_port() -> int:
    """A port of 127.0.0.1 nothing listens on (connections to it are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --- the webhooks: config ------------------------------------------------------------------------


def test_atlantis_webhooks_config_reads_unchanged() -> None:
    webhooks = parse_webhooks([
        {"event": "apply", "kind": "slack", "channel": "C0123456789", "workspace-regex": "prod.*",
         "branch-regex": "^main$"},
        {"event": "apply", "kind": "http", "url": "https://hooks.example.com/atlas"},
    ])
    slack_hook, http_hook = webhooks
    assert (slack_hook.kind, slack_hook.channel, slack_hook.workspace_regex, slack_hook.branch_regex) == (
        "slack", "C0123456789", "prod.*", "^main$",
    )
    assert http_hook.kind == "http" and http_hook.url.get_secret_value() == "https://hooks.example.com/atlas"
    assert http_hook.secret is None


def test_underscored_regex_keys_and_atlas_events_are_read() -> None:
    (hook,) = parse_webhooks([{"event": "drift", "kind": "slack", "channel": "#infra", "workspace_regex": "prod"}])
    assert hook.event is WebhookEvent.DRIFT and hook.channel == "infra" and hook.workspace_regex == "prod"
    (hook,) = parse_webhooks([{"event": "remediation", "kind": "http", "url": "http://localhost:9/x"}])
    assert hook.event is WebhookEvent.REMEDIATION


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"event": "apply", "kind": "teams", "channel": "x"},
         'webhooks[0].kind: unknown kind "teams"; known: slack, http'),
        ({"event": "plan", "kind": "slack", "channel": "x"},
         'webhooks[0].event: unknown event "plan"; known: apply, drift, remediation'),
        ({"kind": "slack", "channel": "x"}, "webhooks[0].event: is required"),
        ({"event": "apply", "kind": "slack"}, "webhooks[0].channel: is required"),
        ({"event": "apply", "kind": "http"}, "webhooks[0].url: is required"),
        ({"event": "apply", "kind": "http", "url": "ftp://x/y"}, "webhooks[0].url: must be an http(s) URL"),
        ({"event": "apply", "kind": "slack", "channel": "x", "url": "https://x"},
         "webhooks[0].url: applies only to http webhooks, not slack ones"),
        ({"event": "apply", "kind": "slack", "channel": "x", "chanel": "y"}, "webhooks[0].chanel: unknown key"),
        ({"event": "apply", "kind": "slack", "channel": "x", "workspace-regex": "("},
         'webhooks[0].workspace-regex: "(" is not a valid regex'),
        ({"event": "apply", "kind": "slack", "channel": "x", "branch-regex": "a", "branch_regex": "b"},
         "webhooks[0].branch_regex: is given twice"),
        ({"event": "apply", "kind": "http", "url": "https://x", "headers": {"X-Atlas-Delivery": "1"}},
         "webhooks[0].headers.X-Atlas-Delivery: atlas sets X-Atlas-Delivery itself"),
        ({"event": "apply", "kind": "http", "url": "https://x", "headers": {"X-Team": "a\r\nX-Evil: 1"}},
         "webhooks[0].headers.X-Team: must not contain line breaks"),
    ],
)
def test_a_wrong_webhook_is_refused_with_its_key_path(entry: dict[str, object], message: str) -> None:
    with pytest.raises(WebhookConfigError) as refused:
        parse_webhooks([entry])
    assert str(refused.value).startswith(message)


def test_webhooks_must_be_a_list() -> None:
    with pytest.raises(WebhookConfigError, match="webhooks: must be a list"):
        parse_webhooks({"event": "apply"})
    assert parse_webhooks(None) == ()


def test_atlantis_webhook_http_headers_flag_value_is_read() -> None:
    headers = parse_http_headers('{"Authorization":"Bearer some-token","X-Custom-Header":["value1","value2"]}')
    assert headers == (("Authorization", ("Bearer some-token",)), ("X-Custom-Header", ("value1", "value2")))
    with pytest.raises(WebhookConfigError, match="webhook-http-headers: is not valid JSON"):
        parse_http_headers("{nope")


def test_a_slack_webhook_without_a_slack_token_is_refused() -> None:
    webhooks = parse_webhooks([{"event": "apply", "kind": "slack", "channel": "C1"}])
    with pytest.raises(WebhookConfigError, match=r"webhooks\[0\]: a slack webhook needs --slack-token"):
        Notifier(webhooks)


# --- filters ---------------------------------------------------------------------------------------


def test_webhooks_are_chosen_by_event_workspace_and_base_branch() -> None:
    webhooks = parse_webhooks([
        {"event": "apply", "kind": "http", "url": "http://h/all"},
        {"event": "apply", "kind": "http", "url": "http://h/prod", "workspace-regex": "prod"},
        {"event": "apply", "kind": "http", "url": "http://h/release", "branch-regex": "^release/"},
        {"event": "drift", "kind": "http", "url": "http://h/drift"},
    ])

    def targets(notification: ApplyNotification) -> list[str]:
        return [hook.label for hook, _ in matching_webhooks(webhooks, notification)]

    assert targets(apply_result(workspace="default", base="main")) == ["webhooks[0] (http, host h)"]
    # Unanchored, as Atlantis matches with Go's MatchString: "prod" matches "eu-prod-1".
    assert targets(apply_result(workspace="eu-prod-1", base="main")) == [
        "webhooks[0] (http, host h)", "webhooks[1] (http, host h)",
    ]
    assert targets(apply_result(workspace="default", base="release/2.0")) == [
        "webhooks[0] (http, host h)", "webhooks[2] (http, host h)",
    ]


def test_a_drift_check_reports_only_the_projects_in_matching_workspaces() -> None:
    webhooks = parse_webhooks([
        {"event": "drift", "kind": "http", "url": "http://h/prod", "workspace-regex": "^prod$"},
        {"event": "drift", "kind": "http", "url": "http://h/stage", "workspace-regex": "^stage$"},
    ])
    ((_, sent),) = matching_webhooks(webhooks, drift_check())
    assert isinstance(sent, DriftNotification)
    assert [item.project.workspace for item in sent.projects] == ["prod"]


# --- HTTP webhooks -----------------------------------------------------------------------------------


def test_an_apply_is_posted_as_signed_json(receiver: WebhookReceiver) -> None:
    notifier = http_notifier(f"{receiver.url}/hooks", headers={"X-Team": "platform"})
    assert notifier.notify(apply_result()) == 1
    assert notifier.flush(10)
    (request,) = receiver.received()

    assert request.path == "/hooks"
    assert request.headers["content-type"] == "application/json"
    assert verify_signature(request.body, request.headers[SIGNATURE_HEADER.lower()], SIGNING_SECRET)
    assert not verify_signature(request.body, request.headers[SIGNATURE_HEADER.lower()], "another secret")
    assert not verify_signature(request.body + b" ", request.headers[SIGNATURE_HEADER.lower()], SIGNING_SECRET)
    assert request.headers["x-atlas-event"] == "apply"
    assert request.headers["x-team"] == "platform"
    body = request.json()
    assert body["delivery_id"] == request.headers["x-atlas-delivery"]
    assert body["event"] == "apply" and body["schema_version"] == 1 and body["sent_at"].endswith("Z")
    assert body["repo"]["full_name"] == "acme/infra"
    assert body["pull"]["number"] == 42 and body["pull"]["base_branch"] == "main"
    assert body["project"] == {"dir": "envs/prod", "workspace": "default", "name": "prod"}
    assert (body["user"], body["success"], body["result"]) == ("alice", True, "success")
    assert body["url"] == "https://atlas.example.com/jobs/7"
    assert body["summary"].startswith("Apply complete!")
    # Atlantis's ApplyResult fields, for receivers written for Atlantis.
    assert body["Repo"]["FullName"] == "acme/infra" and body["Pull"]["Num"] == 42
    assert (body["Workspace"], body["Directory"], body["ProjectName"], body["Success"]) == (
        "default", "envs/prod", "prod", True,
    )
    assert body["User"]["Username"] == "alice"
    notifier.close()


def test_headers_from_the_webhook_http_headers_flag_go_with_every_http_webhook(receiver: WebhookReceiver) -> None:
    webhooks = parse_webhooks([{"event": "apply", "kind": "http", "url": receiver.url}])
    notifier = Notifier(webhooks, http_headers=parse_http_headers('{"Authorization": "Bearer t0ken-for-receiver"}'),
                        retry=FAST)
    notifier.notify(apply_result())
    assert notifier.flush(10)
    (request,) = receiver.received()
    assert request.headers["authorization"] == "Bearer t0ken-for-receiver"
    assert SIGNATURE_HEADER.lower() not in request.headers  # no secret configured: unsigned, as Atlantis sends
    notifier.close()


def test_drift_and_remediation_bodies(receiver: WebhookReceiver) -> None:
    webhooks = parse_webhooks([
        {"event": "drift", "kind": "http", "url": receiver.url},
        {"event": "remediation", "kind": "http", "url": receiver.url},
    ])
    notifier = Notifier(webhooks, retry=FAST)
    notifier.notify(drift_check())
    notifier.notify(RemediationNotification(
        repo=RepoRef(full_name="acme/infra"), branch="main", project=ProjectRef(dir="envs/prod", workspace="prod"),
        action="apply", success=True, summary="Apply complete! Resources: 0 added, 2 changed, 0 destroyed.",
    ))
    assert notifier.flush(10)
    drift, remediation = (request.json() for request in receiver.received())
    assert drift["event"] == "drift" and drift["projects_with_drift"] == 1 and drift["total_projects"] == 2
    assert drift["projects"][0] == {
        "dir": "envs/prod", "workspace": "prod", "name": None, "has_drift": True, "to_add": 0, "to_change": 2,
        "to_destroy": 0, "summary": "Plan: 0 to add, 2 to change, 0 to destroy.", "error": None,
    }
    assert remediation["event"] == "remediation" and remediation["action"] == "apply"
    assert remediation["result"] == "success" and remediation["project"]["workspace"] == "prod"
    notifier.close()


def test_a_failing_receiver_is_retried_with_the_same_delivery(caplog: pytest.LogCaptureFixture) -> None:
    with running(WebhookReceiver(statuses=[500, 503])) as receiver:
        notifier = http_notifier(receiver.url)
        with caplog.at_level(logging.INFO, logger="atlas.notify"):
            notifier.notify(apply_result())
            assert notifier.flush(10)
        requests = receiver.received()
        assert len(requests) == 3
        assert len({request.headers["x-atlas-delivery"] for request in requests}) == 1
        assert len({request.body for request in requests}) == 1
        assert "HTTP 500" in caplog.text and "trying again" in caplog.text
        assert "sent apply notification to webhooks[0] (http, host 127.0.0.1)" in caplog.text
        notifier.close()


def test_retries_are_bounded_and_a_client_error_is_not_retried(caplog: pytest.LogCaptureFixture) -> None:
    with running(WebhookReceiver(statuses=[500, 500, 500, 500])) as failing, \
            running(WebhookReceiver(statuses=[404])) as missing:
        webhooks = parse_webhooks([
            {"event": "apply", "kind": "http", "url": failing.url},
            {"event": "apply", "kind": "http", "url": missing.url},
        ])
        notifier = Notifier(webhooks, retry=FAST)
        with caplog.at_level(logging.INFO, logger="atlas.notify"):
            notifier.notify(apply_result())
            assert notifier.flush(10)
        assert len(failing.received()) == FAST.attempts
        assert len(missing.received()) == 1
        assert "giving up after 3 attempts" in caplog.text
        assert "HTTP 404" in caplog.text
        notifier.close()


@pytest.mark.parametrize("status", [302, 307])
def test_a_redirect_is_not_followed(status: int, caplog: pytest.LogCaptureFixture) -> None:
    with running(WebhookReceiver(statuses=[status])) as receiver:
        notifier = http_notifier(receiver.url, headers={"Authorization": "Bearer only-for-this-receiver"})
        with caplog.at_level(logging.INFO, logger="atlas.notify"):
            notifier.notify(apply_result())
            assert notifier.flush(10)
        assert [request.path for request in receiver.received()] == ["/"]
        assert f"failed (HTTP {status}" in caplog.text and "giving up" in caplog.text
        notifier.close()


def test_a_dead_receiver_never_raises_and_its_log_holds_no_secret(caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{dead_port()}/hook/s3cr3t-path-token?key=query-secret-value"
    notifier = http_notifier(url, headers={"Authorization": "Bearer header-secret-value"})
    with caplog.at_level(logging.INFO, logger="atlas.notify"):
        assert notifier.notify(apply_result()) == 1
        assert notifier.flush(10)
    assert "connection refused" in caplog.text
    assert "giving up after 3 attempts" in caplog.text
    for secret in ("s3cr3t-path-token", "query-secret-value", "header-secret-value", SIGNING_SECRET):
        assert secret not in caplog.text
    notifier.close()


def test_notify_returns_while_the_receiver_is_still_answering(receiver: WebhookReceiver) -> None:
    receiver.hold.clear()
    notifier = http_notifier(receiver.url)
    assert notifier.notify(apply_result()) == 1  # returns although the receiver has not answered
    wait_for(receiver.holding.is_set, 10, "the receiver to hold the delivery")
    assert receiver.received() == []
    receiver.hold.set()
    assert notifier.flush(10)
    assert len(receiver.received()) == 1
    notifier.close()


def test_a_full_queue_drops_new_deliveries_with_a_warning(
    receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.hold.clear()
    webhooks = parse_webhooks([{"event": "apply", "kind": "http", "url": receiver.url}])
    notifier = Notifier(webhooks, retry=FAST, max_pending=1)
    with caplog.at_level(logging.WARNING, logger="atlas.notify"):
        assert notifier.notify(apply_result()) == 1
        assert notifier.notify(apply_result()) == 0
    assert "dropped a apply notification" in caplog.text
    receiver.hold.set()
    assert notifier.flush(10)
    assert len(receiver.received()) == 1
    notifier.close()


def test_a_notification_after_close_is_not_sent_and_does_not_raise(receiver: WebhookReceiver) -> None:
    notifier = http_notifier(receiver.url)
    notifier.close()
    assert notifier.notify(apply_result()) == 0
    assert receiver.received() == []


# --- Slack ---------------------------------------------------------------------------------------------


def slack_notifier(slack: SlackReceiver, *, token: str = SLACK_TOKEN, event: str = "apply") -> Notifier:
    webhooks = parse_webhooks([{"event": event, "kind": "slack", "channel": "C0INFRA"}])
    return Notifier(webhooks, slack_token=token, slack_base_url=slack.api_url, retry=FAST)


def test_an_apply_is_posted_to_slack_with_its_result(slack: SlackReceiver) -> None:
    notifier = slack_notifier(slack)
    notifier.notify(apply_result(success=False))
    assert notifier.flush(10)
    (request,) = slack.received()
    assert request.headers["authorization"] == f"Bearer {SLACK_TOKEN}"
    (message,) = slack.messages
    assert message["channel"] == "C0INFRA"
    assert message["text"] == "Apply failed for prod in acme/infra#42 by alice"
    (attachment,) = message["attachments"]
    assert attachment["color"] == "danger"
    assert attachment["text"] == "<https://atlas.example.com/jobs/7|Apply output>"
    fields = {field["title"]: field["value"] for field in attachment["fields"]}
    assert fields["Repository"] == "<https://github.com/acme/infra|acme/infra>"
    assert fields["Pull request"] == "<https://github.com/acme/infra/pull/42|#42 Add a bucket>"
    assert (fields["Directory"], fields["Workspace"], fields["Branch"]) == ("envs/prod", "default", "main")
    assert (fields["User"], fields["Result"], fields["Summary"]) == ("alice", "failure", "Error: boom")
    notifier.close()


def test_a_drift_check_is_posted_to_slack(slack: SlackReceiver) -> None:
    notifier = slack_notifier(slack, event="drift")
    notifier.notify(drift_check())
    assert notifier.flush(10)
    (message,) = slack.messages
    assert message["text"] == "Drift detected in acme/infra: 1 of 2 projects"
    fields = {field["title"]: field["value"] for field in message["attachments"][0]["fields"]}
    assert fields["Projects with drift"] == "1"
    assert fields["envs/prod (workspace prod)"] == "Plan: 0 to add, 2 to change, 0 to destroy."


def test_slack_rate_limits_and_errors_are_retried() -> None:
    with running(SlackReceiver(SLACK_TOKEN, errors=["ratelimited", "internal_error"])) as slack:
        assert isinstance(slack, SlackReceiver)
        notifier = slack_notifier(slack)
        notifier.notify(apply_result())
        assert notifier.flush(10)
        assert len(slack.received()) == 3
        assert len(slack.messages) == 1
        notifier.close()


def test_a_wrong_slack_token_is_logged_once_without_the_token(
    slack: SlackReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "xoxb-9999-wrong-token-value"
    notifier = slack_notifier(slack, token=wrong)
    with caplog.at_level(logging.DEBUG):
        notifier.notify(apply_result())
        assert notifier.flush(10)
    assert len(slack.received()) == 1  # invalid_auth: trying again cannot help
    assert "failed (Slack answered invalid_auth); giving up" in caplog.text
    assert wrong not in caplog.text
    notifier.close()


def test_a_dead_slack_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    webhooks = parse_webhooks([{"event": "apply", "kind": "slack", "channel": "C0INFRA"}])
    notifier = Notifier(webhooks, slack_token=SLACK_TOKEN, slack_base_url=f"http://127.0.0.1:{dead_port()}/api/",
                        retry=FAST)
    with caplog.at_level(logging.DEBUG):
        notifier.notify(apply_result())
        assert notifier.flush(10)
    assert "giving up after 3 attempts" in caplog.text
    assert SLACK_TOKEN not in caplog.text
    notifier.close()


def test_the_notify_package_imports_only_stdlib_pydantic_slack_sdk_and_logs() -> None:
    import ast
    import sys
    from pathlib import Path

    import atlas.notify

    allowed = {"pydantic", "slack_sdk", "atlas.logs", "__future__"}
    for file in Path(atlas.notify.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(file.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
                [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            )
            for name in names:
                top = name.split(".")[0]
                ok = top in sys.stdlib_module_names or top in allowed or name in allowed
                ok = ok or name.startswith("atlas.notify")
                assert ok, f"{file.name} imports {name}"
