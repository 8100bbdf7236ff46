"""The server config's `webhooks:` list, as Atlantis writes it, validated into `Webhook` models.

Atlantis's keys: `event` (Atlantis sends `apply`; atlas adds `drift` and `remediation`), `kind`
(`slack` or `http`), `channel` (slack), `url` (http), `workspace-regex` and `branch-regex`
(Atlantis's spelling; `workspace_regex` and `branch_regex` are read the same). atlas adds, for http
webhooks only, `secret` (the key their HMAC-SHA256 signature is made with) and `headers` (extra
request headers, as Atlantis's `--webhook-http-headers` gives them for every http webhook).

`parse_webhooks()` is a pure function of the written data: every problem is a `WebhookConfigError`
whose message names the key path (`webhooks[1].kind`) and says what is wrong.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Annotated, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class WebhookConfigError(ValueError):
    """A `webhooks:` entry is wrong; str() is one line: `KEY.PATH: PROBLEM`."""

    def __init__(self, key_path: str, problem: str) -> None:
        super().__init__(f"{key_path}: {problem}")
        self.key_path = key_path
        self.problem = problem


class WebhookEvent(StrEnum):
    """What a webhook is sent for."""

    APPLY = "apply"
    """After each project's apply, with its result (Atlantis's only event)."""
    DRIFT = "drift"
    """After a drift check of a repository's projects, with what drifted (Atlantis names its drift event so too)."""
    REMEDIATION = "remediation"
    """After atlas remediates a drifted project (plans, or applies, the code to bring the state back)."""


class WebhookKind(StrEnum):
    SLACK = "slack"
    HTTP = "http"


HeaderValues = tuple[str, ...]
E = TypeVar("E", bound=StrEnum)

_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
"""RFC 9110's token: what a header name may be made of."""

_RESERVED_HEADERS = frozenset({"content-type", "content-length", "host", "user-agent"})
_OWN_HEADER_PREFIX = "x-atlas-"


class WebhookFilter(BaseModel):
    """The regexes Atlantis matches (unanchored, as Go's MatchString) against a project's workspace and base branch."""

    model_config = ConfigDict(frozen=True)

    workspace_regex: str = ""
    branch_regex: str = ""

    def matches(self, workspace: str | None, branch: str | None) -> bool:
        """Whether an event for `workspace` and base `branch` passes; an empty regex, or no value to test, passes."""
        for pattern, value in ((self.workspace_regex, workspace), (self.branch_regex, branch)):
            if pattern and value is not None and re.search(pattern, value) is None:
                return False
        return True


class SlackWebhook(WebhookFilter):
    """A Slack message to `channel` (an id such as C0123456789, or a name without '#')."""

    kind: Literal[WebhookKind.SLACK] = WebhookKind.SLACK
    index: int
    """Position in `webhooks:`, so that logs can name the entry."""
    event: WebhookEvent
    channel: str

    @property
    def label(self) -> str:
        """How logs name this webhook: never anything secret."""
        return f"webhooks[{self.index}] (slack, channel {self.channel})"


class HttpWebhook(WebhookFilter):
    """A JSON POST to `url`, signed with `secret` when one is set."""

    kind: Literal[WebhookKind.HTTP] = WebhookKind.HTTP
    index: int
    event: WebhookEvent
    url: SecretStr
    """Secret because receivers often carry a token in the URL (Slack's incoming webhooks do)."""
    secret: SecretStr | None = None
    headers: tuple[tuple[str, HeaderValues], ...] = ()

    @property
    def label(self) -> str:
        """How logs name this webhook: the receiver's host only, since its path or query may hold a token."""
        host = urlsplit(self.url.get_secret_value()).hostname or "?"
        return f"webhooks[{self.index}] (http, host {host})"


Webhook = Annotated[SlackWebhook | HttpWebhook, Field(discriminator="kind")]

_COMMON_KEYS = ("event", "kind", "workspace-regex", "branch-regex")
_KIND_KEYS: dict[WebhookKind, tuple[str, ...]] = {
    WebhookKind.SLACK: ("channel",),
    WebhookKind.HTTP: ("url", "secret", "headers"),
}
_ALIASES = {"workspace_regex": "workspace-regex", "branch_regex": "branch-regex"}


