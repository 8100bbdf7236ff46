"""Policy check results and owners' approvals of a pull request's projects, shared by every worker.

The results are kept as the JSON the policy engine wrote (this layer does not know its shape); an
approval names the policy set, who approved and the head commit it was given at.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from atlas.models import Project, utcnow


class PolicyCheckRecord(BaseModel):
    """The latest policy check of one project of a pull request."""

    model_config = ConfigDict(frozen=True)

    repo: str
    pull_number: int
    project: Project
    head_sha: str
    results: str
    """The policy sets' results, as JSON."""
    checked_at: datetime = Field(default_factory=utcnow)


class PolicyApprovalRecord(BaseModel):
    """One owner's approval of one policy set's failures for one project, at one head commit."""

    model_config = ConfigDict(frozen=True)

    repo: str
    pull_number: int
    project: Project
    policy_set: str
    user: str
    head_sha: str
    approved_at: datetime = Field(default_factory=utcnow)


class PolicyStore(Protocol):
    def save_policy_check(self, record: PolicyCheckRecord) -> None:
        """Keep a project's latest policy check, replacing the one before and clearing its approvals
        (a new plan must be approved again)."""
        ...

    def policy_checks(self, repo: str, number: int) -> list[PolicyCheckRecord]:
        """The latest policy check of each project of a pull request."""
        ...

    def add_policy_approval(self, record: PolicyApprovalRecord) -> None:
        """Record an approval (one per project, set and user: approving twice changes nothing)."""
        ...

    def remove_policy_approvals(self, repo: str, number: int, project: Project, user: str) -> int:
        """Withdraw a user's approvals of a project's sets; how many there were."""
        ...

    def policy_approvals(self, repo: str, number: int) -> list[PolicyApprovalRecord]:
        """Every approval recorded for a pull request's projects."""
        ...
