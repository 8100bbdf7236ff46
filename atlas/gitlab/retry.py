"""Retrying GitLab requests the way GitLab asks, under python-gitlab.

python-gitlab's own retries are switched off (they retry every method on a 500, and sleep as
long as any rate limit says); instead urllib3 retries, mounted on the client's session:

- 429 (GitLab's only rate-limit answer) is retried for every method, after `Retry-After` or
  until `RateLimit-Reset`, never longer than `max_rate_limit_wait`;
- server errors are retried with exponential backoff: reads (GET/HEAD) on 500/502/503/504,
  writes only on 502/503/504, which come from the proxy in front of GitLab or mean it was
  unavailable, so the write did not happen; a 500 may have followed a note that was created;
- connection failures before the request was sent are retried for every method, read timeouts
  only for reads.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Self

from urllib3 import Retry
from urllib3.response import BaseHTTPResponse

log = logging.getLogger(__name__)

WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
RATE_LIMITED = 429
READ_RETRY_STATUSES = frozenset({500, 502, 503, 504})
WRITE_RETRY_STATUSES = frozenset({502, 503, 504})

DEFAULT_MAX_RETRIES = 3
DEFAULT_BACKOFF_BASE = 1.0
"""Seconds before the first retry of a server error; doubled for each further retry."""
DEFAULT_MAX_BACKOFF = 30.0
DEFAULT_MAX_RATE_LIMIT_WAIT = 60.0
"""Longest atlas sleeps for one 429 before trying again anyway."""


class GitLabRetry(Retry):
    """urllib3 retries tuned to GitLab (see the module docstring); mount it on python-gitlab's session.

    When retries run out the last response is handed back, so python-gitlab raises its usual
    exception with GitLab's status and message.
    """

    def __init__(
        self,
        *args: Any,
        backoff_base: float = DEFAULT_BACKOFF_BASE,
        max_backoff: float = DEFAULT_MAX_BACKOFF,
        max_rate_limit_wait: float = DEFAULT_MAX_RATE_LIMIT_WAIT,
        sleep: Callable[[float], None] = time.sleep,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.backoff_base = backoff_base
        self.max_backoff = max_backoff
        self.max_rate_limit_wait = max_rate_limit_wait
        self._sleep_for = sleep

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
        return cls(
            total=max_retries,
            connect=max_retries,
            read=max_retries,
            status=max_retries,
            other=0,
            redirect=0,
            allowed_methods=READ_METHODS,
            status_forcelist=READ_RETRY_STATUSES | {RATE_LIMITED},
            raise_on_status=False,
            raise_on_redirect=False,
            respect_retry_after_header=True,
            backoff_factor=0,
            backoff_base=backoff_base,
            max_backoff=max_backoff,
            max_rate_limit_wait=max_rate_limit_wait,
            sleep=sleep,
        )

    def new(self, **kw: Any) -> Self:
        kw.update(
            backoff_base=self.backoff_base,
            max_backoff=self.max_backoff,
            max_rate_limit_wait=self.max_rate_limit_wait,
            sleep=self._sleep_for,
        )
        return super().new(**kw)

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if status_code == RATE_LIMITED:
            return True
        if method.upper() in WRITE_METHODS:
            return status_code in WRITE_RETRY_STATUSES
        return status_code in READ_RETRY_STATUSES

    def sleep(self, response: BaseHTTPResponse | None = None) -> None:
        wait = requested_wait(response) if response is not None else None
        if wait is not None:
            if wait > self.max_rate_limit_wait:
                log.warning("GitLab asks to wait %.0f s; waiting %.0f s instead", wait, self.max_rate_limit_wait)
            wait = min(wait, self.max_rate_limit_wait)
        else:
            wait = min(self.backoff_base * 2 ** max(len(self.history) - 1, 0), self.max_backoff)
        last = self.history[-1] if self.history else None
        if last is not None:
            log.info(
                "retrying GitLab %s after %s in %.2f s", last.method, last.status or type(last.error).__name__, wait
            )
        if wait > 0:
            self._sleep_for(wait)


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
