"""Pacing GitHub requests the way GitHub asks, instead of PyGithub's blanket sleeps.

PyGithub sleeps 0.25 s before every request and 1 s before every write; a pull request's flow
(about ten requests) would spend seconds asleep for nothing. atlas instead:

- counts content-creating requests (POST/PATCH/PUT/DELETE) per token and blocks only when the
  budget GitHub documents is spent (80 per minute; `WriteBudget`);
- honours `Retry-After`, and `X-RateLimit-Reset` when `X-RateLimit-Remaining` is 0, on 403/429
  (the request was refused before it did anything, so any method is retried);
- retries server errors and connection failures by the rules all hosts share (`HostRetry`).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar, Protocol, Self

from redis import Redis
from urllib3.exceptions import MaxRetryError
from urllib3.response import BaseHTTPResponse

from atlas.host_retry import (
    DEFAULT_BACKOFF_BASE,
    DEFAULT_MAX_BACKOFF,
    DEFAULT_MAX_RATE_LIMIT_WAIT,
    DEFAULT_MAX_RETRIES,
    WRITE_METHODS,
    HostRetry,
)

log = logging.getLogger(__name__)

WRITES_PER_MINUTE = 80
"""GitHub's documented secondary limit on content-creating requests per minute."""

RATE_LIMIT_STATUSES = frozenset({403, 429})
"""GitHub's rate-limit answers (403 for the secondary limits)."""



class WriteBudget:
    """At most `limit` writes per rolling `window` seconds; `acquire` blocks only when spent.

    One budget is shared by every client using the same token (`for_token`), since GitHub
    counts per token, and it is safe to use from many threads.
    """

    _shared: ClassVar[dict[str, WriteBudget]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        limit: int = WRITES_PER_MINUTE,
        window: float = 60.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("a write budget needs a positive limit and window")
        self.limit = limit
        self.window = window
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._stamps: deque[float] = deque()

    @classmethod
    def for_token(cls, token: str, limit: int = WRITES_PER_MINUTE, window: float = 60.0) -> WriteBudget:
        """The process-wide budget of `token` (kept under a hash, not the token itself)."""
        key = hashlib.sha256(token.encode()).hexdigest()
        with cls._shared_lock:
            budget = cls._shared.get(key)
            if budget is None:
                budget = cls._shared[key] = cls(limit, window)
            return budget

    def acquire(self) -> float:
        """Take one write from the budget, waiting for room if needed; the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                while self._stamps and self._stamps[0] <= now - self.window:
                    self._stamps.popleft()
                if len(self._stamps) < self.limit:
                    self._stamps.append(now)
                    return waited
                wait = self._stamps[0] + self.window - now
            log.info("GitHub write budget spent (%d per %.0f s); waiting %.1f s", self.limit, self.window, wait)
            self._sleep(wait)
            waited += wait


class RedisKeys(Protocol):
    """Redis and the names of atlas's keys in it (`atlas.stores.redis.backend.RedisBackend`)."""

    @property
    def redis(self) -> Redis: ...

    def key(self, *parts: str) -> str: ...


class SharedWriteBudget(WriteBudget):
    """The same budget kept in Redis, so every web and worker process using a token shares it.

    GitHub counts content-creating requests per token, whichever host sends them; a sliding window
    of timestamps (Redis's own clock, so hosts need not agree) in one sorted set per token hash,
    `{prefix}github-writes:{hash}` below the Redis backend's key prefix.
    """

    _SCRIPT = """
    local now = redis.call('TIME')
    local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
    local window = tonumber(ARGV[1])
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', t - window)
    if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
        redis.call('ZADD', KEYS[1], t, ARGV[3])
        redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000))
        return '0'
    end
    local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    return tostring(tonumber(oldest[2]) + window - t)
    """

    def __init__(self, backend: RedisKeys, token: str, limit: int = WRITES_PER_MINUTE, window: float = 60.0,
                 *, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(limit, window, sleep=sleep)
        self._key = backend.key("github-writes", hashlib.sha256(token.encode()).hexdigest()[:32])
        self._take = backend.redis.register_script(self._SCRIPT)

    def acquire(self) -> float:
        waited = 0.0
        while True:
            wait = float(self._take(keys=[self._key], args=[self.window, self.limit, uuid.uuid4().hex]))
            if wait <= 0:
                return waited
            pause = min(max(wait, 0.01), 1.0)
            self._sleep(pause)
            waited += pause


class GitHubRetry(HostRetry):
    """`HostRetry` for GitHub: 403 and 429 are its rate limits, and retries of writes spend the write budget."""

    HOST = "GitHub"
    RATE_LIMIT_STATUSES = RATE_LIMIT_STATUSES

    def __init__(self, *args: Any, write_budget: WriteBudget | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.write_budget = write_budget

    @classmethod
    def policy(
        cls,
        max_retries: int = DEFAULT_MAX_RETRIES,
        *,
        backoff_base: float = DEFAULT_BACKOFF_BASE,
        max_backoff: float = DEFAULT_MAX_BACKOFF,
        max_rate_limit_wait: float = DEFAULT_MAX_RATE_LIMIT_WAIT,
        write_budget: WriteBudget | None = None,
    ) -> GitHubRetry:
        """Retry at most `max_retries` times per request, for any of the reasons above."""
        return cls.rules(max_retries, backoff_base=backoff_base, max_backoff=max_backoff,
                         max_rate_limit_wait=max_rate_limit_wait, write_budget=write_budget)

    def carried(self) -> dict[str, Any]:
        return {**super().carried(), "write_budget": self.write_budget}

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> Self:
        if response is not None and response.status in RATE_LIMIT_STATUSES and requested_wait(response) is None:
            # A plain 403/429 (no permission, abuse without a wait): not ours to retry.
            raise MaxRetryError(_pool, url or "", None)
        return super().increment(method, url, response, error, _pool, _stacktrace)

    def requested_wait(self, response: BaseHTTPResponse) -> float | None:
        return requested_wait(response)

    def sleep(self, response: BaseHTTPResponse | None = None) -> None:
        super().sleep(response)
        last = self.history[-1] if self.history else None
        if self.write_budget is not None and last is not None and (last.method or "").upper() in WRITE_METHODS:
            self.write_budget.acquire()


def requested_wait(response: BaseHTTPResponse, now: Callable[[], float] = time.time) -> float | None:
    """Seconds GitHub asks to wait before retrying `response`, or None if it asks for nothing.

    `Retry-After` counts on any answer; an exhausted primary limit (`X-RateLimit-Remaining: 0`)
    asks to wait until `X-RateLimit-Reset`, and only on 403/429.
    """
    retry_after = response.headers.get("Retry-After")
    if retry_after is not None:
        try:
            return max(float(retry_after), 0.0)
        except ValueError:
            return None
    if response.status in RATE_LIMIT_STATUSES and response.headers.get("X-RateLimit-Remaining") == "0":
        reset = response.headers.get("X-RateLimit-Reset")
        try:
            # One second more: the reset time is whole seconds and clocks differ.
            return max(float(reset or "") - now(), 0.0) + 1.0
        except ValueError:
            return None
    return None
