"""Optional HTTP basic auth for atlas's pages, `/status` and `/metrics` (`--web-username`/`--web-password`).

Only the web blueprints are guarded: `/events` must stay reachable by GitHub (it has its own HMAC
check) and `/healthz` by load balancers. Use it behind TLS: basic auth sends the password in the
clear otherwise.
"""

from __future__ import annotations

import hmac

from flask import Response, request
from pydantic import SecretStr

REALM = "atlas"


class BasicAuth:
    """One username and password that every request to the web blueprints must carry."""

    def __init__(self, username: str, password: SecretStr) -> None:
        self.username = username
        self._password = password

    def __repr__(self) -> str:
        return f"BasicAuth(username={self.username!r})"

    def allows(self, username: str | None, password: str | None) -> bool:
        # Both compared every time, in constant time, so the answer's timing reveals neither.
        user_ok = hmac.compare_digest((username or "").encode(), self.username.encode())
        password_ok = hmac.compare_digest((password or "").encode(), self._password.get_secret_value().encode())
        return user_ok and password_ok

    def refusal(self) -> Response | None:
        """None when the current request carries the credentials, else the 401 that asks for them."""
        credentials = request.authorization
        if credentials is not None and credentials.type == "basic" and self.allows(
            credentials.username, credentials.password
        ):
            return None
        return Response(
            "This atlas server requires a username and password.\n",
            status=401,
            mimetype="text/plain",
            headers={"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'},
        )

    def user(self) -> str | None:
        """The username of the current, allowed request."""
        credentials = request.authorization
        return credentials.username if credentials is not None else None
