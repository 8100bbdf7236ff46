"""The Markdown of drift issues and their comments, rendered from `templates/drift/`.

Rendering is pure: a drift record in, Markdown out. `atlas.drift.report` decides which text goes
where (issue body, comment) and fits it to GitHub's limits.
"""

from __future__ import annotations

from functools import cache

from jinja2 import Environment, PackageLoader, StrictUndefined

from atlas.models import DriftRecord, RemediationStatus, Repo
from atlas.render.comments import fence_for, format_diff
from atlas.runtime.plan_compare import describe_actions


def render_issue_body(record: DriftRecord, repo: Repo, *, atlas_url: str = "") -> str:
    """The drift issue's body: always the latest check, with the plan in a collapsible diff block."""
    return _render("issue_body.md.j2", record=record, repo=repo, atlas_url=atlas_url)


def render_still_drifted(record: DriftRecord) -> str:
    """The comment of a later check that still finds the drift."""
    return _render("still_drifted.md.j2", record=record)


def render_remediation(record: DriftRecord, repo: Repo) -> str:
    """The comment that records a remediation: the plan applied and terraform's output."""
    if record.remediation is None:
        raise ValueError("a remediation comment needs a record with a remediation")
    return _render("remediation.md.j2", record=record, repo=repo)


def render_back_in_sync(record: DriftRecord, repo: Repo) -> str:
    """The comment that closes the issue once the project matches the default branch again."""
    return _render("back_in_sync.md.j2", record=record, repo=repo)


@cache
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("atlas", "templates/drift"),
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=StrictUndefined,
    )
    env.globals.update(
        fence_for=fence_for,
        format_diff=format_diff,
        describe_actions=describe_actions,
        RemediationStatus=RemediationStatus,
    )
    return env


def _render(template: str, **context: object) -> str:
    return _environment().get_template(template).render(**context)
