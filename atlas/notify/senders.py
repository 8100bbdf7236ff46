"""Sending one delivery: a JSON POST for an http webhook, `chat.postMessage` for a Slack one.

A sender never raises: it says whether the delivery arrived, may succeed if tried again (a timeout,
a refused connection, an HTTP 5xx, 408 or 429, Slack's `ratelimited` or a server error), or never
will (another HTTP 4xx, a Slack error such as `invalid_auth` or `channel_not_found`), with a reason
that holds no secret.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from atlas.notify.config import HeaderValues, HttpWebhook, SlackWebhook
from atlas.notify.events import Notification, envelope
from atlas.notify.messages import slack_message
from atlas.notify.signing import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, signature

SLACK_API_URL = "https://slack.com/api/"
DEFAULT_TIMEOUT = 5.0
"""Seconds one attempt may take, connecting and reading together."""
USER_AGENT = "atlas-webhooks"

PERMANENT_SLACK_ERRORS = frozenset({
    "invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired", "no_permission",
    "missing_scope", "channel_not_found", "not_in_channel", "is_archived", "msg_too_long", "no_text",
    "invalid_arguments", "invalid_blocks", "invalid_attachments", "restricted_action", "team_access_not_granted",
})
"""Slack errors that another try cannot cure; every other `ok: false` is retried."""

RETRYABLE_HTTP = frozenset({408, 425, 429})


class Outcome(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    """Failed, and may succeed when tried again."""
    FAILED = "failed"
    """Failed, and trying again would fail the same way."""


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    reason: str = ""


@dataclass(frozen=True)
class Delivery:
    """One notification for one webhook; its id and time stay the same on every retry."""

    webhook: SlackWebhook | HttpWebhook
    notification: Notification
    delivery_id: str
    created: datetime


class Sender(Protocol):
    def send(self, delivery: Delivery) -> SendResult: ...


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is answered as a failure: following it would send the body and headers to another URL."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


class HttpSender:
    """POSTs the delivery's JSON body, signed when the webhook has a secret, with the configured headers.

    Redirects are not followed (a 3xx is a failure, not retried): the configured headers may carry
    credentials meant for the configured receiver only.
    """

    def __init__(
        self, *, headers: Sequence[tuple[str, HeaderValues]] = (), timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.headers = tuple(headers)
        self.timeout = timeout
        self.opener = urllib.request.build_opener(_RefuseRedirects)

    def request(self, delivery: Delivery) -> urllib.request.Request:
        """The request for a delivery: body bytes as signed, atlas's headers, then the configured ones."""
        webhook = delivery.webhook
        assert isinstance(webhook, HttpWebhook)
        body = json.dumps(
            envelope(delivery.notification, delivery.delivery_id, delivery.created), separators=(",", ":")
        ).encode("utf-8")
        request = urllib.request.Request(webhook.url.get_secret_value(), data=body, method="POST")
        request.add_header("Content-Type", "application/json")
        request.add_header("User-Agent", USER_AGENT)
        request.add_header(EVENT_HEADER, delivery.notification.event.value)
        request.add_header(DELIVERY_HEADER, delivery.delivery_id)
        request.add_header(TIMESTAMP_HEADER, str(int(delivery.created.timestamp())))
        if webhook.secret is not None:
            request.add_header(SIGNATURE_HEADER, signature(body, webhook.secret.get_secret_value()))
        for name, values in (*self.headers, *webhook.headers):
            # urllib sends one line per header name; repeated values join as RFC 9110 allows.
            request.add_header(name, ", ".join(values))
        return request

    def send(self, delivery: Delivery) -> SendResult:
        try:
            with self.opener.open(self.request(delivery), timeout=self.timeout) as response:
                response.read(64 * 1024)
                return SendResult(Outcome.DELIVERED, f"HTTP {response.status}")
        except Exception as error:  # a sender must never raise into the notifier
            return _transport_failure(error)


class SlackSender:
    """Posts the delivery's message with Slack's Web API (`chat.postMessage`) through the official client."""

    def __init__(self, token: str, *, base_url: str = SLACK_API_URL, timeout: float = DEFAULT_TIMEOUT) -> None:
        # slack_sdk logs each request with its headers (the token) at debug: keep its logger above that.
        client_log = logging.getLogger("atlas.notify.slack_client")
        client_log.setLevel(logging.INFO)
        self.client = WebClient(
            token=token,
            base_url=base_url if base_url.endswith("/") else base_url + "/",
            timeout=max(1, round(timeout)),
            logger=client_log,
            retry_handlers=[],  # the notifier retries, with its own bounds and backoff
        )

    def send(self, delivery: Delivery) -> SendResult:
        webhook = delivery.webhook
        assert isinstance(webhook, SlackWebhook)
        message = slack_message(delivery.notification)
        try:
            response = self.client.chat_postMessage(
                channel=webhook.channel, text=message.text, attachments=list(message.attachments)
            )
        except SlackApiError as error:
            code = str(error.response.get("error") or f"HTTP {error.response.status_code}")
            status = error.response.status_code
            retry = code not in PERMANENT_SLACK_ERRORS and (status >= 500 or status in RETRYABLE_HTTP or status == 200)
            return SendResult(Outcome.RETRY if retry else Outcome.FAILED, f"Slack answered {code}")
        except Exception as error:  # a sender must never raise into the notifier
            return _transport_failure(error)
        return SendResult(Outcome.DELIVERED, f"Slack message {response.get('ts', '')}".strip())


def _transport_failure(error: Exception) -> SendResult:
    """What a failure to reach the receiver means: retry what may pass later, give up on the rest."""
    if isinstance(error, urllib.error.HTTPError):
        status = error.code
        error.close()
        retry = status >= 500 or status in RETRYABLE_HTTP
        return SendResult(Outcome.RETRY if retry else Outcome.FAILED, f"HTTP {status} {error.reason}")
    if isinstance(error, urllib.error.URLError):
        return SendResult(Outcome.RETRY, _reason(error.reason))
    if isinstance(error, OSError):  # timeouts included
        return SendResult(Outcome.RETRY, _reason(error))
    return SendResult(Outcome.FAILED, f"unexpected {type(error).__name__}")


def _reason(reason: object) -> str:
    """An I/O failure as a short phrase: the OS's words, never a URL (it may hold a token)."""
    if isinstance(reason, TimeoutError):
        return "timed out"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror.lower()
    text = str(reason)
    return text if text and "://" not in text else type(reason).__name__
