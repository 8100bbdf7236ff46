"""Logging for atlas processes: one line per record (text or JSON), secrets redacted, job fields attached.

Code logs through the standard `logging` module. Extra fields given with `extra={...}` and the
fields of the surrounding `job_context()` are written after the message as `key=value` (or as JSON
members), so every line about a job carries its repository, pull request, project and job id.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Literal, TextIO
from urllib.parse import quote, quote_plus

REDACTED = "***"
SHORT_SECRET = 8
"""Secrets shorter than this match only as whole words, and their encodings are not looked for."""

_URLSAFE = str.maketrans("+/", "-_")
# Of base64("\0" * k + secret), the characters before these indexes mix in bits of whatever came
# before the secret; what follows them is the same wherever in a longer text the secret sits.
_BASE64_CLEAN_START = (0, 2, 3)

RUNTIME_SECRETS_KEPT = 500
"""How many secrets learnt after start-up are redacted (hourly installation tokens: weeks of them)."""

_runtime_secrets: deque[str] = deque(maxlen=RUNTIME_SECRETS_KEPT)
_runtime_lock = threading.Lock()
_runtime_version = 0


def add_runtime_secret(secret: str) -> None:
    """Redact `secret` from now on in this process's logs and job logs (a token minted after start-up)."""
    global _runtime_version
    if not secret:
        return
    with _runtime_lock:
        if secret in _runtime_secrets:
            return
        _runtime_secrets.append(secret)
        _runtime_version += 1


def runtime_secrets() -> tuple[int, tuple[str, ...]]:
    """The secrets `add_runtime_secret` was given, and a version that changes when they do."""
    with _runtime_lock:
        return _runtime_version, tuple(_runtime_secrets)


_job_fields: ContextVar[Mapping[str, object] | None] = ContextVar("atlas_job_fields", default=None)

# The attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "atlas_context",
}

# Fields that identify a job are written first, in this order, so lines line up when read.
_FIELD_ORDER = ("repo", "pr", "project", "job_id")


@contextmanager
def job_context(**fields: object) -> Iterator[None]:
    """Attach `fields` (such as repo, pr, project, job_id) to every line logged inside the block.

    Contexts nest (inner fields add to outer ones) and follow the current thread or task; a thread
    started inside the block does not inherit them, so a job's thread enters its own context.
    """
    added = {key: value for key, value in fields.items() if value is not None}
    token = _job_fields.set({**current_context(), **added})
    try:
        yield
    finally:
        _job_fields.reset(token)


def current_context() -> dict[str, object]:
    """The fields `job_context()` attaches at this point."""
    return dict(_job_fields.get() or {})


def secret_forms(secrets: Iterable[str]) -> set[str]:
    """Each secret, and for one of at least `SHORT_SECRET` characters the encodings cheap to recognise.

    Those are base64 (standard and URL-safe alphabets) as it appears wherever the secret sits in a
    longer encoded text (the secret's bytes can start at any of three positions of a base64 group,
    so there are three forms, each without the characters it shares with its neighbours), hex, and
    percent-encoding (as in a URL or a form body). Code that means to leak a secret can always
    encode it some other way; this catches the accidental and the lazy, and the sandbox the rest.
    """
    forms: set[str] = set()
    for secret in secrets:
        if not secret:
            continue
        forms.add(secret)
        if len(secret) >= SHORT_SECRET:
            forms |= {form for form in _encodings(secret) if len(form) >= SHORT_SECRET}
    return forms


