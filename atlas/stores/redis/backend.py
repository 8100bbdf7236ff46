"""The Redis backend: one object per atlas process carries the clients and the key prefix.

Every key atlas writes in Redis (state, locks, plans, the queue's FIFOs, heartbeats and reaper, the
scheduler's slots, the GitHub write budget, the GitHub App's sealed installation tokens) is built by
`RedisBackend.key`, below the prefix `--redis-key-prefix` sets (`atlas:` by default), so atlas
installations that share one Redis under different prefixes see nothing of each other.
Connections to Redis are opened here and nowhere else.

A read-decide-write step runs as an optimistic transaction (`transact`: WATCH, read, MULTI, EXEC,
retried when a watched key changed), so it is atomic across processes as SQLite's `BEGIN IMMEDIATE`
is. It needs one Redis (with replicas if you like), not Redis Cluster: a step touches keys in any slot.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit

from redis import Redis
from redis.backoff import NoBackoff
from redis.client import Pipeline
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import WatchError
from redis.retry import Retry

from atlas.models import Project

DEFAULT_PREFIX = "atlas:"
"""What every atlas key in Redis starts with; give deployments that share a Redis different prefixes."""

CONNECT_TIMEOUT_SECONDS = 2.0
"""How long to wait for Redis to accept a connection: a webhook must get its 503 well within GitHub's 10 s."""

SOCKET_TIMEOUT_SECONDS = 5.0
"""How long one command may wait for Redis's answer before the caller gives up."""

T = TypeVar("T")


class RedisBackend:
    """Redis at `url`, with atlas's keys below `prefix`: a client that decodes replies, and one that returns bytes.

    Each client connects on first use; plan files and rq's pickles need the bytes one (`binary`).
    """

    def __init__(self, url: str, prefix: str = DEFAULT_PREFIX) -> None:
        if not prefix:
            raise ValueError("the Redis key prefix must not be empty")
        self.url = url
        self.prefix = prefix
        self.location = redis_location(url)
        self._redis: Redis | None = None
        self._binary: Redis | None = None

    @property
    def redis(self) -> Redis:
        """The client whose replies are text."""
        if self._redis is None:
            self._redis = connect(self.url, decode_responses=True)
        return self._redis

    @property
    def binary(self) -> Redis:
        """The client whose replies are bytes."""
        if self._binary is None:
            self._binary = connect(self.url, decode_responses=False)
        return self._binary

    def key(self, *parts: str) -> str:
        """`{prefix}part:part…`: the name of one of atlas's keys."""
        return self.prefix + ":".join(parts)

    def delivery_key(self, delivery_id: str) -> str:
        """The claim of a webhook delivery: taken by the state store, or by the queue with the job it queues."""
        return self.key("delivery", delivery_id)

    def ping(self) -> None:
        """Raise RedisError unless Redis answers now, on a connection of its own that is closed again."""
        probe = connect(self.url, decode_responses=True)
        try:
            probe.ping()
        finally:
            probe.close()

    def close(self) -> None:
        for client in (self._redis, self._binary):
            if client is not None:
                client.close()
        self._redis = self._binary = None


def connect(url: str, *, decode_responses: bool = True) -> Redis:
    """A Redis client for `url` that fails fast when Redis is unreachable rather than retrying for seconds.

    A connection Redis closed (a restart, an idle timeout) is retried once; a timeout is not.
    """
    return Redis.from_url(
        url,
        decode_responses=decode_responses,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        health_check_interval=30,
    )


def redis_location(url: str) -> str:
    """`redis://host:port/db` without user or password, for logs and error messages."""
    parts = urlsplit(url)
    host = parts.hostname or parts.path or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path if parts.hostname else ''}"


def transact(redis: Redis, step: Callable[[Pipeline], T]) -> T:
    """Run `step` atomically: it WATCHes the keys it reads, reads them, calls `pipe.multi()` and queues its writes.

    When a watched key changes before EXEC, the writes are dropped and `step` runs again from the start.
    """
    while True:
        with redis.pipeline(transaction=True) as pipe:
            try:
                result = step(pipe)
                pipe.execute()
            except WatchError:
                continue
            return result


def watch(pipe: Pipeline, *keys: str) -> None:
    """WATCH `keys` (redis-py leaves `Pipeline.watch` untyped)."""
    pipe.watch(*keys)  # type: ignore[no-untyped-call]


def text(value: object) -> str | None:
    """A reply as text (the backend's `redis` client decodes replies already)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode()
    return str(value)


def project_field(project: Project) -> str:
    """A hash field naming a project unambiguously, whatever its dir and workspace contain."""
    return json.dumps([project.dir, project.workspace])


def pull_key(repo: str, number: int) -> str:
    """`owner/name#number`, as `PullRequest.key` names a pull request."""
    return f"{repo}#{number}"
