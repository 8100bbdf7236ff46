"""Cross-site request forgery protection for the pages' forms: a signed double-submit token.

Each browser gets a random token in an `HttpOnly`, `SameSite=Strict` cookie; forms carry an HMAC of
that token under the server's secret. A POST is accepted only when its form token is the HMAC of its
cookie: another site can make a browser send the cookie but cannot read it or compute the HMAC, and
a cookie planted from a sibling domain is useless without the secret.

The secret is derived from a random key kept in the data dir (`web-secret`, mode 0600), so tokens
stay valid across restarts and across the server's processes.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

KEY_FILE = "web-secret"
"""The random key's file in the data dir."""

COOKIE = "atlas_csrf"
"""The cookie holding a browser's token."""

FIELD = "csrf_token"
"""The form field holding the token's HMAC."""


def load_or_create_key(data_dir: Path) -> bytes:
    """The data dir's random web key, created (readable by the owner only) on first use."""
    path = data_dir / KEY_FILE
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    key = secrets.token_bytes(32)
    # Written aside and linked into place, so of several processes starting at once exactly one
    # key wins and nobody reads a half-written file.
    draft = path.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(key)
        os.link(draft, path)
    except FileExistsError:
        return path.read_bytes()
    finally:
        draft.unlink(missing_ok=True)
    return key


class CsrfTokens:
    """Issues browser tokens and checks the form tokens posted with them."""

    def __init__(self, key: bytes) -> None:
        self._secret = hmac.new(key, b"atlas web csrf", hashlib.sha256).digest()

    @staticmethod
    def new_cookie_token() -> str:
        return secrets.token_urlsafe(32)

    def form_token(self, cookie_token: str) -> str:
        """What a form posted by the browser holding `cookie_token` must carry."""
        return hmac.new(self._secret, cookie_token.encode(), hashlib.sha256).hexdigest()

    def valid(self, cookie_token: str | None, form_token: str | None) -> bool:
        if not cookie_token or not form_token:
            return False
        return hmac.compare_digest(self.form_token(cookie_token), form_token)
