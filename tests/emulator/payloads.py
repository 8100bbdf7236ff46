"""Webhook payloads for emulated pull requests, built from real recorded GitHub deliveries.

A payload starts as a real delivery from tests/data/github/webhooks; every object in it that names the
repository, the pull request, its issue, the comment or the sender is overwritten with what the
emulator's API answers for the same object, so atlas sees one consistent world whichever way it
looks. Fields GitHub only puts in webhooks (`action`, `before`/`after`, `installation`…) stay.
"""

from __future__ import annotations

from typing import Any

from tests.emulator.recordings import webhook_body
from tests.emulator.responses import GITHUB_API, rehome
from tests.emulator.state import EmulatedPull, EmulatedRepo

PULL_REQUEST_ACTIONS = ("opened", "reopened", "synchronize", "ready_for_review", "closed", "edited")


def _merge_into(template: Any, ours: Any) -> Any:
    """`ours` laid over `template`: our values win, keys only the template has are kept."""
    if isinstance(template, dict) and isinstance(ours, dict):
        merged = dict(template)
        for key, value in ours.items():
            merged[key] = _merge_into(template.get(key), value)
        return merged
    return ours


def _template_name(event: str, action: str | None, pull: EmulatedPull | None, merged: bool) -> str:
    if event == "ping":
        return "ping"
    if event == "issue_comment":
        if action != "created":
            raise ValueError(f"issue_comment payloads are built for action 'created', not {action!r}")
        return "issue_comment.created"
    if event == "pull_request":
        if action == "closed":
            return "pull_request.closed.merged" if merged else "pull_request.closed.not_merged"
        if action == "synchronize":
            return "pull_request.synchronize.from_fork" if pull and pull.is_fork else "pull_request.synchronize"
        if action == "reopened":
            return "pull_request.reopened"
        # No recording of ready_for_review or edited exists; their body has the shape of opened.
        return "pull_request.opened"
    raise ValueError(f"no webhook payload for event {event!r}")


def webhook_payload(
    event: str,
    pull: EmulatedPull | EmulatedRepo,
    action: str | None = None,
    *,
    body: str = "atlas plan",
    commenter: str | None = None,
    merged: bool | None = None,
    sender: str | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """The JSON GitHub would deliver for `event`/`action` on `pull` (a repository for `ping`).

    Building a payload makes the event true in the emulator first, so that atlas's follow-up API
    calls agree with it: `closed` merges (merged=True) or closes the pull request, `reopened`
    reopens it, `ready_for_review` clears draft, and an `issue_comment` creates the comment by
    `commenter` (default: the author) with `body`. For `synchronize`, push first (`emulator.push`);
    `before`/`after` are the previous and current head. `overrides` replace top-level keys, and
    an override of None removes the key (e.g. `installation=None`).
    """
    repo = pull.repo if isinstance(pull, EmulatedPull) else pull
    the_pull = pull if isinstance(pull, EmulatedPull) else None
    emulator = repo.emulator
    shapes = emulator.shapes
    with emulator.lock:
        if the_pull is not None:
            merged = _make_it_so(event, action, the_pull, merged)
        payload = webhook_body(_template_name(event, action, the_pull, bool(merged)))
        default_sender = the_pull.author if the_pull is not None else repo.owner
        if event == "issue_comment":
            default_sender = commenter or default_sender
        payload["repository"] = _merge_into(payload.get("repository"), shapes.repo(repo))
        payload["sender"] = _merge_into(payload.get("sender"), shapes.user(sender or default_sender))

        if event == "pull_request":
            assert the_pull is not None, "pull_request payloads need a pull request"
            payload["action"] = action
            payload["number"] = the_pull.number
            payload["pull_request"] = _merge_into(payload["pull_request"], shapes.pull(the_pull))
            if action == "synchronize":
                payload["before"] = the_pull.previous_head_sha or the_pull.head_sha
                payload["after"] = the_pull.head_sha
        elif event == "issue_comment":
            assert the_pull is not None, "issue_comment payloads need a pull request"
            payload["action"] = action
            comment = emulator.create_comment(repo, the_pull.number, body, commenter or the_pull.author)
            payload["issue"] = _merge_into(payload["issue"], shapes.issue(the_pull))
            payload["comment"] = _merge_into(payload["comment"], shapes.comment(repo, comment))
        elif event == "ping":
            old_hooks = payload["hook"]["url"].rsplit("/hooks/", 1)[0]
            payload["hook"] = rehome(payload["hook"], [(old_hooks, repo.url), (GITHUB_API, emulator.api_url)])

    for key, value in overrides.items():
        if value is None:
            payload.pop(key, None)
        else:
            payload[key] = value
    return payload


def _make_it_so(event: str, action: str | None, pull: EmulatedPull, merged: bool | None) -> bool:
    """Bring the emulated pull request into the state the event reports; whether it is merged."""
    emulator = pull.repo.emulator
    if event == "pull_request" and action == "closed" and pull.state == "open":
        if merged:
            emulator.merge_pull(pull.full_name, pull.number)
        else:
            emulator.close_pull(pull.full_name, pull.number)
    elif event == "pull_request" and action == "reopened" and pull.state == "closed":
        emulator.reopen_pull(pull.full_name, pull.number)
    elif event == "pull_request" and action == "ready_for_review":
        emulator.set_draft(pull.full_name, pull.number, False)
    if merged is not None and merged != pull.merged and action == "closed":
        raise ValueError(f"{pull.full_name}#{pull.number} is {'merged' if pull.merged else 'not merged'} already")
    return pull.merged
