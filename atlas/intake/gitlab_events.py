"""GitLab webhook payloads → the same events as GitHub's: Merge Request Hook and Note Hook.

Pure functions of their inputs, as `atlas.intake.events` is for GitHub, and producing its types:
a merge request is a `PullRequestEvent` whose action is already GitHub's word (`opened`,
`reopened`, `synchronize`, `ready_for_review`, `closed`), a note is a `CommentEvent`, so the job
for an event is chosen the same way for both hosts. Every repository they name is a GitLab one
(`Repo.vcs`), so the command pipeline answers it through the GitLab client.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from atlas.intake.events import (
    CommentEvent,
    Ignored,
    PayloadError,
    PullRequestEvent,
    require,
    require_int,
    url_field,
)
from atlas.models import PullRequest, Repo, VCSHost

MERGE_REQUEST_HOOK = "Merge Request Hook"
NOTE_HOOK = "Note Hook"

MAX_IID = 2**31 - 1
"""Merge request iids are 32-bit on GitLab."""
MAX_ID = 2**63 - 1
"""GitLab's ids (notes, projects) are 64-bit."""

_PROJECT_PATH = re.compile(r"[A-Za-z0-9_.-]{1,255}(/[A-Za-z0-9_.-]{1,255}){1,20}")
"""`group[/subgroup…]/project`: GitLab's path characters, up to its 20 levels of nested groups."""
_BOT_USERNAME = re.compile(r"(project|group)_\d+_bot(_[0-9a-f]+)?")
"""Users GitLab makes for project and group access tokens."""
_VISIBILITY_PUBLIC = 20


def parse_gitlab_event(
    event_name: str, payload: Mapping[str, Any], *, bot_username: str | None = None
) -> PullRequestEvent | CommentEvent | Ignored:
    """Turn one GitLab delivery (`X-Gitlab-Event` and its JSON) into an event, or say why it is ignored."""
    kind = payload.get("object_kind")
    if event_name == MERGE_REQUEST_HOOK:
        if kind != "merge_request":
            raise PayloadError(f"a {MERGE_REQUEST_HOOK} has object_kind {str(kind)[:50]!r}, not 'merge_request'")
        return _merge_request_event(payload)
    if event_name == NOTE_HOOK:
        if kind != "note":
            raise PayloadError(f"a {NOTE_HOOK} has object_kind {str(kind)[:50]!r}, not 'note'")
        return _note_event(payload, bot_username)
    return Ignored(f"GitLab event {event_name[:100]!r} is not one atlas acts on")


def _merge_request_event(payload: Mapping[str, Any]) -> PullRequestEvent | Ignored:
    attributes = require(payload, "object_attributes", dict)
    action = require(attributes, "action", str, "object_attributes")
    oldrev = attributes.get("oldrev") if isinstance(attributes.get("oldrev"), str) else None
    raw_changes = payload.get("changes")
    changes: Mapping[str, Any] = raw_changes if isinstance(raw_changes, Mapping) else {}
    if action == "open":
        translated = "opened"
    elif action == "reopen":
        translated = "reopened"
    elif action == "update" and oldrev:
        translated = "synchronize"
    elif action == "update" and _became_ready(changes):
        translated = "ready_for_review"
    elif action == "update":
        return Ignored("merge request update without new commits (title, labels, description) is not one atlas acts on")
    elif action in ("close", "merge"):
        translated = "closed"
    else:
        return Ignored(f"merge request action {action[:100]!r} is not one atlas acts on")
    repo = parse_project(require(payload, "project", dict))
    pull = parse_merge_request(attributes, repo, payload.get("user"))
    # The hook's labels are objects with a `title`, as the merge request carries them now.
    raw_labels = payload.get("labels")
    if isinstance(raw_labels, list):
        titles = (label.get("title") for label in raw_labels if isinstance(label, Mapping))
        pull = pull.model_copy(update={"labels": tuple(str(title) for title in titles if title)})
    merged = action == "merge"
    if merged and not pull.merged:
        pull = pull.model_copy(update={"merged": True, "is_open": False})
    return PullRequestEvent(
        action=translated,
        pull=pull,
        sender=_username(payload.get("user")) or "",
        merged=merged,
        merge_commit_sha=(pull.merge_commit_sha or None) if merged else None,
    )


