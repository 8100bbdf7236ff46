"""Webhook payloads → typed events, and events → the jobs they ask for.

Pure functions of their inputs: no HTTP, no clients, no settings objects beyond the plain values
passed in, so every payload shape and decision is easy to test on its own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from atlas.intake.comment_parser import CommentError, NotForAtlas, parse_comment
from atlas.models import CommandArgs, CommandName, Job, PullRequest, Repo
from atlas.render.comments import render_usage

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


@dataclass(frozen=True)
class CommentEvent:
    """A new comment on a pull request (GitHub sends pull request comments as issue comments)."""

    repo: Repo
    number: int
    comment_id: int
    body: str
    commenter: str
    commenter_is_bot: bool

    @property
    def pull_stub(self) -> PullRequest:
        """The pull request as far as the comment names it; the job refreshes it from the API."""
        return PullRequest(repo=self.repo, number=self.number, head_sha="", head_ref="", base_ref="", author="")


Event = Ping | PullRequestEvent | CommentEvent

AUTOPLAN_ACTIONS = frozenset({"opened", "reopened", "synchronize", "ready_for_review"})
PULL_REQUEST_ACTIONS = AUTOPLAN_ACTIONS | {"closed"}


def parse_event(event_name: str, payload: Mapping[str, Any]) -> Event | Ignored:
    """Turn one delivery into the event atlas handles, or say why it is ignored."""
    if event_name == "ping":
        hook = payload.get("hook")
        hook_id = hook.get("id") if isinstance(hook, Mapping) else None
        return Ping(zen=str(payload.get("zen", "")), hook_id=hook_id if isinstance(hook_id, int) else None)
    if event_name == "pull_request":
        action = require(payload, "action", str)
        if action not in PULL_REQUEST_ACTIONS:
            return Ignored(f"pull_request action {action[:100]!r} is not one atlas acts on")
        pr = require(payload, "pull_request", dict)
        return PullRequestEvent(
            action=action,
            pull=parse_pull(pr, require(payload, "repository", dict)),
            sender=_login(payload.get("sender")) or _login(pr.get("user")) or "",
            merged=bool(pr.get("merged")),
            merge_commit_sha=pr.get("merge_commit_sha") if isinstance(pr.get("merge_commit_sha"), str) else None,
        )
    if event_name == "issue_comment":
        return _parse_comment_event(payload)
    return Ignored(f"event {event_name[:100]!r} is not one atlas acts on")


def _parse_comment_event(payload: Mapping[str, Any]) -> CommentEvent | Ignored:
    action = require(payload, "action", str)
    if action != "created":
        return Ignored(f"issue_comment action {action[:100]!r} is not one atlas acts on (only new comments are)")
    issue = require(payload, "issue", dict)
    if not isinstance(issue.get("pull_request"), Mapping):
        return Ignored("comment is on an issue, not on a pull request")
    comment = require(payload, "comment", dict)
    user = comment.get("user")
    return CommentEvent(
        repo=parse_repo(require(payload, "repository", dict)),
        number=require_int(issue, "number", "issue", MAX_NUMBER),
        comment_id=require_int(comment, "id", "comment", MAX_ID),
        body=require(comment, "body", str, "comment"),
        commenter=_login(user) or "",
        commenter_is_bot=isinstance(user, Mapping) and user.get("type") == "Bot",
    )


def parse_repo(repository: Mapping[str, Any], where: str = "repository") -> Repo:
    full_name = require(repository, "full_name", str, where)
    if not _FULL_NAME.fullmatch(full_name):
        raise PayloadError(f"{where}.full_name {full_name[:200]!r} is not OWNER/NAME")
    return Repo(
        full_name=full_name,
        clone_url=url_field(repository, "clone_url", where),
        html_url=url_field(repository, "html_url", where),
        default_branch=str(repository.get("default_branch") or "main"),
        private=bool(repository.get("private", False)),
    )


def url_field(data: Mapping[str, Any], key: str, where: str) -> str:
    """A URL field as text, checked to parse; atlas shows it in links but never connects to it."""
    value = require(data, key, str, where)
    try:
        parts = urlsplit(value)
        _ = parts.port, parts.hostname
    except ValueError as error:
        raise PayloadError(f"payload field {where}.{key} is not a URL: {error}") from None
    return value


def parse_pull(pr: Mapping[str, Any], repository: Mapping[str, Any]) -> PullRequest:
    repo = parse_repo(repository)
    head = require(pr, "head", dict, "pull_request")
    base = require(pr, "base", dict, "pull_request")
    head_repo = head.get("repo")
    # A fork whose repository was deleted arrives with `head.repo: null`; it is still a fork.
    head_full_name = head_repo.get("full_name") if isinstance(head_repo, Mapping) else None
    return PullRequest(
        repo=repo,
        number=require_int(pr, "number", "pull_request", MAX_NUMBER),
        head_sha=require(head, "sha", str, "pull_request.head"),
        head_ref=require(head, "ref", str, "pull_request.head"),
        base_ref=require(base, "ref", str, "pull_request.base"),
        base_sha=str(base.get("sha") or ""),
        author=_login(pr.get("user")) or "",
        html_url=str(pr.get("html_url") or ""),
        title=str(pr.get("title") or ""),
        is_draft=bool(pr.get("draft", False)),
        is_fork=head_full_name != repo.full_name,
        head_clone_url=str(head_repo.get("clone_url") or "") if isinstance(head_repo, Mapping) else "",
        is_open=pr.get("state", "open") == "open",
        merged=bool(pr.get("merged")),
        merge_commit_sha=str(pr.get("merge_commit_sha") or "") if pr.get("merged") else "",
        merged_by=_login(pr.get("merged_by")) or "",
        labels=_labels(pr.get("labels")),
    )


def _labels(value: object) -> tuple[str, ...]:
    """The names of a payload's `labels` (a list of label objects); anything else is no labels."""
    if not isinstance(value, list):
        return ()
    return tuple(str(label["name"]) for label in value if isinstance(label, Mapping) and label.get("name"))


