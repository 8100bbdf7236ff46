"""Webhook payloads → typed events, and events → the jobs they ask for.

Pure functions of their inputs: no HTTP, no clients, no settings objects beyond the plain values
passed in, so every payload shape and decision is easy to test on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from atlas.models import CommandName, Job, PullRequest, Repo

T = TypeVar("T")


class PayloadError(ValueError):
    """The payload lacks something the event needs; the message says what (HTTP 400)."""


@dataclass(frozen=True)
class Ignored:
    """An event atlas acknowledges but does nothing with; `reason` goes back to GitHub."""

    reason: str


@dataclass(frozen=True)
class Ping:
    zen: str
    hook_id: int | None


@dataclass(frozen=True)
class PullRequestEvent:
    action: str
    pull: PullRequest
    sender: str
    merged: bool = False
    merge_commit_sha: str | None = None

    @property
    def repo(self) -> Repo:
        return self.pull.repo


Event = Ping | PullRequestEvent

AUTOPLAN_ACTIONS = frozenset({"opened", "reopened", "synchronize", "ready_for_review"})
PULL_REQUEST_ACTIONS = AUTOPLAN_ACTIONS | {"closed"}


def parse_event(event_name: str, payload: Mapping[str, Any]) -> Event | Ignored:
    """Turn one delivery into the event atlas handles, or say why it is ignored."""
    if event_name == "ping":
        hook = payload.get("hook")
        hook_id = hook.get("id") if isinstance(hook, Mapping) else None
        return Ping(zen=str(payload.get("zen", "")), hook_id=hook_id if isinstance(hook_id, int) else None)
    if event_name == "pull_request":
        action = _require(payload, "action", str)
        if action not in PULL_REQUEST_ACTIONS:
            return Ignored(f"pull_request action {action!r} is not one atlas acts on")
        pr = _require(payload, "pull_request", dict)
        return PullRequestEvent(
            action=action,
            pull=parse_pull(pr, _require(payload, "repository", dict)),
            sender=_login(payload.get("sender")) or _login(pr.get("user")) or "",
            merged=bool(pr.get("merged")),
            merge_commit_sha=pr.get("merge_commit_sha") if isinstance(pr.get("merge_commit_sha"), str) else None,
        )
    return Ignored(f"event {event_name!r} is not one atlas acts on")


def parse_repo(repository: Mapping[str, Any], where: str = "repository") -> Repo:
    full_name = _require(repository, "full_name", str, where)
    if full_name.count("/") != 1:
        raise PayloadError(f"{where}.full_name {full_name!r} is not OWNER/NAME")
    return Repo(
        full_name=full_name,
        clone_url=_require(repository, "clone_url", str, where),
        html_url=_require(repository, "html_url", str, where),
        default_branch=str(repository.get("default_branch") or "main"),
        private=bool(repository.get("private", False)),
    )


def parse_pull(pr: Mapping[str, Any], repository: Mapping[str, Any]) -> PullRequest:
    repo = parse_repo(repository)
    head = _require(pr, "head", dict, "pull_request")
    base = _require(pr, "base", dict, "pull_request")
    head_repo = head.get("repo")
    # A fork whose repository was deleted arrives with `head.repo: null`; it is still a fork.
    head_full_name = head_repo.get("full_name") if isinstance(head_repo, Mapping) else None
    return PullRequest(
        repo=repo,
        number=_require(pr, "number", int, "pull_request"),
        head_sha=_require(head, "sha", str, "pull_request.head"),
        head_ref=_require(head, "ref", str, "pull_request.head"),
        base_ref=_require(base, "ref", str, "pull_request.base"),
        base_sha=str(base.get("sha") or ""),
        author=_login(pr.get("user")) or "",
        html_url=str(pr.get("html_url") or ""),
        title=str(pr.get("title") or ""),
        is_draft=bool(pr.get("draft", False)),
        is_fork=head_full_name != repo.full_name,
        head_clone_url=str(head_repo.get("clone_url") or "") if isinstance(head_repo, Mapping) else "",
    )


def job_for_event(event: PullRequestEvent, *, allow_draft_prs: bool, delivery_id: str | None) -> Job | Ignored:
    """The job a pull request event asks for, or why it asks for none."""
    if event.action == "closed":
        return Job(command=CommandName.CLEANUP, pull=event.pull, delivery_id=delivery_id,
                   requested_by=event.sender, args={"merged": event.merged})
    if event.pull.is_draft and not allow_draft_prs:
        return Ignored(f"pull request #{event.pull.number} is a draft (set --allow-draft-prs to plan drafts)")
    return Job(command=CommandName.AUTOPLAN, pull=event.pull, delivery_id=delivery_id, requested_by=event.sender)


def _login(user: object) -> str | None:
    if isinstance(user, Mapping) and isinstance(user.get("login"), str):
        return str(user["login"])
    return None


def _require(data: Mapping[str, Any], key: str, kind: type[T], where: str = "") -> T:
    value = data.get(key)
    path = f"{where}.{key}" if where else key
    if value is None:
        raise PayloadError(f"payload has no {path}")
    # bool is an int subclass; a `true` where a number belongs is still malformed.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise PayloadError(f"payload field {path} should be {_kind_name(kind)}, not {type(value).__name__}")
    return value


def _kind_name(kind: type) -> str:
    return {str: "a string", int: "a number", dict: "an object"}.get(kind, kind.__name__)
