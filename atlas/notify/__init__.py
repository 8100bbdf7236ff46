"""Notifications after applies, drift checks and remediations: Slack messages and signed HTTP webhooks.

Configured as Atlantis configures them, with the server config's `webhooks:` list
(`atlas.notify.config`); sent by a `Notifier` off the caller's path, with bounded retries
(`atlas.notify.notifier`). docs/notifications.md describes the keys and the bodies receivers get.
"""

from atlas.notify.config import (
    HttpWebhook,
    SlackWebhook,
    Webhook,
    WebhookConfigError,
    WebhookEvent,
    WebhookKind,
    parse_http_headers,
    parse_webhooks,
)
from atlas.notify.events import (
    ApplyNotification,
    DriftedProject,
    DriftNotification,
    Notification,
    ProjectRef,
    PullRef,
    RemediationNotification,
    RepoRef,
)
from atlas.notify.notifier import Notifier, RetryPolicy, matching_webhooks
from atlas.notify.signing import SIGNATURE_HEADER, signature, verify_signature

__all__ = [
    "SIGNATURE_HEADER",
    "ApplyNotification",
    "DriftNotification",
    "DriftedProject",
    "HttpWebhook",
    "Notification",
    "Notifier",
    "ProjectRef",
    "PullRef",
    "RemediationNotification",
    "RepoRef",
    "RetryPolicy",
    "SlackWebhook",
    "Webhook",
    "WebhookConfigError",
    "WebhookEvent",
    "WebhookKind",
    "matching_webhooks",
    "parse_http_headers",
    "parse_webhooks",
    "signature",
    "verify_signature",
]