def parse_webhooks(raw: object, *, path: str = "webhooks") -> tuple[SlackWebhook | HttpWebhook, ...]:
    """The validated webhooks of a written `webhooks:` value (None: none); WebhookConfigError naming the key path."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise WebhookConfigError(path, "must be a list of webhooks, each with event, kind and channel or url")
    return tuple(_webhook(entry, index, f"{path}[{index}]") for index, entry in enumerate(raw))


def parse_http_headers(raw: object, *, path: str = "webhook-http-headers") -> tuple[tuple[str, HeaderValues], ...]:
    """Headers as Atlantis's `--webhook-http-headers` gives them: a JSON object (or its text) of name → value(s)."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as error:
            raise WebhookConfigError(path, f"is not valid JSON: {error.msg}") from None
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise WebhookConfigError(path, 'must be an object of header names to values, such as {"X-Team": "platform"}')
    headers: list[tuple[str, HeaderValues]] = []
    for name, value in raw.items():
        where = f"{path}.{name}"
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise WebhookConfigError(where, f"{json.dumps(str(name))} is not a valid header name")
        if name.lower() in _RESERVED_HEADERS or name.lower().startswith(_OWN_HEADER_PREFIX):
            raise WebhookConfigError(where, f"atlas sets {name} itself; it cannot be configured")
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(isinstance(item, str) for item in values) or not values:
            raise WebhookConfigError(where, "must be a string or a non-empty list of strings")
        for item in values:
            if "\r" in item or "\n" in item:
                raise WebhookConfigError(where, "must not contain line breaks")
        headers.append((name, tuple(values)))
    return tuple(headers)


def _webhook(entry: object, index: int, path: str) -> SlackWebhook | HttpWebhook:
    if not isinstance(entry, Mapping):
        raise WebhookConfigError(path, "must be a mapping with event, kind and channel or url")
    data: dict[str, object] = {}
    for key, value in entry.items():
        name = _ALIASES.get(str(key), str(key))
        if name in data:
            raise WebhookConfigError(f"{path}.{key}", f"is given twice (also as {name})")
        data[name] = value

    event = _choice(data, "event", WebhookEvent, path)
    kind = _choice(data, "kind", WebhookKind, path)
    allowed = (*_COMMON_KEYS, *_KIND_KEYS[kind])
    for key in data:
        if key not in allowed:
            other = next((k for k, keys in _KIND_KEYS.items() if key in keys), None)
            problem = (
                f"applies only to {other} webhooks, not {kind} ones"
                if other is not None
                else f"unknown key; {kind} webhooks take {', '.join(allowed)}"
            )
            raise WebhookConfigError(f"{path}.{key}", problem)
    workspace_regex = _regex(data, "workspace-regex", path)
    branch_regex = _regex(data, "branch-regex", path)
    if kind is WebhookKind.SLACK:
        channel = _text(data, "channel", path, required=True).lstrip("#")
        if not channel or any(char.isspace() for char in channel):
            raise WebhookConfigError(f"{path}.channel", "must be a Slack channel id or name, such as C0123456789")
        return SlackWebhook(
            index=index, event=event, channel=channel, workspace_regex=workspace_regex, branch_regex=branch_regex
        )
    url = _text(data, "url", path, required=True)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookConfigError(f"{path}.url", "must be an http(s) URL such as https://hooks.example.com/atlas")
    secret = _text(data, "secret", path, required=False)
    return HttpWebhook(
        index=index,
        event=event,
        url=SecretStr(url),
        secret=SecretStr(secret) if secret else None,
        headers=parse_http_headers(data.get("headers"), path=f"{path}.headers"),
        workspace_regex=workspace_regex,
        branch_regex=branch_regex,
    )


def _choice(data: Mapping[str, object], key: str, enum: type[E], path: str) -> E:
    value = data.get(key)
    known = ", ".join(member.value for member in enum)
    if value is None:
        raise WebhookConfigError(f"{path}.{key}", f"is required; one of {known}")
    try:
        return enum(str(value).strip().lower())
    except ValueError:
        raise WebhookConfigError(f"{path}.{key}", f"unknown {key} {json.dumps(str(value))}; known: {known}") from None


def _text(data: Mapping[str, object], key: str, path: str, *, required: bool) -> str:
    value = data.get(key)
    if value is None or value == "":
        if required:
            raise WebhookConfigError(f"{path}.{key}", "is required")
        return ""
    if not isinstance(value, str):
        raise WebhookConfigError(f"{path}.{key}", "must be a string")
    return value.strip()


def _regex(data: Mapping[str, object], key: str, path: str) -> str:
    pattern = _text(data, key, path, required=False)
    try:
        re.compile(pattern)
    except re.error as error:
        raise WebhookConfigError(f"{path}.{key}", f"{json.dumps(pattern)} is not a valid regex: {error}") from None
    return pattern


def webhook_secrets(webhooks: Sequence[SlackWebhook | HttpWebhook]) -> list[str]:
    """Every secret the webhooks hold (URLs, signing secrets, header values), to keep out of logs."""
    found: list[str] = []
    for webhook in webhooks:
        if isinstance(webhook, HttpWebhook):
            parts = urlsplit(webhook.url.get_secret_value())
            found += [part for part in (parts.path.strip("/"), parts.query, parts.password) if part and len(part) > 3]
            if webhook.secret is not None:
                found.append(webhook.secret.get_secret_value())
            found += [value for _, values in webhook.headers for value in values]
    return found
