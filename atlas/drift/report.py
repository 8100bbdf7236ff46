"""Reporting drift checks: the project's GitHub issue, the `atlas/drift` commit status, and the audit log.

For each project, a GitHub issue labelled `atlas-drift` is opened when drift is found, updated (and
commented on) by every later check that still finds it, and closed with a comment once the project
is back in sync. Its texts are rendered from `templates/drift/` (`atlas.render.drift`).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from atlas.commands.context import CommandContext
from atlas.drift.targets import DriftTarget
from atlas.models import DriftRecord, DriftStatus, Project, Remediation, RemediationStatus, Repo
from atlas.render.drift import render_back_in_sync, render_issue_body, render_remediation, render_still_drifted
from atlas.stores import audit
from atlas.stores.audit import AuditAction, AuditEntry
from atlas.vcs import CommitState, Issue, VCSError

log = logging.getLogger(__name__)

ISSUE_LABEL = "atlas-drift"
"""The label of every drift issue; an open issue with it and the project's title is the project's issue."""

STATUS_CONTEXT = "atlas/drift"

ISSUE_BODY_LIMIT = 60_000
"""Characters of an issue body or comment (GitHub allows 65,536); a longer plan is cut to fit."""


def issue_title(repo: str, project: Project) -> str:
    """`atlas drift: acme/infra app (default)`: how a project's drift issue is found again."""
    return f"atlas drift: {repo} {project.name or project.dir} ({project.workspace})"


def report(ctx: CommandContext, target: DriftTarget, record: DriftRecord,
           previous: DriftRecord | None = None) -> DriftRecord:
    """Open, update, comment on or close the project's drift issue (on GitHub or GitLab); a failure of the host is
    logged, not raised."""
    repo = target.repo
    title = issue_title(repo.full_name, target.project)
    if record.status is DriftStatus.FAILED:
        # Not drift: an open issue stays as it is, and the page keeps pointing at it.
        return record.model_copy(update={"issue_number": previous.issue_number, "issue_url": previous.issue_url,
                                         "reported": previous.reported} if previous is not None else {})
    if (record.status is DriftStatus.IN_SYNC and previous is not None and previous.status is DriftStatus.IN_SYNC
            and previous.reported):
        return record
    try:
        issue = ctx.vcs.find_issue(repo, title, ISSUE_LABEL)
        if record.status is DriftStatus.IN_SYNC:
            if issue is not None:
                ctx.vcs.comment_on_issue(repo, issue.number, fit_for_github(render_back_in_sync(record, repo)))
                ctx.vcs.close_issue(repo, issue.number)
            return record
        body = fit_for_github(render_issue_body(record, repo, atlas_url=ctx.settings.atlas_url))
        if issue is None:
            issue = ctx.vcs.create_issue(repo, title, body, [ISSUE_LABEL])
        else:
            ctx.vcs.update_issue(repo, issue.number, body)
            ctx.vcs.comment_on_issue(repo, issue.number, fit_for_github(render_still_drifted(record)))
        if record.remediation is not None and record.remediation.status in (RemediationStatus.APPLIED,
                                                                             RemediationStatus.FAILED):
            ctx.vcs.comment_on_issue(repo, issue.number, fit_for_github(render_remediation(record, repo)))
        if record.status is DriftStatus.REMEDIATED:
            ctx.vcs.close_issue(repo, issue.number)
        return record.model_copy(update=_issue_fields(issue))
    except VCSError as error:
        log.warning("could not report drift of %s %s on %s: %s", repo.full_name, target.project.label,
                    repo.vcs.display_name, error)
        return record.model_copy(update={"reported": False})


def _issue_fields(issue: Issue | None) -> dict[str, Any]:
    return {"issue_number": issue.number, "issue_url": issue.html_url} if issue is not None else {}


