"""GitHub's error answers in one line, as atlas reports them (logs, comments, VCSError)."""

from __future__ import annotations

from github import GithubException


def describe(action: str, error: GithubException) -> str:
    """`GitHub <action> failed: <status> <message> (<details>)` from GitHub's error body."""
    data = error.data if isinstance(error.data, dict) else {}
    message = data.get("message") or error.message or ""
    details = [
        str(item["message"])
        for item in data.get("errors", []) or []
        if isinstance(item, dict) and item.get("message") and item["message"] != message
    ]
    text = f"GitHub {action} failed: {error.status} {message}".rstrip()
    if details:
        text += f" ({'; '.join(details)})"
    return text
