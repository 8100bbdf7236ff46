"""`/drift`: the latest drift check of every project, what drifted, and what atlas did about it."""

from __future__ import annotations

from collections import Counter
from typing import Any

from flask import Blueprint, Response, render_template

from atlas import __version__
from atlas.models import DriftRecord, DriftStatus
from atlas.web.pages import SECURITY_HEADERS
from atlas.web.site import current_site, require_login

BADGES = {
    DriftStatus.IN_SYNC: "succeeded",
    DriftStatus.REMEDIATED: "applied",
    DriftStatus.DRIFTED: "waiting",
    DriftStatus.FAILED: "failed",
}
"""The page's badge style of each status, shared with the other pages' colours."""

drift_pages = Blueprint("drift", __name__, template_folder="../templates")
drift_pages.before_request(require_login)


@drift_pages.after_request
def add_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


@drift_pages.context_processor
def template_globals() -> dict[str, Any]:
    return {"version": __version__, "badges": BADGES}


@drift_pages.get("/drift")
def drift_page() -> Response:
    records = current_site().ctx.state.drift_records()
    by_repo: dict[str, list[DriftRecord]] = {}
    for record in records:
        by_repo.setdefault(record.repo, []).append(record)
    counts = Counter(record.status for record in records)
    return Response(render_template(
        "web/drift.html", by_repo=by_repo, total=len(records),
        counts=[(status, counts.get(status, 0)) for status in DriftStatus],
    ))
