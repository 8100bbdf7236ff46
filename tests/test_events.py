"""Parsing real GitHub payloads into the events atlas acts on, and the jobs they ask for."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from atlas.intake.events import Ignored, PayloadError, Ping, PullRequestEvent, job_for_event, parse_event
from atlas.models import CommandName, Job

WEBHOOKS = Path(__file__).resolve().parent / "data" / "github" / "webhooks"


def payload(name: str) -> dict[str, Any]:
    path = WEBHOOKS / f"{name}.json"
    if not path.exists():
        pytest.fail(f"{path} is missing: GitHub's recorded payloads belong in tests/data/github/webhooks")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_pull_request_opened_becomes_an_autoplan_job() -> None:
    event = parse_event("pull_request", payload("pull_request.opened"))
    assert isinstance(event, PullRequestEvent)
    pull = event.pull
    assert (pull.repo.full_name, pull.number, pull.head_ref, pull.base_ref) == (
        "Codertocat/Hello-World",
        2,
        "changes",
        "master",
    )
    assert pull.repo.allowlist_id == "github.com/Codertocat/Hello-World"
    assert len(pull.head_sha) == 40
    assert pull.author == "Codertocat"
    assert not pull.is_fork
    job = job_for_event(event, allow_draft_prs=False, delivery_id="d1")
    assert isinstance(job, Job)
    assert job.command is CommandName.AUTOPLAN
    assert job.delivery_id == "d1"


@pytest.mark.parametrize("name", ["pull_request.reopened", "pull_request.synchronize"])
def test_reopen_and_push_trigger_autoplan(name: str) -> None:
    event = parse_event("pull_request", payload(name))
    assert isinstance(event, PullRequestEvent)
    job = job_for_event(event, allow_draft_prs=False, delivery_id=None)
    assert isinstance(job, Job) and job.command is CommandName.AUTOPLAN


def test_pull_request_from_a_fork_is_marked_as_fork() -> None:
    event = parse_event("pull_request", payload("pull_request.synchronize.from_fork"))
    assert isinstance(event, PullRequestEvent)
    assert event.pull.is_fork
    assert event.pull.head_clone_url.endswith(".git")


@pytest.mark.parametrize(
    "name,merged", [("pull_request.closed.merged", True), ("pull_request.closed.not_merged", False)]
)
def test_closed_pull_request_becomes_cleanup(name: str, merged: bool) -> None:
    event = parse_event("pull_request", payload(name))
    assert isinstance(event, PullRequestEvent)
    assert event.merged is merged
    job = job_for_event(event, allow_draft_prs=False, delivery_id=None)
    assert isinstance(job, Job) and job.command is CommandName.CLEANUP
    assert job.merged is merged


def test_draft_pull_request_is_ignored_unless_allowed() -> None:
    data = payload("pull_request.opened")
    data["pull_request"]["draft"] = True
    event = parse_event("pull_request", data)
    assert isinstance(event, PullRequestEvent)
    ignored = job_for_event(event, allow_draft_prs=False, delivery_id=None)
    assert isinstance(ignored, Ignored) and "--allow-draft-prs" in ignored.reason
    assert isinstance(job_for_event(event, allow_draft_prs=True, delivery_id=None), Job)


@pytest.mark.parametrize("name", ["ping", "ping.app"])
def test_ping_is_recognised(name: str) -> None:
    assert isinstance(parse_event("ping", payload(name)), Ping)


@pytest.mark.parametrize(
    "event_name,name",
    [
        ("push", "push"),
        ("installation", "installation.created"),
        ("pull_request_review", "pull_request_review.submitted"),
    ],
)
def test_events_atlas_does_not_act_on_are_ignored_with_a_reason(event_name: str, name: str) -> None:
    result = parse_event(event_name, payload(name))
    assert isinstance(result, Ignored)
    assert event_name in result.reason


def test_unhandled_pull_request_action_is_ignored() -> None:
    data = payload("pull_request.opened")
    data["action"] = "labeled"
    result = parse_event("pull_request", data)
    assert isinstance(result, Ignored) and "labeled" in result.reason


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda d: d.pop("pull_request"), "payload has no pull_request"),
        (lambda d: d["pull_request"].pop("head"), "payload has no pull_request.head"),
        (lambda d: d["pull_request"]["head"].pop("sha"), "payload has no pull_request.head.sha"),
        (lambda d: d["pull_request"].__setitem__("number", "2"), "pull_request.number should be a number"),
        (lambda d: d["repository"].pop("clone_url"), "payload has no repository.clone_url"),
        (lambda d: d.__setitem__("action", 7), "action should be a string"),
    ],
)
def test_payload_missing_what_the_event_needs_says_what(mutate: Any, message: str) -> None:
    data = payload("pull_request.opened")
    mutate(data)
    with pytest.raises(PayloadError, match=message):
        parse_event("pull_request", data)
