"""The audit log: who planned, applied, unlocked, checked for drift or remediated what, when, at which commit.

Every entry is kept in the state store (`AuditLog.record_audit`), so the log is shared by every
atlas process and outlives pull requests; `/audit` and `GET /api/audit` read it back. Recording
never fails the action it records (`record`): a store that cannot be written is logged instead.
"""

from __future__ import annotations

import logging
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel, Field

from atlas.models import Project, new_id, utcnow

log = logging.getLogger(__name__)

MAX_TEXT = 60_000
"""Characters of a plan or an output kept in one entry; the rest is cut, saying so."""


class AuditAction(StrEnum):
    PLAN = "plan"
    APPLY = "apply"
    UNLOCK = "unlock"
    DRIFT_CHECK = "drift_check"
    REMEDIATION = "remediation"
    POLICY_CHECK = "policy_check"
    POLICY_APPROVAL = "policy_approval"
    POLICY_APPROVAL_WITHDRAWN = "policy_approval_withdrawn"


class AuditEntry(BaseModel):
    """One thing atlas did to a repository's infrastructure or its locks, and how it ended."""

    id: str = Field(default_factory=new_id)
    at: datetime = Field(default_factory=utcnow)
    action: AuditAction
    repo: str
    user: str
    """Who asked: the commenter, the pull request's author (autoplan), who merged, or `atlas` for a schedule."""
    outcome: str
    """A command's job status; a drift check's `DriftStatus`; a remediation's `RemediationStatus`."""
    sha: str = ""
    pull_number: int | None = None
    project: Project | None = None
    trigger: str = ""
    """What started it: autoplan, comment, merge, schedule, cli."""
    detail: str = ""
    job_id: str | None = None
    plan: str = ""
    output: str = ""


class AuditLog(Protocol):
    def record_audit(self, entry: AuditEntry) -> None: ...

    def audit_entries(
        self, *, repo: str | None = None, action: str | None = None, before: datetime | None = None, limit: int = 100
    ) -> list[AuditEntry]:
        """Audit entries, newest first: optionally of one repository or action, older than `before`."""
        ...


def record(store: AuditLog, entry: AuditEntry) -> None:
    """Keep `entry` in the audit log; a failure to write it is logged, never raised."""
    try:
        store.record_audit(entry.model_copy(update={"plan": clip(entry.plan), "output": clip(entry.output)}))
    except Exception:
        log.exception("could not record %s of %s in the audit log", entry.action, entry.repo)


def clip(text: str, limit: int = MAX_TEXT) -> str:
    """`text`, cut to about `limit` characters with a note saying how much was left out."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n… ({len(text) - limit} more characters not kept)\n"
