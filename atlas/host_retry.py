"""The retry rules atlas applies to a VCS host's REST API, as urllib3 retries under the host's client.

- A rate-limit answer is retried for every method (the request was refused before it did anything),
  after the wait the host asks for, never longer than `max_rate_limit_wait`;
- server errors are retried with exponential backoff: reads (GET/HEAD) on 500/502/503/504, writes
  only on 502/503/504, which come from the gateway or mean the service was unavailable, so the
  write did not happen; a 500 may have come after the write (a comment created twice is worse than
  one error);
- connection failures before the request was sent are retried for every method, read timeouts
  only for reads.

When retries run out the last response is handed back, so the client library raises its usual
exception with the host's status and message. Each host says which statuses are rate limits and
how to read the wait it asks for (`GitHubRetry`, `GitLabRetry`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, ClassVar, Self

from urllib3 import Retry
from urllib3.response import BaseHTTPResponse

log = logging.getLogger(__name__)

WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
READ_RETRY_STATUSES = frozenset({500, 502, 503, 504})
WRITE_RETRY_STATUSES = frozenset({502, 503, 504})

DEFAULT_MAX_RETRIES = 3
DEFAULT_BACKOFF_BASE = 1.0
"""Seconds before the first retry of a server error; doubled for each further retry."""
DEFAULT_MAX_BACKOFF = 30.0
DEFAULT_MAX_RATE_LIMIT_WAIT = 60.0
"""Longest atlas sleeps for one rate-limit answer before trying again anyway."""


class HostRetry(Retry):
    """urllib3 retries by the rules above; a host's subclass names it and reads its rate-limit answers."""

    HOST: ClassVar[str] = "the VCS host"
    RATE_LIMIT_STATUSES: ClassVar[frozenset[int]] = frozenset({429})

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
    def rules(cls, max_retries: int, **settings: Any) -> Self:
        """Retry at most `max_retries` times per request, for any of the reasons above."""
        return cls(
            total=max_retries,
            connect=max_retries,
            read=max_retries,
            status=max_retries,
            other=0,
            redirect=0,
            # Only consulted for read errors, where the server may have acted on the request.
            allowed_methods=READ_METHODS,
            status_forcelist=cls.RATE_LIMIT_STATUSES | READ_RETRY_STATUSES,
            raise_on_status=False,
            raise_on_redirect=False,
            respect_retry_after_header=True,
            backoff_factor=0,
            **settings,
        )

    def carried(self) -> dict[str, Any]:
        """What each retry's successor (`new`) keeps beyond urllib3's own fields."""
        return {"backoff_base": self.backoff_base, "max_backoff": self.max_backoff,
                "max_rate_limit_wait": self.max_rate_limit_wait, "sleep": self._sleep_for}

    def new(self, **kw: Any) -> Self:
        kw.update(self.carried())
        return super().new(**kw)

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if status_code in self.RATE_LIMIT_STATUSES:
            return True
        if method.upper() in WRITE_METHODS:
            return status_code in WRITE_RETRY_STATUSES
        return status_code in READ_RETRY_STATUSES

    def requested_wait(self, response: BaseHTTPResponse) -> float | None:
        """Seconds the host asks to wait before retrying `response`; None if it asks for nothing."""
        raise NotImplementedError

    def sleep(self, response: BaseHTTPResponse | None = None) -> None:
        wait = self.requested_wait(response) if response is not None else None
        if wait is not None:
            if wait > self.max_rate_limit_wait:
                log.warning("%s asks to wait %.0f s; waiting %.0f s instead", self.HOST, wait, self.max_rate_limit_wait)
            wait = min(wait, self.max_rate_limit_wait)
        else:
            wait = min(self.backoff_base * 2 ** max(len(self.history) - 1, 0), self.max_backoff)
        last = self.history[-1] if self.history else None
        if last is not None:
            reason = last.status or type(last.error).__name__
            log.info("retrying %s %s after %s in %.2f s", self.HOST, last.method, reason, wait)
        if wait > 0:
            self._sleep_for(wait)
