"""Property: whatever a sender does to a real delivery, `POST /events` answers it below 500, with a reason.

Hypothesis mutates GitHub's recorded payloads (tests/emulator/recordings: `tests/data/github/webhooks`):
values replaced by any JSON (integers of any size, floats, lone surrogates, deep nests), keys
removed, comment bodies made into atlas commands, the serialised bytes cut, patched or nested
50,000 deep, and the headers (event, content type, signature, delivery id) changed. Most cases are
signed correctly, so that they reach the parser and the stores. Every answer must be a 2xx or a 4xx
with a reason, and nothing may be logged at ERROR (no traceback).

The bulk runs in-process against the Flask app with a real SQLite state store (`FUZZ_EXAMPLES`,
10,000 unless ATLAS_FUZZ_EXAMPLES says otherwise); a smaller share goes over real HTTP through
atlas's front, whose header parsing the in-process client skips. Queued jobs are recorded, not run:
this is about the edge, and the jobs' own handling is tested end to end elsewhere.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atlas.app import create_app
from atlas.config.settings import load_settings
from atlas.jobs.embedded import EmbeddedQueue
from atlas.models import Job
from tests.atlas_plugin import served_through_front
from tests.emulator import sign
from tests.emulator.recordings import webhook_body

FUZZ_EXAMPLES = int(os.environ.get("ATLAS_FUZZ_EXAMPLES", "10000"))
HTTP_EXAMPLES = max(50, FUZZ_EXAMPLES // 20)
SECRET = "fuzzing-secret"

RECORDED = {
    "pull_request.opened": "pull_request",
    "pull_request.reopened": "pull_request",
    "pull_request.synchronize": "pull_request",
    "pull_request.synchronize.from_fork": "pull_request",
    "pull_request.closed.merged": "pull_request",
    "pull_request.closed.not_merged": "pull_request",
    "issue_comment.created": "issue_comment",
    "issue_comment.created.plain_issue": "issue_comment",
    "issue_comment.edited": "issue_comment",
    "pull_request_review.submitted": "pull_request_review",
    "ping": "ping",
    "push": "push",
    "installation.created": "installation",
}
"""Recorded payload → the event GitHub sends it as."""

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


BASES = {name: webhook_body(name) for name in RECORDED}
PATHS = {name: paths(body)[1:] for name, body in BASES.items()}

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


@dataclass(frozen=True)
class Case:
    """One delivery to send: its headers and body, all decided by Hypothesis."""

    event: str
    body: bytes
    content_type: str
    signature: str | None
    delivery_id: str | None

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": self.content_type, "X-GitHub-Event": self.event,
                   "User-Agent": "GitHub-Hookshot/044aadd"}
        if self.signature is not None:
            headers["X-Hub-Signature-256"] = self.signature
        if self.delivery_id is not None:
            headers["X-GitHub-Delivery"] = self.delivery_id
        return headers


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
def mutations(draw: st.DrawFn, name: str) -> Mutation:
    path = draw(st.sampled_from(PATHS[name]))
    if draw(st.booleans()):
        return Mutation("delete", path)
    return Mutation("set", path, draw(json_values))


def serialise(payload: Any) -> bytes:
    try:
        return json.dumps(payload).encode()
    except ValueError:  # an integer too long for str(): write its digits by hand
        return json.dumps(payload, default=str).encode()


def raw_mutation(body: bytes, kind: str, position: int, noise: bytes) -> bytes:
    at = position % (len(body) + 1)
    if kind == "truncate":
        return body[:at]
    if kind == "insert":
        return body[:at] + noise + body[at:]
    if kind == "overwrite":
        return body[:at] + noise + body[at + len(noise):]
    if kind == "huge number":
        return body.replace(b'"number":', b'"number":' + b"9" * 5000 + b",\"was\":", 1)
    if kind == "deep nesting":
        return b"[" * 50_000 + b"]" * 50_000
    if kind == "deep object":
        return b'{"action":' + b'{"a":' * 50_000 + b"1" + b"}" * 50_000 + b"}"
    if kind == "not utf-8":
        return body[:at] + b"\xff\xfe\xc3" + body[at:]
    return body


@st.composite
def cases(draw: st.DrawFn) -> Case:
    name = draw(st.sampled_from(sorted(RECORDED)))
    payload = json.loads(json.dumps(BASES[name]))
    if name.startswith("issue_comment") and draw(st.booleans()):
        payload["comment"]["body"] = draw(comment_bodies)
    for mutation in draw(st.lists(mutations(name), max_size=3)):
        payload = mutate(payload, mutation)
    body = serialise(payload)
    raw = draw(st.sampled_from(["none"] * 6 + ["truncate", "insert", "overwrite", "huge number", "deep nesting",
                                              "deep object", "not utf-8"]))
    body = raw_mutation(body, raw, draw(st.integers(min_value=0)), draw(st.binary(max_size=16)))
    content_type = draw(st.sampled_from(["application/json"] * 4 + ["application/x-www-form-urlencoded",
                                                                    "text/plain", ""]))
    if content_type == "application/x-www-form-urlencoded" and draw(st.booleans()):
        body = b"payload=" + quote_plus(body).encode()
    # Mostly what GitHub sends, so that most cases get past the headers to the payload.
    header_text = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=80)
    event = draw(st.sampled_from([RECORDED[name]] * 16 + ["pull_request", "issue_comment", "ping", ""]))
    if draw(st.integers(0, 19)) == 0:
        event = draw(header_text)
    signature: str | None = sign(body, SECRET)
    roll = draw(st.integers(0, 19))
    if roll == 0:
        signature = draw(st.sampled_from([None, "sha256=", "sha1=abc", "sha256=" + "0" * 64, "sha256=\xe9\xe9"]))
    elif roll == 1:
        signature = draw(header_text)
    delivery_id: str | None = str(uuid.uuid4())
    roll = draw(st.integers(0, 19))
    if roll == 0:
        delivery_id = draw(st.sampled_from([None, "", "x" * 101]))
    elif roll == 1:
        delivery_id = draw(header_text)
    return Case(event=event, body=body, content_type=content_type, signature=signature, delivery_id=delivery_id)


class ErrorRecords(logging.Handler):
    """Every record at ERROR or above, and every record carrying a traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info or "Traceback" in record.getMessage():
            self.records.append(record)


