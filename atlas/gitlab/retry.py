"""Retrying GitLab requests the way GitLab asks, under python-gitlab.

python-gitlab's own retries are switched off (they retry every method on a 500, and sleep as
long as any rate limit says); instead atlas's `HostRetry` rules are mounted on the client's
session, with 429 as GitLab's only rate-limit answer, waited for after `Retry-After` or until
`RateLimit-Reset`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from urllib3.response import BaseHTTPResponse

from atlas.host_retry import (
    DEFAULT_BACKOFF_BASE,
    DEFAULT_MAX_BACKOFF,
    DEFAULT_MAX_RATE_LIMIT_WAIT,
    DEFAULT_MAX_RETRIES,
    HostRetry,
)

RATE_LIMITED = 429


class GitLabRetry(HostRetry):
    """`HostRetry` for GitLab (see the module docstring); mount it on python-gitlab's session."""

    HOST = "GitLab"
    RATE_LIMIT_STATUSES = frozenset({RATE_LIMITED})

    @classmethod
    def policy(
        cls,
        max_retries: int = DEFAULT_MAX_RETRIES,
        *,
        backoff_base: float = DEFAULT_BACKOFF_BASE,
        max_backoff: float = DEFAULT_MAX_BACKOFF,
        max_rate_limit_wait: float = DEFAULT_MAX_RATE_LIMIT_WAIT,
        sleep: Callable[[float], None] = time.sleep,
    ) -> GitLabRetry:
        return cls.rules(max_retries, backoff_base=backoff_base, max_backoff=max_backoff,
                         max_rate_limit_wait=max_rate_limit_wait, sleep=sleep)

    def requested_wait(self, response: BaseHTTPResponse) -> float | None:
        return requested_wait(response)


def requested_wait(response: BaseHTTPResponse, now: Callable[[], float] = time.time) -> float | None:
    """Seconds GitLab asks to wait before retrying a 429: `Retry-After`, else until `RateLimit-Reset`."""
    if response.status != RATE_LIMITED:
        return None
    retry_after = response.headers.get("Retry-After")
    if retry_after is not None:
        try:
            return max(float(retry_after), 0.0)
        except ValueError:
            pass
    reset = response.headers.get("RateLimit-Reset")
    if reset is not None:
        try:
            # One second more: the reset time is whole seconds and clocks differ.
            return max(float(reset) - now(), 0.0) + 1.0
        except ValueError:
            return None
    return None
