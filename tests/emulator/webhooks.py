"""Delivering webhooks to atlas the way GitHub does: same headers, signature over the exact bytes."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any
from urllib.parse import quote_plus

import requests

USER_AGENT = "GitHub-Hookshot/044aadd"
"""GitHub's deliveries always come from `GitHub-Hookshot/<build>`; this build is from the docs."""

HOOK_ID = 292430182
"""The webhook id in GitHub's documented example delivery."""


def sign(body: bytes, secret: str) -> str:
    """`X-Hub-Signature-256` for `body`: `sha256=` and the hex HMAC-SHA256 keyed with `secret`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def sign_sha1(body: bytes, secret: str) -> str:
    """The legacy `X-Hub-Signature` (`sha1=…`) GitHub still sends next to the sha256 one."""
    return "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


def encode(payload: dict[str, Any] | bytes, form_encoded: bool = False) -> tuple[bytes, str]:
    """The request body GitHub would send for `payload`, and its content type."""
    data = payload if isinstance(payload, bytes) else json.dumps(payload, separators=(",", ":")).encode()
    if form_encoded:
        return b"payload=" + quote_plus(data).encode(), "application/x-www-form-urlencoded"
    return data, "application/json"


def deliver(
    url: str,
    event: str,
    payload: dict[str, Any] | bytes,
    secret: str | None = None,
    delivery_id: str | None = None,
    form_encoded: bool = False,
    timeout: float = 30,
) -> requests.Response:
    """POST one delivery to `url`; the signature covers exactly the bytes sent."""
    body, content_type = encode(payload, form_encoded)
    target_id = ""
    if isinstance(payload, dict) and isinstance(payload.get("repository"), dict):
        target_id = str(payload["repository"].get("id", ""))
    headers = {
        "User-Agent": USER_AGENT,
        "Content-Type": content_type,
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery_id or str(uuid.uuid1()),
        "X-GitHub-Hook-ID": str(HOOK_ID),
        "X-GitHub-Hook-Installation-Target-Type": "repository",
        "X-GitHub-Hook-Installation-Target-ID": target_id,
    }
    if secret is not None:
        headers["X-Hub-Signature"] = sign_sha1(body, secret)
        headers["X-Hub-Signature-256"] = sign(body, secret)
    return requests.post(url, data=body, headers=headers, timeout=timeout)
