"""Property: whatever a sender does to a GitLab delivery, `POST /events` answers it below 500, with a reason.

Hypothesis starts from GitLab's documented Merge Request Hook and Note Hook payloads
(`tests/data/gitlab/webhooks`), with every action GitLab documents, new commits or none (`oldrev`),
draft changes and note bodies that are atlas commands, then mutates them as the GitHub fuzz test
does (`tests/fuzzing.py`) and sends them with `X-Gitlab-Event`, `X-Gitlab-Token` and
`X-Gitlab-Event-UUID` mostly right and sometimes wrong, missing or garbage. Every answer must be a
2xx or a 4xx with a reason, nothing may be logged at ERROR, and a redelivered event UUID is never
queued twice (a delivery without one, as older GitLab sends, cannot be told from a new one).

It runs in-process against the Flask app of an atlas serving GitLab alone, with a real SQLite state
store (`ATLAS_FUZZ_EXAMPLES`, as the GitHub test), and a smaller share over real HTTP through atlas's
front. Queued jobs are recorded, not run.
"""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atlas.models import Job
from tests.atlas_plugin import served_through_front
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
from tests.gitlab_emulator.responses import example
from tests.gitlab_emulator.webhooks import MERGE_REQUEST_ACTIONS, MERGE_REQUEST_HOOK, NOTE_HOOK, USER_AGENT

FUZZ_EXAMPLES = int(os.environ.get("ATLAS_FUZZ_EXAMPLES", "10000")) // 2
HTTP_EXAMPLES = max(50, FUZZ_EXAMPLES // 20)
SECRET = "gitlab-fuzzing-token"

RECORDED = {"webhooks/merge_request": MERGE_REQUEST_HOOK, "webhooks/note.merge_request": NOTE_HOOK}
"""Documented payload → the `X-Gitlab-Event` GitLab sends it under."""
BASES = {name: example(name) for name in RECORDED}
PATHS = {name: paths(body)[1:] for name, body in BASES.items()}
OTHER_EVENTS = ["Push Hook", "Tag Push Hook", "Pipeline Hook", "Issue Hook", "System Hook", "Job Hook", ""]


@dataclass(frozen=True)
class Case:
    """One GitLab delivery to send: its headers and body, all decided by Hypothesis."""

    event: str | None
    body: bytes
    content_type: str
    token: str | None
    event_uuid: str | None

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": self.content_type, "User-Agent": USER_AGENT}
        for name, value in (("X-Gitlab-Event", self.event), ("X-Gitlab-Token", self.token),
                            ("X-Gitlab-Event-UUID", self.event_uuid)):
            if value is not None:
                headers[name] = value
        return headers


@st.composite
def gitlab_payload(draw: st.DrawFn, name: str) -> dict[str, Any]:
    """A documented payload as atlas meets it: any documented action, new commits or not, drafts, commands."""
    payload: dict[str, Any] = json.loads(json.dumps(BASES[name]))
    attributes = payload["object_attributes"]
    if name == "webhooks/merge_request":
        attributes["action"] = draw(st.sampled_from(MERGE_REQUEST_ACTIONS))
        if draw(st.booleans()):
            attributes["oldrev"] = draw(st.sampled_from(["0" * 40, "a" * 40, ""]))
        if draw(st.booleans()):
            attributes["draft"] = draw(st.booleans())
            payload["changes"] = {"draft": {"previous": not attributes["draft"], "current": attributes["draft"]}}
    elif draw(st.booleans()):
        attributes["note"] = draw(comment_bodies)
    return payload


@st.composite
def cases(draw: st.DrawFn) -> Case:
    name = draw(st.sampled_from(sorted(RECORDED)))
    payload = draw(gitlab_payload(name))
    for mutation in draw(st.lists(mutations(PATHS[name]), max_size=3)):
        payload = mutate(payload, mutation)
    body, content_type = draw(mutated_body(payload, b'"iid":'))
    event: str | None = draw(st.sampled_from([RECORDED[name]] * 16 + [MERGE_REQUEST_HOOK, NOTE_HOOK, *OTHER_EVENTS]))
    if draw(st.integers(0, 19)) == 0:
        event = draw(st.none() | header_text)
    token = draw(sometimes_damaged(SECRET, [None, "", SECRET.upper(), SECRET + " ", "x" * 5000]))
    event_uuid = draw(sometimes_damaged(str(uuid.uuid4()), [None, "", "x" * 101]))
    return Case(event=event, body=body, content_type=content_type, token=token, event_uuid=event_uuid)


def fuzzed_app(tmp_path: Path) -> AbstractContextManager[tuple[Flask, list[Job], ErrorRecords]]:
    # GitLab alone; its API is never asked (the notes' author is told apart by --gitlab-user).
    return recording_app({"data_dir": str(tmp_path / "data"), "gitlab_token": "glpat-fuzz",
                          "gitlab_webhook_secret": SECRET, "gitlab_hostname": "http://127.0.0.1:9",
                          "gitlab_user": "atlas-bot", "repo_allowlist": "*"})


FUZZ_SETTINGS = settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None,
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                HealthCheck.filter_too_much, HealthCheck.large_base_example])


def test_no_mutation_of_a_gitlab_delivery_gets_a_5xx_or_a_traceback_and_none_is_queued_twice(
    tmp_path: Path,
) -> None:
    with fuzzed_app(tmp_path) as (app, queued, errors):
        client = app.test_client()
        answers: Counter[int] = Counter()

        @FUZZ_SETTINGS
        @given(case=cases(), redeliver=st.integers(0, 9))
        def deliver(case: Case, redeliver: int) -> None:
            response = client.post("/events", data=case.body, headers=case.headers())
            check_answer(response.status_code, response.get_data(as_text=True), case)
            answers[response.status_code] += 1
            # Without an event UUID (GitLab before 16.x sends none) there is nothing to tell a redelivery by.
            if redeliver == 0 and response.status_code == 202 and case.event_uuid:
                again = client.post("/events", data=case.body, headers=case.headers())
                assert again.status_code == 200, f"a redelivery was answered {again.status_code} for {case!r:.600}"
            assert not errors.records, describe(errors)

        deliver()
    # The queue has drained (the app's queue was shut down): one job per accepted delivery, none per redelivery.
    assert queued, "some mutations were accepted and queued"
    assert len(queued) == answers[202], f"{len(queued)} jobs queued for {answers[202]} deliveries accepted"
    assert answers[401] and answers[400], f"bad tokens and bad payloads were among the cases: {answers}"


def test_no_gitlab_delivery_sent_over_http_through_the_front_gets_a_5xx(tmp_path: Path) -> None:
    with fuzzed_app(tmp_path) as (app, _, errors), served_through_front(app, threads=4) as port:

        @settings(FUZZ_SETTINGS, max_examples=HTTP_EXAMPLES)
        @given(case=cases())
        def deliver(case: Case) -> None:
            status, answer = post_raw(port, case.headers(), case.body)
            check_answer(status, answer, case)
            assert not errors.records, describe(errors)

        deliver()
