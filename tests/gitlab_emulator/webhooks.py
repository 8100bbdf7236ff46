"""GitLab's webhook deliveries: Merge Request Hook and Note Hook payloads from the emulated world.

Payloads start from GitLab's documented examples (tests/data/gitlab/webhooks) and carry the
emulator's state, so a payload and the API answer about the same merge request agree. `deliver`
posts one the way GitLab does: JSON body, `X-Gitlab-Event`, the secret token as sent in
`X-Gitlab-Token` (GitLab signs nothing), and a UUID per event in `X-Gitlab-Event-UUID`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import requests

from tests.gitlab_emulator.responses import example
from tests.gitlab_emulator.state import MergeRequest, Note, hook_time, now

if TYPE_CHECKING:
    from tests.gitlab_emulator.server import GitLabEmulator

MERGE_REQUEST_HOOK = "Merge Request Hook"
NOTE_HOOK = "Note Hook"
MERGE_REQUEST_ACTIONS = (
    "open",
    "close",
    "reopen",
    "update",
    "approved",
    "unapproved",
    "approval",
    "unapproval",
    "merge",
)
"""`object_attributes.action` values GitLab documents for merge request events."""
USER_AGENT = "GitLab/18.6.0"
INSTANCE = "https://gitlab.example.com"


def merge_request_hook(
    emulator: GitLabEmulator,
    path: str,
    iid: int,
    action: str,
    *,
    user: str | None = None,
    oldrev: str | None = None,
    changes: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The Merge Request Hook GitLab sends for `action` on the merge request as it is now.

    `oldrev` is the head before new commits, which GitLab includes only in an `update` that
    pushed code; without it an `update` is an edit (title, labels, draft).
    """
    if action not in MERGE_REQUEST_ACTIONS:
        raise ValueError(f"GitLab sends no merge request action {action!r}")
    shapes = emulator.shapes
    with emulator.lock:
        mr = emulator.merge_request(path, iid)
        actor = emulator.user(user) if user else (mr.merged_by if action == "merge" and mr.merged_by else mr.author)
        payload: dict[str, Any] = example("webhooks/merge_request")
        attributes = shapes.hook_merge_request(mr)
        attributes["action"] = action
        if oldrev is not None:
            attributes["oldrev"] = oldrev
        payload.update(
            user=shapes.hook_user(actor),
            project=shapes.hook_project(mr.project),
            repository=_hook_repository(emulator, mr),
            object_attributes=attributes,
            labels=[],
            changes=dict(changes) if changes is not None else _changes(mr, action),
            assignees=[],
            reviewers=[],
        )
        return payload


def note_hook(emulator: GitLabEmulator, path: str, iid: int, note: Note, *, action: str = "create") -> dict[str, Any]:
    """The Note Hook GitLab sends when `note` is made (or edited, `action="update"`) on the merge request."""
    shapes = emulator.shapes
    with emulator.lock:
        mr = emulator.merge_request(path, iid)
        payload: dict[str, Any] = example("webhooks/note.merge_request")
        web_url = f"{emulator.base_url}/{mr.project.full_path}"
        attributes = payload["object_attributes"]
        attributes.update(
            id=note.id,
            note=note.body,
            noteable_type="MergeRequest",
            author_id=note.author.id,
            created_at=hook_time(note.created_at),
            updated_at=hook_time(note.updated_at),
            project_id=mr.project.id,
            noteable_id=mr.id,
            system=note.system,
            action=action,
            url=f"{web_url}/-/merge_requests/{mr.iid}#note_{note.id}",
        )
        merge_request = shapes.hook_merge_request(mr)
        for key in ("action", "oldrev"):
            merge_request.pop(key, None)
        merge_request.update(position=0, assignee=None)
        payload.update(
            user=shapes.hook_user(note.author),
            project_id=mr.project.id,
            project=shapes.hook_project(mr.project),
            repository=_hook_repository(emulator, mr),
            object_attributes=attributes,
            merge_request=merge_request,
        )
        return payload


def _hook_repository(emulator: GitLabEmulator, mr: MergeRequest) -> dict[str, Any]:
    web_url = f"{emulator.base_url}/{mr.project.full_path}"
    return {"name": mr.project.path, "url": f"{web_url}.git", "description": "", "homepage": web_url}


def _changes(mr: MergeRequest, action: str) -> dict[str, Any]:
    stamp = hook_time(now())
    changes: dict[str, Any] = {"updated_at": {"previous": hook_time(mr.created_at), "current": stamp}}
    if action == "open":
        changes.update(id={"previous": None, "current": mr.id}, iid={"previous": None, "current": mr.iid})
    if action in ("close", "reopen", "merge"):
        previous = "opened" if action != "reopen" else "closed"
        current = {"close": "closed", "reopen": "opened", "merge": "merged"}[action]
        changes["state_id"] = {"previous": _state_id(previous), "current": _state_id(current)}
    return changes


def _state_id(state: str) -> int:
    return {"opened": 1, "closed": 2, "merged": 3}[state]


def draft_change(previous: bool, current: bool) -> dict[str, Any]:
    """The `changes` of an update that marks a merge request draft or ready."""
    return {"draft": {"previous": previous, "current": current}}


def headers(event: str, secret: str | None, event_uuid: str | None = None) -> dict[str, str]:
    """The headers of one GitLab delivery."""
    sent = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Gitlab-Event": event,
        "X-Gitlab-Event-UUID": event_uuid or str(uuid.uuid4()),
        "X-Gitlab-Webhook-UUID": "6a9a5e36-2a0b-4b8e-9b55-1bb7d8e2d0a4",
        "X-Gitlab-Instance": INSTANCE,
    }
    if secret is not None:
        sent["X-Gitlab-Token"] = secret
    return sent


def deliver(
    url: str,
    event: str,
    payload: dict[str, Any] | bytes,
    secret: str | None = None,
    event_uuid: str | None = None,
    timeout: float = 30,
) -> requests.Response:
    """POST one delivery to `url` as GitLab would (a redelivery reuses `event_uuid`)."""
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return requests.post(url, data=data, headers=headers(event, secret, event_uuid), timeout=timeout)