def fit_for_github(body: str, limit: int = ISSUE_BODY_LIMIT) -> str:
    """A body GitHub accepts: while too long, the longest fenced block loses its end (and stays closed)."""
    for _ in range(8):
        if len(body) <= limit:
            return body
        blocks = list(re.finditer(r"^(`{3,})(\w*)\n(.*?)^\1$", body, re.MULTILINE | re.DOTALL))
        if not blocks:
            break
        longest = max(blocks, key=lambda match: len(match.group(3)))
        content = longest.group(3)
        kept = content[: max(len(content) - (len(body) - limit + 200), 0)]
        if len(kept) == len(content):
            break
        cut = f"{kept.rstrip()}\n… ({len(content) - len(kept)} characters cut; the audit log keeps more)\n"
        body = body[: longest.start(3)] + cut + body[longest.end(3):]
    return body if len(body) <= limit else body[:limit] + "\n\n… (cut)\n"


def record_check(ctx: CommandContext, record: DriftRecord, *, user: str, trigger: str) -> None:
    """The audit log's entry for one project's check (with the plan, when drift was found)."""
    audit.record(ctx.state, AuditEntry(
        action=AuditAction.DRIFT_CHECK, repo=record.repo, user=user, trigger=trigger,
        outcome=DriftStatus.DRIFTED.value if record.drift_found else record.status.value, sha=record.sha,
        project=record.project, detail=check_detail(record), plan=record.output if record.drift_found else "",
    ))


def record_failed_repo(ctx: CommandContext, repo: str, sha: str, error: str, *, user: str, trigger: str) -> None:
    """The audit log's entry for a repository that could not be checked at all."""
    audit.record(ctx.state, AuditEntry(action=AuditAction.DRIFT_CHECK, repo=repo, user=user, trigger=trigger,
                                 outcome=DriftStatus.FAILED.value, sha=sha, detail=error))


def record_remediation(ctx: CommandContext, target: DriftTarget, record: DriftRecord, remediation: Remediation,
                       *, user: str, trigger: str) -> None:
    """The audit log's entry for a remediation: the plan, and what applying it printed."""
    audit.record(ctx.state, AuditEntry(
        action=AuditAction.REMEDIATION, repo=target.repo.key, user=user, trigger=trigger,
        outcome=remediation.status.value, sha=target.sha, project=target.project, detail=remediation.detail,
        plan=record.output, output=remediation.output,
    ))


def check_detail(record: DriftRecord) -> str:
    if record.status is DriftStatus.FAILED:
        return (record.error or "failed").splitlines()[0]
    if not record.drift_found:
        return "in sync"
    addresses = ", ".join(r.address for r in record.resources[:5])
    more = f" and {len(record.resources) - 5} more" if len(record.resources) > 5 else ""
    text = f"{len(record.resources)} resource(s) differ: {addresses}{more}"
    if record.remediation is not None:
        text += f"; remediation {record.remediation.status}"
    return text


def set_repo_status(ctx: CommandContext, repo: Repo, sha: str, *, error: str | None = None) -> None:
    """`atlas/drift` on the head: from the latest check of every project at that commit."""
    records = [record for record in ctx.state.drift_records(repo.key) if record.sha == sha]
    failed = sum(1 for record in records if record.status is DriftStatus.FAILED)
    drifted = sum(1 for record in records if record.status is DriftStatus.DRIFTED)
    remediated = sum(1 for record in records if record.status is DriftStatus.REMEDIATED)
    if error is not None:
        state, description = CommitState.ERROR, f"drift check failed: {error}"
    elif not records:
        return
    elif failed:
        state, description = CommitState.ERROR, f"{failed} of {len(records)} drift checks failed"
    elif drifted:
        state, description = CommitState.FAILURE, f"{drifted} of {len(records)} projects drifted"
    else:
        state = CommitState.SUCCESS
        description = f"{len(records)} project{'s' if len(records) != 1 else ''} in sync"
        if remediated:
            description += f" ({remediated} remediated)"
    try:
        ctx.vcs.set_status(repo, sha, state, STATUS_CONTEXT, description, target_url=f"{ctx.settings.atlas_url}/drift")
    except VCSError as failure:
        log.warning("could not set %s on %s@%s: %s", STATUS_CONTEXT, repo.full_name, sha[:7], failure)
