"""Sending notifications off the caller's path: filter, queue, deliver, retry with backoff, log.

`Notifier.notify()` picks the webhooks whose event and regexes match, queues one delivery for each
and returns at once; it never raises and never waits on a receiver. One background thread sends the
deliveries. A failed one that may succeed later is tried again after a backoff (0.5 s, 1 s, 2 s …,
capped), up to `RetryPolicy.attempts` tries in all, without holding up the deliveries behind it;
then it is logged as given up. At most `max_pending` deliveries wait at once: past that a new one is
dropped with a warning, so a dead receiver can never grow atlas's memory. Logs name the webhook by
its index and host or channel, never its URL, token, secret or headers.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from atlas.logs import redact
from atlas.notify.config import HeaderValues, HttpWebhook, SlackWebhook, WebhookConfigError, webhook_secrets
from atlas.notify.events import DriftNotification, Notification
from atlas.notify.senders import (
    DEFAULT_TIMEOUT,
    SLACK_API_URL,
    Delivery,
    HttpSender,
    Outcome,
    Sender,
    SlackSender,
)

log = logging.getLogger("atlas.notify")

DEFAULT_MAX_PENDING = 1000


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a failing delivery is tried."""

    attempts: int = 4
    """Tries in all, the first included."""
    backoff: float = 0.5
    """Seconds before the second try; each later wait doubles, up to `max_backoff`."""
    max_backoff: float = 30.0
    timeout: float = DEFAULT_TIMEOUT
    """Seconds one try may take."""

    def delay(self, failed_attempts: int) -> float:
        return float(min(self.max_backoff, self.backoff * 2 ** (failed_attempts - 1)))


def matching_webhooks(
    webhooks: Iterable[SlackWebhook | HttpWebhook], notification: Notification
) -> list[tuple[SlackWebhook | HttpWebhook, Notification]]:
    """Each webhook that `notification` is sent to, with what it is sent: its event, workspace and branch match.

    A drift check is sent when its branch matches and any of its projects' workspaces does, reporting
    only the projects whose workspace matches.
    """
    matched: list[tuple[SlackWebhook | HttpWebhook, Notification]] = []
    for webhook in webhooks:
        if webhook.event is not notification.event:
            continue
        if not webhook.matches(None, notification.branch):
            continue
        workspaces = {workspace for workspace in notification.workspaces if webhook.matches(workspace, None)}
        if not workspaces:
            continue
        if isinstance(notification, DriftNotification):
            matched.append((webhook, notification.only_workspaces(workspaces)))
        else:
            matched.append((webhook, notification))
    return matched


