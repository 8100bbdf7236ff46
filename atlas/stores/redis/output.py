"""Running jobs' output on Redis: one capped stream per job, so a page on any host follows a job on any worker.

`{prefix}job-stream:{id}` holds one entry per write of the job's log (`text`: whole lines, `end`: the
byte offset in the log after them), trimmed to about `MAX_ENTRIES` and expiring `TTL_SECONDS` after
the last write. A finished job's output is kept in the state store as before; the stream is only
how it is seen while it runs.
"""

from __future__ import annotations

from atlas.stores.redis.backend import RedisBackend, text

MAX_ENTRIES = 20_000
"""Writes a job's stream keeps (about: Redis trims whole nodes); older lines are then only in the log."""

TTL_SECONDS = 24 * 3600
"""How long a stream outlives its job's last write: the state store has the output by then."""

READ_COUNT = 1_000
"""Entries one read returns at most; a follower reads again for the rest."""


class RedisLiveOutput:
    """`LiveOutput` on Redis streams."""

    def __init__(self, backend: RedisBackend) -> None:
        self.backend = backend

    def _key(self, job_id: str) -> str:
        return self.backend.key("job-stream", job_id)

    def publish(self, job_id: str, text: str, end: int) -> None:
        key = self._key(job_id)
        with self.backend.redis.pipeline(transaction=False) as pipe:
            pipe.xadd(key, {"text": text, "end": end}, maxlen=MAX_ENTRIES, approximate=True)
            pipe.expire(key, TTL_SECONDS)
            pipe.execute()

    def read(self, job_id: str, offset: int, after: str = "-") -> tuple[bytes, str]:
        entries = self.backend.redis.xrange(self._key(job_id), min="-" if after == "-" else f"({after}", max="+",
                                            count=READ_COUNT)
        chunks: list[bytes] = []
        last = after
        for entry_id, fields in entries or []:
            last = text(entry_id) or last
            data = (text((fields or {}).get("text")) or "").encode()
            end = int(text((fields or {}).get("end")) or 0)
            if end <= offset:
                continue
            begin = end - len(data)
            chunks.append(data[offset - begin:] if begin < offset else data)
        return b"".join(chunks), last
