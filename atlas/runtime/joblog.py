"""The output of one job, appended line by line to `<data-dir>/jobs/<job_id>.log` as it happens.

Terraform and git write into it while they run; a web page can follow it live by subscribing. Every
line is redacted before it is written or handed to a subscriber, so a secret that slipped through
the child's environment scrubbing still never reaches the disk or a browser.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from atlas.logs import runtime_secrets, secret_forms

logger = logging.getLogger(__name__)

REDACTED = "***"

LineCallback = Callable[[str], None]
"""Receives each line (without its newline) as it is written."""

OutputMirror = Callable[[str, int], None]
"""Also receives each write, as whole lines with their newlines and the log's size after them: where other
hosts follow the job (`atlas.stores.jobs.LiveOutput`)."""


class Redactor:
    """Replaces every occurrence of the given secrets, plain or encoded (`logs.secret_forms`), with `***`."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets: tuple[str, ...] = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))
        # Longest first, so a form containing another one is replaced whole.
        self.forms: tuple[str, ...] = tuple(sorted(secret_forms(self.secrets), key=len, reverse=True))
        self._version = -1
        self._all_forms = self.forms

    def _current_forms(self) -> tuple[str, ...]:
        """The forms of the given secrets and of those the process learnt since (`add_runtime_secret`)."""
        version, learnt = runtime_secrets()
        if version != self._version:
            self._all_forms = tuple(sorted(secret_forms((*self.secrets, *learnt)), key=len, reverse=True))
            self._version = version
        return self._all_forms

    def __call__(self, text: str) -> str:
        for form in self._current_forms():
            if form in text:
                text = text.replace(form, REDACTED)
        return text

    def with_secrets(self, secrets: Iterable[str]) -> Redactor:
        """A redactor that also hides `secrets`."""
        return Redactor((*self.secrets, *secrets))


class JobLog:
    """An append-only, thread-safe, line-oriented log file that can be followed live."""

    def __init__(self, path: Path, redactor: Sequence[str] | Redactor = (), mirror: OutputMirror | None = None
                 ) -> None:
        self.path = path
        self.redactor = redactor if isinstance(redactor, Redactor) else Redactor(redactor)
        self.mirror = mirror
        self._mirror_failing = False
        self._lock = threading.Lock()
        self._subscribers: list[LineCallback] = []
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=True)

    def write(self, line: str) -> None:
        """Append `line`; text with embedded newlines becomes several lines."""
        lines = self.redactor(line.rstrip("\n")).split("\n")
        with self._lock:
            written = "".join(f"{text}\n" for text in lines)
            with self.path.open("a", encoding="utf-8") as file:
                file.write(written)
                end = file.tell()
            if self.mirror is not None:
                self._mirror_write(written, end)
            # Called under the lock so every subscriber sees lines in file order.
            for callback in list(self._subscribers):
                self._notify(callback, lines)

    def _mirror_write(self, written: str, end: int) -> None:
        # Followers elsewhere miss lines while it fails; the job, and the log its output is kept from, go on.
        try:
            assert self.mirror is not None
            self.mirror(written, end)
        except Exception as error:
            if not self._mirror_failing:
                logger.warning("could not publish job output lines for live pages: %s", error)
            self._mirror_failing = True
        else:
            self._mirror_failing = False

    def section(self, title: str) -> None:
        """A header line that separates one step of the job from the next."""
        self.write(f"=== {title} ===")

    def subscribe(self, callback: LineCallback, *, replay: bool = False) -> None:
        """Call `callback` with every line written from now on (and, with `replay`, every line so far).

        Replaying and subscribing happen under one lock, so a follower sees no gap and no duplicate.
        Callbacks run on the writer's thread: they should only hand the line over (e.g. to a queue).
        """
        with self._lock:
            self._subscribers.append(callback)
            if replay:
                self._notify(callback, self._read_unlocked().splitlines())

    def unsubscribe(self, callback: LineCallback) -> None:
        with self._lock:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

    def read(self) -> str:
        """Everything written so far."""
        with self._lock:
            return self._read_unlocked()

    def _read_unlocked(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return ""

    def _notify(self, callback: LineCallback, lines: Iterable[str]) -> None:
        # A broken follower (a closed browser tab) must not fail the job that is writing.
        try:
            for text in lines:
                callback(text)
        except Exception:
            logger.exception("job log subscriber failed; unsubscribing it")
            if callback in self._subscribers:
                self._subscribers.remove(callback)
