"""The audit log: `/audit` for people (filtered by repository and action, newest first) and `GET /api/audit`.

`/api/audit` answers JSON to scripts holding `--api-secret` in `X-Atlas-Token` (or Atlantis's
`X-Atlantis-Token`), as atlas's other `/api` endpoints do: without a secret configured it does not
exist (404), and a missing or wrong token gets 401. Basic auth does not apply to it.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, jsonify, render_template, request

from atlas import __version__
from atlas.stores.audit import AuditAction, AuditEntry
from atlas.web.pages import SECURITY_HEADERS
from atlas.web.site import current_site, require_login

PAGE_ENTRIES = 100
"""Entries on one page of `/audit`, and the default `limit` of `/api/audit`."""

MAX_ENTRIES = 1000
"""The most entries one `/api/audit` answer holds."""

audit_pages = Blueprint("audit", __name__, template_folder="../templates")
audit_pages.before_request(require_login)

audit_api = Blueprint("audit_api", __name__)


class QueryError(ValueError):
    """A query parameter is wrong; the message says which and why."""


@audit_pages.after_request
def add_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


@audit_pages.context_processor
def template_globals() -> dict[str, Any]:
    return {"version": __version__, "actions": list(AuditAction)}


@audit_pages.get("/audit")
def audit_page() -> Response:
    try:
        repo, action, before, limit = _filters(default_limit=PAGE_ENTRIES)
    except QueryError as error:
        return Response(render_template("web/audit.html", entries=[], error=str(error), repo="", action="",
                                        next_before=None), status=400)
    entries = current_site().ctx.state.audit_entries(repo=repo, action=action, before=before, limit=limit)
    return Response(render_template(
        "web/audit.html", entries=entries, error=None, repo=repo or "", action=action or "",
        next_before=_next_before(entries, limit),
    ))


@audit_api.get("/api/audit")
def audit_json() -> Response:
    """`{"entries": [...], "next_before": ISO time or null}`, newest first; `repo`, `action`, `before`, `limit`."""
    refusal = _token_refusal()
    if refusal is not None:
        return refusal
    try:
        repo, action, before, limit = _filters(default_limit=PAGE_ENTRIES)
    except QueryError as error:
        return _error(400, str(error))
    entries = current_site().ctx.state.audit_entries(repo=repo, action=action, before=before, limit=limit)
    return jsonify({
        "entries": [entry.model_dump(mode="json") for entry in entries],
        "next_before": _next_before(entries, limit),
    })


def _token_refusal() -> Response | None:
    secret = current_site().ctx.settings.api_secret
    if secret is None:
        return _error(404, "the API is disabled on this server: set --api-secret to enable it")
    token = request.headers.get("X-Atlas-Token") or request.headers.get("X-Atlantis-Token") or ""
    if not hmac.compare_digest(token.encode(), secret.get_secret_value().encode()):
        return _error(401, "missing or wrong X-Atlas-Token")
    return None


def _error(status: int, message: str) -> Response:
    response = jsonify({"Error": message})
    response.status_code = status
    return response


def _filters(*, default_limit: int) -> tuple[str | None, str | None, datetime | None, int]:
    """`repo`, `action`, `before` and `limit` from the query string; QueryError naming a wrong one."""
    repo = request.args.get("repo", "").strip() or None
    action = request.args.get("action", "").strip() or None
    if action is not None and action not in {a.value for a in AuditAction}:
        raise QueryError(f"action must be one of {', '.join(a.value for a in AuditAction)}, not {action!r}")
    before: datetime | None = None
    if request.args.get("before"):
        try:
            before = datetime.fromisoformat(request.args["before"].replace("Z", "+00:00"))
        except ValueError:
            raise QueryError("before must be an ISO 8601 time such as 2025-01-31T12:00:00Z") from None
        if before.tzinfo is None:
            before = before.replace(tzinfo=UTC)
    try:
        limit = int(request.args.get("limit", default_limit))
    except ValueError:
        raise QueryError(f"limit must be a number from 1 to {MAX_ENTRIES}") from None
    if not 1 <= limit <= MAX_ENTRIES:
        raise QueryError(f"limit must be a number from 1 to {MAX_ENTRIES}")
    return repo, action, before, limit


def _next_before(entries: list[AuditEntry], limit: int) -> str | None:
    """Where the next (older) page starts, when this one is full."""
    return entries[-1].at.isoformat() if len(entries) == limit and entries else None