def _became_ready(changes: Mapping[str, Any]) -> bool:
    """The update took the draft mark off (GitHub's `ready_for_review`)."""
    for key in ("draft", "work_in_progress"):
        change = changes.get(key)
        if isinstance(change, Mapping) and change.get("previous") is True and change.get("current") is False:
            return True
    return False


def _note_event(payload: Mapping[str, Any], bot_username: str | None) -> CommentEvent | Ignored:
    attributes = require(payload, "object_attributes", dict)
    noteable = attributes.get("noteable_type")
    if noteable != "MergeRequest":
        return Ignored(f"note is on a {str(noteable)[:50]}, not on a merge request")
    action = attributes.get("action", "create")
    if action != "create":
        return Ignored(f"note action {str(action)[:50]!r} is not one atlas acts on (only new notes are)")
    if attributes.get("system"):
        return Ignored("note is a system note")
    user = payload.get("user")
    commenter = _username(user) or ""
    if bot_username and commenter.lower() == bot_username.lower():
        return Ignored("note is atlas's own")
    merge_request = require(payload, "merge_request", dict)
    return CommentEvent(
        repo=parse_project(require(payload, "project", dict)),
        number=require_int(merge_request, "iid", "merge_request", MAX_IID),
        comment_id=require_int(attributes, "id", "object_attributes", MAX_ID),
        body=require(attributes, "note", str, "object_attributes"),
        commenter=commenter,
        commenter_is_bot=bool(_BOT_USERNAME.fullmatch(commenter))
        or (isinstance(user, Mapping) and bool(user.get("bot"))),
    )


def parse_project(project: Mapping[str, Any], where: str = "project") -> Repo:
    """The project as atlas's `Repo`: `full_name` is the whole path, nested groups included."""
    full_path = require(project, "path_with_namespace", str, where)
    if not _PROJECT_PATH.fullmatch(full_path):
        raise PayloadError(f"{where}.path_with_namespace {full_path[:200]!r} is not group[/subgroup…]/project")
    visibility = project.get("visibility_level")
    return Repo(
        full_name=full_path,
        clone_url=url_field(project, "git_http_url", where),
        html_url=url_field(project, "web_url", where),
        default_branch=str(project.get("default_branch") or "main"),
        private=visibility != _VISIBILITY_PUBLIC,
        vcs=VCSHost.GITLAB,
    )


def parse_merge_request(attributes: Mapping[str, Any], repo: Repo, user: object = None) -> PullRequest:
    """The merge request of a Merge Request Hook's `object_attributes`."""
    where = "object_attributes"
    last_commit = require(attributes, "last_commit", dict, where)
    source = attributes.get("source")
    source_project_id = attributes.get("source_project_id")
    target_project_id = attributes.get("target_project_id")
    state = str(attributes.get("state") or "opened")
    merged = state == "merged"
    # The hook names the author by id only; the sender is the author when the ids agree.
    author = ""
    if isinstance(user, Mapping) and user.get("id") is not None and user.get("id") == attributes.get("author_id"):
        author = _username(user) or ""
    return PullRequest(
        repo=repo,
        number=require_int(attributes, "iid", where, MAX_IID),
        head_sha=require(last_commit, "id", str, f"{where}.last_commit"),
        head_ref=require(attributes, "source_branch", str, where),
        base_ref=require(attributes, "target_branch", str, where),
        author=author,
        html_url=str(attributes.get("url") or ""),
        title=str(attributes.get("title") or ""),
        is_draft=bool(attributes.get("draft") or attributes.get("work_in_progress")),
        is_fork=source_project_id is not None and source_project_id != target_project_id,
        head_clone_url=str(source.get("git_http_url") or "") if isinstance(source, Mapping) else "",
        is_open=state == "opened",
        merged=merged,
        merge_commit_sha=str(attributes.get("merge_commit_sha") or "") if merged else "",
    )


def _username(user: object) -> str | None:
    if isinstance(user, Mapping) and isinstance(user.get("username"), str):
        return str(user["username"])
    return None
