"""The HMAC-SHA256 signature of an http webhook's body, as a receiver checks it.

atlas sends `X-Atlas-Signature-256: sha256=<hex>`, the HMAC-SHA256 of the exact body bytes keyed
with the webhook's `secret` (the scheme GitHub uses for its own webhooks, so the same receiver code
works). A receiver recomputes it over the raw body, before parsing it, and compares in constant time.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Atlas-Signature-256"
DELIVERY_HEADER = "X-Atlas-Delivery"
"""A UUID per delivery (the same on each retry of it), also the body's `delivery_id`."""
TIMESTAMP_HEADER = "X-Atlas-Timestamp"
"""Unix seconds when the delivery was first made, also the body's `sent_at`."""
EVENT_HEADER = "X-Atlas-Event"
"""apply, drift or remediation."""

_PREFIX = "sha256="


def signature(body: bytes, secret: str) -> str:
    """The value of `X-Atlas-Signature-256` for `body`: `sha256=` and the hex HMAC-SHA256."""
    return _PREFIX + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, header: str | None, secret: str) -> bool:
    """Whether `header` is the signature of `body` with `secret`, compared in constant time."""
    if not header or not header.startswith(_PREFIX):
        return False
    return hmac.compare_digest(header.encode("ascii", "replace"), signature(body, secret).encode("ascii"))