class Notifier:
    """Sends notifications to the configured webhooks from a background thread; see the module docstring."""

    def __init__(
        self,
        webhooks: Sequence[SlackWebhook | HttpWebhook],
        *,
        slack_token: str | None = None,
        slack_base_url: str = SLACK_API_URL,
        http_headers: Sequence[tuple[str, HeaderValues]] = (),
        retry: RetryPolicy | None = None,
        max_pending: int = DEFAULT_MAX_PENDING,
        secrets: Iterable[str] = (),
    ) -> None:
        """WebhookConfigError when a Slack webhook is configured without `slack_token` (`--slack-token`)."""
        self.webhooks = tuple(webhooks)
        self.retry = retry or RetryPolicy()
        self.max_pending = max_pending
        slack = [webhook for webhook in self.webhooks if isinstance(webhook, SlackWebhook)]
        if slack and not slack_token:
            raise WebhookConfigError(
                f"webhooks[{slack[0].index}]",
                "a slack webhook needs --slack-token (ATLAS_SLACK_TOKEN), the Slack bot's OAuth token",
            )
        self._senders: dict[str, Sender] = {"http": HttpSender(headers=http_headers, timeout=self.retry.timeout)}
        if slack_token:
            self._senders["slack"] = SlackSender(slack_token, base_url=slack_base_url, timeout=self.retry.timeout)
        self._secrets = [
            *(secret for secret in secrets if secret),
            *([slack_token] if slack_token else []),
            *webhook_secrets(self.webhooks),
            *(value for _, values in http_headers for value in values),
        ]
        self._due: list[tuple[float, int, int, Delivery]] = []
        """(when, tie-breaker, attempts made, delivery), a heap ordered by when."""
        self._order = itertools.count()
        self._busy = 0
        self._closed = False
        self._lock = threading.Condition()
        self._thread: threading.Thread | None = None

    def notify(self, notification: Notification) -> int:
        """Queue `notification` for every matching webhook; the number queued. Never raises, never blocks on I/O."""
        try:
            return self._enqueue(notification)
        except Exception:  # a notification must never fail what it reports on
            log.exception("could not queue a %s notification", getattr(notification, "event", "?"))
            return 0

    def flush(self, timeout: float) -> bool:
        """Wait until every queued delivery has been delivered or given up; False if `timeout` passed first."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._due or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(remaining)
        return True

    def close(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Stop taking notifications, give queued ones up to `timeout` to go, then stop the thread."""
        self.flush(timeout)
        with self._lock:
            self._closed = True
            dropped = len(self._due)
            self._due.clear()
            self._lock.notify_all()
        if dropped:
            log.warning("stopped with %d webhook deliveries unsent", dropped)
        if self._thread is not None:
            self._thread.join(timeout)

    def _enqueue(self, notification: Notification) -> int:
        queued = 0
        for webhook, sent in matching_webhooks(self.webhooks, notification):
            delivery = Delivery(webhook, sent, str(uuid.uuid4()), datetime.now(UTC))
            with self._lock:
                if self._closed:
                    log.warning("notifier stopped: not sending %s to %s", sent.event, webhook.label)
                    continue
                if len(self._due) + self._busy >= self.max_pending:
                    log.warning(
                        "dropped a %s notification for %s: %d deliveries already waiting",
                        sent.event, webhook.label, self.max_pending,
                    )
                    continue
                heapq.heappush(self._due, (time.monotonic(), next(self._order), 0, delivery))
                self._start()
                self._lock.notify_all()
            queued += 1
        return queued

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="atlas-notify", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._closed and (not self._due or self._due[0][0] > time.monotonic()):
                    self._lock.wait(self._due[0][0] - time.monotonic() if self._due else None)
                if self._closed:
                    return
                _, _, attempts, delivery = heapq.heappop(self._due)
                self._busy += 1
            try:
                self._attempt(delivery, attempts + 1)
            finally:
                with self._lock:
                    self._busy -= 1
                    self._lock.notify_all()

    def _attempt(self, delivery: Delivery, attempt: int) -> None:
        webhook = delivery.webhook
        event = delivery.notification.event
        sender = self._senders.get(webhook.kind.value)
        if sender is None:  # cannot happen: __init__ refuses slack webhooks without a token
            log.error("no sender for %s", webhook.label)
            return
        try:
            result = sender.send(delivery)
        except Exception as error:  # senders do not raise; this keeps the thread alive if one does
            log.error("sending %s to %s failed: unexpected %s", event, webhook.label, type(error).__name__)
            return
        reason = redact(result.reason, self._secrets)
        fields = {"webhook": webhook.label, "event": str(event), "delivery": delivery.delivery_id, "attempt": attempt}
        if result.outcome is Outcome.DELIVERED:
            log.info("sent %s notification to %s", event, webhook.label, extra=fields)
            return
        if result.outcome is Outcome.RETRY and attempt < self.retry.attempts:
            delay = self.retry.delay(attempt)
            log.warning(
                "sending %s to %s failed (%s); trying again in %g s (attempt %d of %d)",
                event, webhook.label, reason, delay, attempt, self.retry.attempts, extra=fields,
            )
            with self._lock:
                if not self._closed:
                    heapq.heappush(self._due, (time.monotonic() + delay, next(self._order), attempt, delivery))
                    self._lock.notify_all()
            return
        why = "giving up" if result.outcome is Outcome.FAILED else f"giving up after {attempt} attempts"
        log.error("sending %s to %s failed (%s); %s", event, webhook.label, reason, why, extra=fields)