def job_for_event(event: PullRequestEvent, *, allow_draft_prs: bool, delivery_id: str | None) -> Job | Ignored:
    """The job a pull request event asks for, or why it asks for none."""
    if event.action == "closed":
        return Job(command=CommandName.CLEANUP, pull=event.pull, delivery_id=delivery_id,
                   requested_by=event.sender, merged=event.merged)
    if event.pull.is_draft and not allow_draft_prs:
        return Ignored(f"pull request #{event.pull.number} is a draft (set --allow-draft-prs to plan drafts)")
    return Job(command=CommandName.AUTOPLAN, pull=event.pull, delivery_id=delivery_id, requested_by=event.sender)




def job_for_comment(
    event: CommentEvent,
    *,
    prefixes: Sequence[str],
    allowed_commands: Sequence[str],
    allow_backend_config: bool,
    bot_login: str | None,
    delivery_id: str | None,
) -> Job | Ignored:
    """The job a comment asks for: a command, a refusal that says what was wrong, or nothing."""
    if bot_login and event.commenter.lower() == bot_login.lower():
        return Ignored("comment is atlas's own")
    def job(command: CommandName, *, args: CommandArgs | None = None, message: str = "") -> Job:
        return Job(command=command, pull=event.pull_stub, delivery_id=delivery_id, requested_by=event.commenter,
                   comment_id=event.comment_id, args=args or CommandArgs(), message=message)

    try:
        parsed = parse_comment(event.body, prefixes=prefixes, allowed_commands=allowed_commands,
                               allow_backend_config=allow_backend_config)
    except CommentError as error:
        if event.commenter_is_bot:
            return Ignored("comment by a bot is not a valid atlas command")
        if error.usage:
            return job(CommandName.REFUSE,
                       message=render_usage(prefixes[0], problem=error.message, allowed=allowed_commands))
        return job(CommandName.REFUSE, message=error.message)
    if isinstance(parsed, NotForAtlas):
        return Ignored(f"comment is not an atlas command ({parsed.reason})")
    return job(parsed.kind, args=CommandArgs(
        dir=parsed.dir, workspace=parsed.workspace, project=parsed.project, verbose=parsed.verbose,
        clear_policy_approval=parsed.clear_policy_approval, extra_args=parsed.extra_args, positional=parsed.positional,
    ))


def _login(user: object) -> str | None:
    if isinstance(user, Mapping) and isinstance(user.get("login"), str):
        return str(user["login"])
    return None


MAX_NUMBER = 2**31 - 1
"""Pull request and issue numbers are 32-bit on GitHub; a larger one is not GitHub's."""

MAX_ID = 2**63 - 1
"""GitHub's ids (comments, hooks) are 64-bit signed integers, as the stores keep them."""

_FULL_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}")
"""The characters GitHub allows in owner and repository names."""


def require_int(data: Mapping[str, Any], key: str, where: str, maximum: int) -> int:
    value = require(data, key, int, where)
    if not 1 <= value <= maximum:
        raise PayloadError(f"payload field {where}.{key} is {value}, outside 1..{maximum}")
    return value


def require(data: Mapping[str, Any], key: str, kind: type[T], where: str = "") -> T:
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
