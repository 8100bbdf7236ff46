"""Pull requests atlas has seen, where each of their projects stands, and the comments atlas posted on them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel

from atlas.models import Project, PullRequest, Repo


class ProjectPhase(StrEnum):
    """Where one project of a pull request stands."""

    PLANNED = "planned"
    PLAN_FAILED = "plan_failed"
    WAITING = "waiting"
    APPLIED = "applied"
    APPLY_FAILED = "apply_failed"


class ProjectState(BaseModel):
    """The latest thing that happened to one project of a pull request."""

    project: Project
    phase: ProjectPhase
    head_sha: str
    job_id: str
    detail: str = ""
    updated_at: datetime


class PullStore(Protocol):
    def save_pull(self, pull: PullRequest) -> None: ...

    def get_pull(self, repo: str, number: int) -> PullRequest | None: ...

    def known_repos(self) -> list[Repo]:
        """Every repository atlas has seen a pull request of, by full name."""
        ...

    def set_project_state(self, repo: str, number: int, state: ProjectState) -> None: ...

    def project_states(self, repo: str, number: int) -> list[ProjectState]: ...

    def forget_pull(self, repo: str, number: int) -> None:
        """Drop the pull request's project states and comment records (it was closed)."""
        ...

    def add_comment_record(self, repo: str, number: int, kind: str, node_id: str) -> None:
        """Remember a comment atlas posted (e.g. a plan, to hide it when the PR is planned again)."""
        ...

    def take_comment_records(self, repo: str, number: int, kind: str) -> list[str]:
        """The node ids of the recorded comments of that kind, forgetting them."""
        ...

    def claim_once(self, key: str) -> bool:
        """True the first time a key is claimed (a notice that must be posted only once)."""
        ...
