"""What atlas notifies about, and the JSON body an http webhook receives for each (docs/notifications.md).

Every body carries `event`, `delivery_id` (a UUID, also sent as `X-Atlas-Delivery`) and `sent_at`
(RFC 3339 UTC): the signature covers the whole body, so a receiver that checks it can trust both,
reject old deliveries and drop repeated ones. An apply's body also carries the fields of Atlantis's
`ApplyResult` payload (`Repo`, `Pull`, `User`, `Workspace`, `Directory`, `ProjectName`, `Success`),
so receivers written for Atlantis keep working unchanged.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from atlas.notify.config import WebhookEvent

SCHEMA_VERSION = 1
"""Bumped when a body field changes meaning or goes away; new fields may appear at any time."""


class RepoRef(BaseModel):
    model_config = ConfigDict(frozen=True)

    full_name: str
    """OWNER/NAME."""
    host: str = "github.com"
    url: str = ""

    @property
    def owner(self) -> str:
        return self.full_name.partition("/")[0]

    @property
    def name(self) -> str:
        return self.full_name.partition("/")[2]


class PullRef(BaseModel):
    model_config = ConfigDict(frozen=True)

    number: int
    url: str = ""
    base_branch: str = ""
    head_branch: str = ""
    head_commit: str = ""
    author: str = ""
    title: str = ""


class ProjectRef(BaseModel):
    model_config = ConfigDict(frozen=True)

    dir: str
    workspace: str = "default"
    name: str | None = None

    @property
    def label(self) -> str:
        """How a person names the project: its name, else dir and workspace."""
        if self.name:
            return self.name
        return self.dir if self.workspace == "default" else f"{self.dir} (workspace {self.workspace})"


class ApplyNotification(BaseModel):
    """One project's apply finished, successfully or not."""

    model_config = ConfigDict(frozen=True)

    repo: RepoRef
    pull: PullRef
    project: ProjectRef
    user: str
    """Who ran the apply (the commenter, or the merger for apply on merge)."""
    success: bool
    url: str = ""
    """The job's page on this atlas server."""
    summary: str = ""
    """Terraform's closing line, such as `Apply complete! Resources: 1 added, 0 changed, 0 destroyed.`"""

    @property
    def event(self) -> WebhookEvent:
        return WebhookEvent.APPLY

    @property
    def workspaces(self) -> tuple[str, ...]:
        return (self.project.workspace,)

    @property
    def branch(self) -> str:
        return self.pull.base_branch

    def body(self) -> dict[str, Any]:
        return {
            "repo": _repo(self.repo),
            "pull": self.pull.model_dump(),
            "project": self.project.model_dump(),
            "user": self.user,
            "success": self.success,
            "result": "success" if self.success else "failure",
            "url": self.url,
            "summary": self.summary,
            # Atlantis's ApplyResult, field for field.
            "Workspace": self.project.workspace,
            "Repo": _atlantis_repo(self.repo),
            "Pull": {
                "Num": self.pull.number,
                "HeadCommit": self.pull.head_commit,
                "URL": self.pull.url,
                "HeadBranch": self.pull.head_branch,
                "BaseBranch": self.pull.base_branch,
                "Author": self.pull.author,
                "BaseRepo": _atlantis_repo(self.repo),
            },
            "User": {"Username": self.user, "Teams": None},
            "Success": self.success,
            "Directory": self.project.dir,
            "ProjectName": self.project.name or "",
        }


class DriftedProject(BaseModel):
    model_config = ConfigDict(frozen=True)

    project: ProjectRef
    has_drift: bool
    to_add: int = 0
    to_change: int = 0
    to_destroy: int = 0
    summary: str = ""
    error: str | None = None
    """Why the check of this project failed, when it did (then `has_drift` is false)."""


class DriftNotification(BaseModel):
    """A drift check of a repository's projects against the code on `branch` finished."""

    model_config = ConfigDict(frozen=True)

    repo: RepoRef
    branch: str
    check_id: str
    projects: tuple[DriftedProject, ...]
    url: str = ""

    @property
    def event(self) -> WebhookEvent:
        return WebhookEvent.DRIFT

    @property
    def workspaces(self) -> tuple[str, ...]:
        return tuple(item.project.workspace for item in self.projects)

    @property
    def drifted(self) -> tuple[DriftedProject, ...]:
        return tuple(item for item in self.projects if item.has_drift)

    def only_workspaces(self, keep: set[str]) -> DriftNotification:
        """The same check reporting only the projects in the workspaces `keep`."""
        return self.model_copy(update={"projects": tuple(p for p in self.projects if p.project.workspace in keep)})

    def body(self) -> dict[str, Any]:
        return {
            "repo": _repo(self.repo),
            "branch": self.branch,
            "check_id": self.check_id,
            "url": self.url,
            "projects_with_drift": len(self.drifted),
            "total_projects": len(self.projects),
            "projects": [
                {**item.project.model_dump(), **item.model_dump(exclude={"project"})} for item in self.projects
            ],
        }


class RemediationNotification(BaseModel):
    """atlas remediated a drifted project: it planned (`action: plan`) or applied (`apply`) the code on `branch`."""

    model_config = ConfigDict(frozen=True)

    repo: RepoRef
    branch: str
    project: ProjectRef
    action: str
    success: bool
    url: str = ""
    summary: str = ""
    pull: PullRef | None = None
    """The pull request remediation opened, when it opened one."""

    @property
    def event(self) -> WebhookEvent:
        return WebhookEvent.REMEDIATION

    @property
    def workspaces(self) -> tuple[str, ...]:
        return (self.project.workspace,)

    def body(self) -> dict[str, Any]:
        return {
            "repo": _repo(self.repo),
            "branch": self.branch,
            "project": self.project.model_dump(),
            "action": self.action,
            "success": self.success,
            "result": "success" if self.success else "failure",
            "url": self.url,
            "summary": self.summary,
            "pull": self.pull.model_dump() if self.pull is not None else None,
        }


Notification = ApplyNotification | DriftNotification | RemediationNotification


def envelope(notification: Notification, delivery_id: str, sent_at: datetime) -> dict[str, Any]:
    """The whole JSON body of an http webhook for `notification`."""
    return {
        "event": notification.event.value,
        "schema_version": SCHEMA_VERSION,
        "delivery_id": delivery_id,
        "sent_at": sent_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        **notification.body(),
    }


def _repo(repo: RepoRef) -> dict[str, str]:
    return {"full_name": repo.full_name, "owner": repo.owner, "name": repo.name, "host": repo.host, "url": repo.url}


def _atlantis_repo(repo: RepoRef) -> dict[str, Any]:
    return {
        "FullName": repo.full_name,
        "Owner": repo.owner,
        "Name": repo.name,
        "VCSHost": {"Hostname": repo.host, "Type": 0},
    }