@contextmanager
def fuzzed_app(tmp_path: Path) -> Iterator[tuple[Flask, list[Job], ErrorRecords]]:
    """The real app over a real SQLite store; its queue records jobs instead of running them."""
    app = create_app(load_settings({
        "data_dir": str(tmp_path / "data"), "gh_token": "ghp_fuzz", "gh_webhook_secret": SECRET,
        "repo_allowlist": "*", "gh_user": "atlas-bot",
    }, env={}))
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


def check_answer(status: int, text: str, case: Case) -> None:
    assert status < 500, f"{status} {text!r} for {case!r:.600}"
    assert text.strip(), f"{status} without a reason for {case!r:.600}"


def describe(errors: ErrorRecords) -> str:
    return "\n".join(f"{r.levelname} {r.name}: {r.getMessage()}" for r in errors.records[:5])


def test_no_mutation_of_a_real_delivery_gets_a_5xx_or_a_traceback(tmp_path: Path) -> None:
    with fuzzed_app(tmp_path) as (app, queued, errors):
        client = app.test_client()

        @settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                         HealthCheck.filter_too_much, HealthCheck.large_base_example])
        @given(case=cases())
        def deliver(case: Case) -> None:
            response = client.post("/events", data=case.body, headers=case.headers())
            check_answer(response.status_code, response.get_data(as_text=True), case)
            assert not errors.records, describe(errors)

        deliver()
    assert queued, "some mutations were accepted and queued"


def test_no_mutation_sent_over_http_through_the_front_gets_a_5xx(tmp_path: Path) -> None:
    with fuzzed_app(tmp_path) as (app, _, errors), served_through_front(app, threads=4) as port:

        @settings(max_examples=HTTP_EXAMPLES, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                         HealthCheck.filter_too_much, HealthCheck.large_base_example])
        @given(case=cases())
        def deliver(case: Case) -> None:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                connection.putrequest("POST", "/events", skip_accept_encoding=True)
                for name, value in case.headers().items():
                    connection.putheader(name, value.encode("latin-1"))
                connection.putheader("Content-Length", str(len(case.body)))
                connection.endheaders(case.body)
                response = connection.getresponse()
                check_answer(response.status, response.read().decode("utf-8", "replace"), case)
            finally:
                connection.close()
            assert not errors.records, describe(errors)

        deliver()