def _encodings(secret: str) -> set[str]:
    data = secret.encode("utf-8")
    found = {data.hex(), data.hex().upper()}
    for offset, start in enumerate(_BASE64_CLEAN_START):
        shifted = b"\0" * offset + data
        fragment = base64.b64encode(shifted).decode("ascii")[start : len(shifted) * 8 // 6]
        found |= {fragment, fragment.translate(_URLSAFE)}
    for quoted in (quote(secret, safe=""), quote(secret), quote_plus(secret)):
        # Percent-escapes come in either case: %2F and %2f.
        found |= {quoted, re.sub(r"%[0-9A-F]{2}", lambda escape: escape.group().lower(), quoted)}
    found.discard(secret)
    return found


def secret_pattern(secrets: Iterable[str]) -> re.Pattern[str] | None:
    """A pattern matching any of `secrets` in any of their `secret_forms`, or None when there is none.

    A secret shorter than `SHORT_SECRET` characters matches only as a whole word: replacing every
    `s` of a one-letter test secret would make logs unreadable, while a real secret is long.
    """
    alternatives = []
    for secret in sorted(secret_forms(secrets), key=len, reverse=True):
        escaped = re.escape(secret)
        if len(secret) < SHORT_SECRET:
            escaped = rf"(?<![A-Za-z0-9]){escaped}(?![A-Za-z0-9])"
        alternatives.append(escaped)
    return re.compile("|".join(alternatives)) if alternatives else None


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with each occurrence of each secret replaced by `***`."""
    pattern = secret_pattern(secrets)
    return pattern.sub(REDACTED, text) if pattern else text


class SecretRedactor(logging.Filter):
    """Replaces secret values in a record's message, arguments, extra fields and traceback.

    Code should never log a secret; this catches the case where a library or an error message does.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = tuple(secrets)
        self._version = -1
        self.pattern: re.Pattern[str] | None = None
        self._refresh()

    def _refresh(self) -> None:
        """Take in the secrets learnt since the pattern was built (`add_runtime_secret`)."""
        version, learnt = runtime_secrets()
        if version != self._version:
            self.pattern = secret_pattern((*self.secrets, *learnt))
            self._version = version

    def redact(self, text: str) -> str:
        self._refresh()
        return self.pattern.sub(REDACTED, text) if self.pattern else text

    def filter(self, record: logging.LogRecord) -> bool:
        self._refresh()
        if self.pattern is None:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: leave it to the handler's own error reporting
            return True
        # Merging the arguments in means no secret can hide in an argument's repr.
        record.msg, record.args = self.redact(message), ()
        for key, value in list(record.__dict__.items()):
            if key not in _RECORD_ATTRIBUTES and isinstance(value, str):
                setattr(record, key, self.redact(value))
        context = getattr(record, "atlas_context", None)
        if isinstance(context, dict):
            record.atlas_context = {
                k: self.redact(v) if isinstance(v, str) else v for k, v in context.items()
            }
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


class JobContextFilter(logging.Filter):
    """Copies the current `job_context()` fields onto the record, where formatters find them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "atlas_context"):
            record.atlas_context = current_context()
        return True


def record_fields(record: logging.LogRecord) -> dict[str, object]:
    """The job context and `extra=` fields of a record, job identifiers first."""
    fields: dict[str, object] = dict(getattr(record, "atlas_context", None) or {})
    fields.update((key, value) for key, value in record.__dict__.items() if key not in _RECORD_ATTRIBUTES)
    ordered = {key: fields.pop(key) for key in _FIELD_ORDER if key in fields}
    return {**ordered, **fields}


def _utc_timestamp(created: float, milliseconds: bool = False) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    if milliseconds:
        stamp += f".{int(created % 1 * 1000):03d}"
    return stamp + "Z"


def _text_value(value: object) -> str:
    if isinstance(value, list | tuple | set | frozenset):
        value = ",".join(str(item) for item in value)
    text = str(value)
    if not text or any(c.isspace() or c in '"=' for c in text):
        return json.dumps(text)
    return text


class TextFormatter(logging.Formatter):
    """`2026-11-26T15:04:05Z INFO atlas.http.webhooks message key=value …`, traceback on following lines."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [_utc_timestamp(record.created), record.levelname, record.name, record.getMessage()]
        parts += [f"{key}={_text_value(value)}" for key, value in record_fields(record).items()]
        line = " ".join(parts)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + record.stack_info
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then the fields."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "time": _utc_timestamp(record.created, milliseconds=True),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record_fields(record).items():
            data.setdefault(key, value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            data["exception"] = record.exc_text
        if record.stack_info:
            data["stack"] = record.stack_info
        return json.dumps(data, default=str)


class AtlasLogHandler(logging.StreamHandler[TextIO]):
    """The root handler `configure_logging()` installs, so that configuring again replaces it."""


def configure_logging(
    level: str,
    fmt: Literal["text", "json"] = "text",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> logging.Handler:
    """Send every log record to `stream` (stderr) as text or JSON lines, with `secrets` redacted."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, AtlasLogHandler):
            root.removeHandler(handler)
    handler = AtlasLogHandler(stream if stream is not None else sys.stderr)
    handler.addFilter(JobContextFilter())
    handler.addFilter(SecretRedactor(secrets))
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root.addHandler(handler)
    numeric_level = logging.getLevelName(level.upper())
    root.setLevel(numeric_level)
    # Libraries that log every HTTP request say too much below debug.
    for noisy in ("urllib3", "github"):
        logging.getLogger(noisy).setLevel(
            logging.DEBUG if numeric_level <= logging.DEBUG else logging.WARNING
        )
    logging.captureWarnings(True)
    return handler
