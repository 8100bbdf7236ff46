"""The Slack message for each notification: a one-line text (what notifications and screen readers show)
and an attachment whose colour and fields carry the details, as Atlantis's apply messages do."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from atlas.notify.events import ApplyNotification, DriftNotification, Notification, RemediationNotification

GOOD = "good"
DANGER = "danger"
WARNING = "warning"


class SlackMessage(BaseModel):
    model_config = ConfigDict(frozen=True)

    text: str
    attachments: tuple[dict[str, Any], ...] = ()


def slack_message(notification: Notification) -> SlackMessage:
    if isinstance(notification, ApplyNotification):
        return _apply(notification)
    if isinstance(notification, DriftNotification):
        return _drift(notification)
    return _remediation(notification)


def _link(url: str, label: str) -> str:
    # Slack's mrkdwn link syntax; < > and & would break it, so they are escaped as Slack asks.
    safe = label.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f"<{url}|{safe}>" if url else safe


def _field(title: str, value: str, short: bool = True) -> dict[str, Any]:
    return {"title": title, "value": value, "short": short}


def _apply(note: ApplyNotification) -> SlackMessage:
    outcome = "succeeded" if note.success else "failed"
    where = f"{note.repo.full_name}#{note.pull.number}"
    text = f"Apply {outcome} for {note.project.label} in {where} by {note.user}"
    fields = [
        _field("Repository", _link(note.repo.url, note.repo.full_name)),
        _field("Pull request", _link(note.pull.url, f"#{note.pull.number} {note.pull.title}".strip())),
        _field("Directory", note.project.dir),
        _field("Workspace", note.project.workspace),
        _field("Branch", note.pull.base_branch or "?"),
        _field("User", note.user),
        _field("Result", "success" if note.success else "failure"),
    ]
    if note.project.name:
        fields.insert(2, _field("Project", note.project.name))
    if note.summary:
        fields.append(_field("Summary", note.summary, short=False))
    attachment = {
        "color": GOOD if note.success else DANGER,
        "fallback": text,
        "text": _link(note.url, "Apply output") if note.url else "",
        "fields": fields,
    }
    return SlackMessage(text=text, attachments=(attachment,))


def _drift(note: DriftNotification) -> SlackMessage:
    drifted = note.drifted
    failed = [item for item in note.projects if item.error]
    if drifted:
        text = f"Drift detected in {note.repo.full_name}: {len(drifted)} of {len(note.projects)} projects"
    else:
        text = f"No drift in {note.repo.full_name} ({len(note.projects)} projects checked)"
    fields = [
        _field("Repository", _link(note.repo.url, note.repo.full_name)),
        _field("Branch", note.branch),
        _field("Projects with drift", str(len(drifted))),
        _field("Check", _link(note.url, note.check_id)),
    ]
    for item in drifted:
        fields.append(_field(item.project.label, item.summary or "drifted", short=False))
    for item in failed:
        fields.append(_field(f"{item.project.label} (check failed)", item.error or "", short=False))
    color = DANGER if drifted else (WARNING if failed else GOOD)
    return SlackMessage(text=text, attachments=({"color": color, "fallback": text, "fields": fields},))


def _remediation(note: RemediationNotification) -> SlackMessage:
    outcome = "succeeded" if note.success else "failed"
    text = f"Drift remediation ({note.action}) {outcome} for {note.project.label} in {note.repo.full_name}"
    fields = [
        _field("Repository", _link(note.repo.url, note.repo.full_name)),
        _field("Branch", note.branch),
        _field("Directory", note.project.dir),
        _field("Workspace", note.project.workspace),
        _field("Action", note.action),
        _field("Result", "success" if note.success else "failure"),
    ]
    if note.pull is not None:
        fields.append(_field("Pull request", _link(note.pull.url, f"#{note.pull.number}")))
    if note.summary:
        fields.append(_field("Summary", note.summary, short=False))
    attachment = {
        "color": GOOD if note.success else DANGER,
        "fallback": text,
        "text": _link(note.url, "Remediation output") if note.url else "",
        "fields": fields,
    }
    return SlackMessage(text=text, attachments=(attachment,))
