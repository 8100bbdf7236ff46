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

import json
import os
import uuid
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atlas.models import Job
from tests.atlas_plugin import served_through_front
from tests.emulator import sign
from tests.emulator.recordings import webhook_body
from tests.fuzzing import (
    ErrorRecords,
    check_answer,
    comment_bodies,
    describe,
    header_text,
    mutate,
    mutated_body,
    mutations,
    paths,
    post_raw,
    recording_app,
    sometimes_damaged,
)

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

BASES = {name: webhook_body(name) for name in RECORDED}
PATHS = {name: paths(body)[1:] for name, body in BASES.items()}

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


@st.composite
def cases(draw: st.DrawFn) -> Case:
    name = draw(st.sampled_from(sorted(RECORDED)))
    payload = json.loads(json.dumps(BASES[name]))
    if name.startswith("issue_comment") and draw(st.booleans()):
        payload["comment"]["body"] = draw(comment_bodies)
    for mutation in draw(st.lists(mutations(PATHS[name]), max_size=3)):
        payload = mutate(payload, mutation)
    body, content_type = draw(mutated_body(payload, b'"number":'))
    # Mostly what GitHub sends, so that most cases get past the headers to the payload.
    event = draw(st.sampled_from([RECORDED[name]] * 16 + ["pull_request", "issue_comment", "ping", ""]))
    if draw(st.integers(0, 19)) == 0:
        event = draw(header_text)
    signature = draw(sometimes_damaged(sign(body, SECRET),
                                       [None, "sha256=", "sha1=abc", "sha256=" + "0" * 64, "sha256=\xe9\xe9"]))
    delivery_id = draw(sometimes_damaged(str(uuid.uuid4()), [None, "", "x" * 101]))
    return Case(event=event, body=body, content_type=content_type, signature=signature, delivery_id=delivery_id)


def fuzzed_app(tmp_path: Path) -> AbstractContextManager[tuple[Flask, list[Job], ErrorRecords]]:
    return recording_app({"data_dir": str(tmp_path / "data"), "gh_token": "ghp_fuzz", "gh_webhook_secret": SECRET,
                          "repo_allowlist": "*", "gh_user": "atlas-bot"})


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
            status, answer = post_raw(port, case.headers(), case.body)
            check_answer(status, answer, case)
            assert not errors.records, describe(errors)

        deliver()
