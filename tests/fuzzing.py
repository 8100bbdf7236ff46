"""What the webhook fuzz tests share: mutations of recorded payloads, and the checks on each answer.

A payload is mutated as JSON (values replaced by any JSON: integers of any size, floats, lone
surrogates, deep nests; keys removed), then as bytes (cut, patched, nested 50,000 deep, not UTF-8),
and sent under a content type that may be wrong. Every answer must be a 2xx or a 4xx with a reason,
and nothing may be logged at ERROR (no traceback).
"""

from __future__ import annotations

import http.client
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

from flask import Flask
from hypothesis import strategies as st

from atlas.app import create_app
from atlas.config.settings import load_settings
from atlas.jobs.embedded import EmbeddedQueue
from atlas.models import Job

Path_ = tuple[str | int, ...]


def paths(value: Any, prefix: Path_ = ()) -> list[Path_]:
    """Every path to a value inside `value`, the empty path included."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths(item, (*prefix, index))
    return found


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.sampled_from([0, -1, 2**31, 2**63, 2**64, 10**30])
    | st.floats(allow_nan=True, allow_infinity=True)
    # Any code point, lone surrogates included.
    | st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
    | st.sampled_from(["", "http://[::1", "http://[::1]:99999/x", "ftp://x", "../../etc", "a/b/c", "\x00", "\ud800"])
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=6,
)
comment_bodies = st.one_of(
    st.text(max_size=60),
    st.builds(
        lambda verb, args: f"atlas {verb} {args}",
        st.sampled_from(["plan", "apply", "unlock", "cancel", "help", "version", "import", "state rm", "plan -d",
                         "apply -p", "nonsense"]),
        st.text(st.characters(codec="utf-8"), max_size=40),
    ),
)


@dataclass(frozen=True)
class Mutation:
    kind: str
    path: Path_ = ()
    value: Any = None


def mutate(payload: Any, mutation: Mutation) -> Any:
    if not mutation.path:
        return mutation.value if mutation.kind == "set" else payload
    parent = payload
    for step in mutation.path[:-1]:
        try:
            parent = parent[step]
        except (KeyError, IndexError, TypeError):
            return payload  # an earlier mutation removed the way there
    last = mutation.path[-1]
    try:
        if mutation.kind == "delete" and isinstance(parent, dict):
            parent.pop(last, None)
        elif mutation.kind == "delete" and isinstance(parent, list) and isinstance(last, int) and last < len(parent):
            del parent[last]
        elif mutation.kind == "set" and isinstance(parent, (dict, list)):
            parent[last] = mutation.value  # type: ignore[index]
    except (IndexError, TypeError):
        pass
    return payload


@st.composite
def mutations(draw: st.DrawFn, paths_in: list[Path_]) -> Mutation:
    """A key removed or a value replaced, somewhere in a payload whose paths are `paths_in`."""
    path = draw(st.sampled_from(paths_in))
    if draw(st.booleans()):
        return Mutation("delete", path)
    return Mutation("set", path, draw(json_values))


@st.composite
def mutated_body(draw: st.DrawFn, payload: Any, number_field: bytes) -> tuple[bytes, str]:
    """`payload` serialised and then, sometimes, damaged as bytes; with the content type to send it as."""
    body = serialise(payload)
    raw = draw(st.sampled_from(["none"] * 6 + ["truncate", "insert", "overwrite", "huge number", "deep nesting",
                                              "deep object", "not utf-8"]))
    body = raw_mutation(body, raw, draw(st.integers(min_value=0)), draw(st.binary(max_size=16)), number_field)
    content_type = draw(st.sampled_from(["application/json"] * 4 + ["application/x-www-form-urlencoded",
                                                                    "text/plain", ""]))
    if content_type == "application/x-www-form-urlencoded" and draw(st.booleans()):
        body = b"payload=" + quote_plus(body).encode()
    return body, content_type


header_text = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=80)
"""Any header value a client can send (latin-1)."""


@st.composite
def sometimes_damaged(draw: st.DrawFn, good: str, wrong: list[str | None]) -> str | None:
    """A header's right value nine times in ten (so most cases get past the headers), else a wrong one."""
    roll = draw(st.integers(0, 19))
    if roll == 0:
        return draw(st.sampled_from(wrong))
    if roll == 1:
        return draw(header_text)
    return good


def serialise(payload: Any) -> bytes:
    try:
        return json.dumps(payload).encode()
    except ValueError:  # an integer too long for str(): write its digits by hand
        return json.dumps(payload, default=str).encode()


def raw_mutation(body: bytes, kind: str, position: int, noise: bytes, number_field: bytes = b'"number":') -> bytes:
    at = position % (len(body) + 1)
    if kind == "truncate":
        return body[:at]
    if kind == "insert":
        return body[:at] + noise + body[at:]
    if kind == "overwrite":
        return body[:at] + noise + body[at + len(noise):]
    if kind == "huge number":
        return body.replace(number_field, number_field + b"9" * 5000 + b",\"was\":", 1)
    if kind == "deep nesting":
        return b"[" * 50_000 + b"]" * 50_000
    if kind == "deep object":
        return b'{"action":' + b'{"a":' * 50_000 + b"1" + b"}" * 50_000 + b"}"
    if kind == "not utf-8":
        return body[:at] + b"\xff\xfe\xc3" + body[at:]
    return body


class ErrorRecords(logging.Handler):
    """Every record at ERROR or above, and every record carrying a traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info or "Traceback" in record.getMessage():
            self.records.append(record)


def check_answer(status: int, text: str, case: object) -> None:
    assert status < 500, f"{status} {text!r} for {case!r:.600}"
    assert text.strip(), f"{status} without a reason for {case!r:.600}"


def describe(errors: ErrorRecords) -> str:
    return "\n".join(f"{r.levelname} {r.name}: {r.getMessage()}" for r in errors.records[:5])


def post_raw(port: int, headers: dict[str, str], body: bytes) -> tuple[int, str]:
    """`POST /events` over real HTTP with exactly these headers (latin-1) and bytes; status and text."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.putrequest("POST", "/events", skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value.encode("latin-1"))
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        connection.close()


@contextmanager
def recording_app(values: dict[str, Any]) -> Iterator[tuple[Flask, list[Job], ErrorRecords]]:
    """The real app over a real SQLite store; its queue records jobs instead of running them."""
    app = create_app(load_settings(values, env={}))
    state = app.config["ATLAS_STATE"]
    queued: list[Job] = []
    original = app.config["ATLAS_QUEUE"]
    app.config["ATLAS_QUEUE"] = EmbeddedQueue(queued.append, state, workers=2)
    errors = ErrorRecords()
    logging.getLogger().addHandler(errors)
    try:
        yield app, queued, errors
    finally:
        logging.getLogger().removeHandler(errors)
        app.config["ATLAS_QUEUE"].shutdown()
        original.shutdown()
