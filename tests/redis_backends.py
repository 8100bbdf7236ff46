"""`RedisBackend`s over the Redis database a test client is connected to."""

from __future__ import annotations

from redis import Redis

from atlas.stores.redis.backend import DEFAULT_PREFIX, RedisBackend


def url_of(client: Redis) -> str:
    """The URL of the Redis database `client` talks to."""
    kwargs = client.get_connection_kwargs()
    return f"redis://{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"


def backend_of(client: Redis, prefix: str = DEFAULT_PREFIX) -> RedisBackend:
    """A backend on the database `client` talks to, with atlas's keys below `prefix`."""
    return RedisBackend(url_of(client), prefix)
