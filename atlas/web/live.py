"""A running job's output as Server-Sent Events: new lines as terraform prints them, then `end`.

The stream follows the job's log file from a byte offset, like `tail -f`, rather than subscribing
to a `JobLog` object: the writer's `JobLog` lives in the job's thread (or another process) and a
fresh `JobLog` of the same path is never told of its lines, while the file is the same for all.
Each event's id is the offset after its lines, so a browser that reconnects (`Last-Event-ID`) gets
every line once. A connection lasts at most `STREAM_SECONDS` and few run at once, so following
pages cannot take every request thread from GitHub's deliveries; the browser reconnects by itself.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from atlas.models import JobStatus
from atlas.stores.jobs import JobRecord
from atlas.web.ansi import ansi_to_html

POLL_SECONDS = 0.25
"""How often a stream looks for new output and for the job's end."""

STREAM_SECONDS = 60.0
"""How long one connection follows a job before the browser is asked to reconnect."""

KEEPALIVE_SECONDS = 15.0
"""How long a stream may stay silent: a comment line then finds browsers that went away."""

RECONNECT_MILLISECONDS = 1000
"""The `retry:` a browser waits before reconnecting."""

MAX_STREAMS = 4
"""Streams served at once; more would wait for a request thread that webhooks need."""

_READ_LIMIT = 1 << 20

JobLookup = Callable[[], JobRecord | None]
"""Reads the job's record afresh."""

StoredOutput = Callable[[], str | None]
"""Reads the job's output as the state store keeps it."""


LiveRead = Callable[[int, str], tuple[bytes, str]]
"""Reads a running job's output published for every host (`LiveOutput.read` of one job)."""


class LogFollower:
    """Reads the complete lines appended to a job's output since a byte offset.

    The output is the job's log file; where this host has none (a worker on another host runs the
    job), it is the state store's copy once the job has stored it, and until then the output the
    worker publishes as it goes (Redis mode).
    """

    def __init__(self, path: Path, offset: int = 0, stored: StoredOutput | None = None,
                 live: LiveRead | None = None) -> None:
        self.path = path
        self.offset = max(offset, 0)
        self.stored = stored
        self.live = live
        self._live_after = "-"

    def read_lines(self) -> list[str]:
        """The complete lines written since the last read (a line still being written waits)."""
        chunk = self._read()
        end = chunk.rfind(b"\n")
        if end < 0:
            return []
        self.offset += end + 1
        return chunk[:end].decode("utf-8", errors="replace").split("\n")

    def _read(self) -> bytes:
        try:
            with self.path.open("rb") as file:
                file.seek(self.offset)
                return file.read(_READ_LIMIT)
        except FileNotFoundError:
            text = self.stored() if self.stored is not None else None
            if text is not None or self.live is None:
                return text.encode()[self.offset:self.offset + _READ_LIMIT] if text else b""
            return self._read_live()

    def _read_live(self) -> bytes:
        # Entries hold whole lines, so what one read returns is consumed whole and never read again.
        assert self.live is not None
        chunk, self._live_after = self.live(self.offset, self._live_after)
        return chunk


class StreamSlots:
    """Bounds how many streams run at once in this process."""

    def __init__(self, limit: int = MAX_STREAMS) -> None:
        self._slots = threading.BoundedSemaphore(limit)

    def try_take(self) -> bool:
        return self._slots.acquire(blocking=False)

    def give_back(self) -> None:
        self._slots.release()


def event(data: list[str], *, name: str | None = None, event_id: int | None = None) -> str:
    """One SSE event; each item of `data` is one `data:` line (the browser joins them with newlines)."""
    head = f"event: {name}\n" if name else ""
    head += f"id: {event_id}\n" if event_id is not None else ""
    return head + "".join(f"data: {line}\n" for line in data) + "\n"


def busy() -> str:
    """What a stream answers when too many streams run: reconnect a little later."""
    return f"retry: {RECONNECT_MILLISECONDS * 5}\n: busy\n\n"


def follow_job(
    follower: LogFollower,
    job: JobLookup,
    *,
    stream_seconds: float = STREAM_SECONDS,
    poll_seconds: float = POLL_SECONDS,
) -> Iterator[str]:
    """Events with the job's new output as HTML lines, then an `end` event once the job has finished."""
    yield f"retry: {RECONNECT_MILLISECONDS}\n\n"
    deadline = time.monotonic() + stream_seconds
    last_sent = time.monotonic()
    while True:
        # The status is read before the file: once it says finished, the file holds every line.
        record = job()
        lines = follower.read_lines()
        while lines:
            yield event([str(ansi_to_html(line)) for line in lines], event_id=follower.offset)
            last_sent = time.monotonic()
            lines = follower.read_lines()
        if record is None or record.status.finished:
            yield event([_end_data(record)], name="end", event_id=follower.offset)
            return
        now = time.monotonic()
        if now >= deadline:
            return
        if now - last_sent >= KEEPALIVE_SECONDS:
            yield ": keepalive\n\n"
            last_sent = now
        time.sleep(poll_seconds)


def _end_data(record: JobRecord | None) -> str:
    if record is None:
        return json.dumps({"status": "unknown", "description": "atlas has no record of this job"})
    return json.dumps({
        "status": record.status.value,
        "description": record.description,
        "succeeded": record.status is JobStatus.SUCCEEDED,
    })
