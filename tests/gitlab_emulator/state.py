"""What the emulated GitLab knows: users, groups, projects, merge requests, notes, statuses, issues."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from tests.emulator.gitrepo import BareRepo


def now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime | None) -> str | None:
    """GitLab's API timestamp format: `2022-05-13T07:26:38.402Z`."""
    if moment is None:
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def hook_time(moment: datetime | None) -> str | None:
    """The timestamp format of GitLab's webhook payloads: `2015-05-17 18:21:36 UTC`."""
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else None


NOTE_MAX_CHARS = 1_000_000
"""GitLab's limit on a note body; longer bodies get 400."""


class Refused(Exception):
    """GitLab refuses the request; carries the HTTP status and the `message` it answers with."""

    def __init__(self, status: int, message: object) -> None:
        super().__init__(str(message))
        self.status = status
        self.message = message


ACCESS_LEVELS = {"guest": 10, "planner": 15, "reporter": 20, "developer": 30, "maintainer": 40, "owner": 50}
"""GitLab's role names and the access levels its API reports for them."""


class RequestRecord(NamedTuple):
    """One request the emulator answered."""

    method: str
    path: str
    status: int
    headers: dict[str, str]


@dataclass
class InjectedFailure:
    method: str
    path_regex: str
    status: int
    body: Any
    headers: dict[str, str]
    times: int


@dataclass
class User:
    id: int
    username: str
    name: str
    bot: bool = False

    @property
    def email(self) -> str:
        return f"{self.username}@example.com"


@dataclass
class Group:
    id: int
    full_path: str
    name: str
    parent: Group | None
    members: dict[int, int] = field(default_factory=dict)
    """user id -> access level."""

    @property
    def path(self) -> str:
        return self.full_path.rsplit("/", 1)[-1]


@dataclass
class ApprovalRule:
    id: int
    name: str
    approvals_required: int
    eligible: tuple[str, ...] = ()
    """Usernames who may approve for this rule; empty means any member but the author."""

    @property
    def rule_type(self) -> str:
        return "regular" if self.eligible else "any_approver"


@dataclass
class Project:
    id: int
    full_path: str
    namespace: Group
    git: BareRepo
    default_branch: str
    visibility: str
    forked_from: Project | None = None
    members: dict[int, int] = field(default_factory=dict)
    approval_rules: list[ApprovalRule] = field(default_factory=list)
    only_allow_merge_if_pipeline_succeeds: bool = False
    merge_requests: dict[int, MergeRequest] = field(default_factory=dict)
    issues: dict[int, Issue] = field(default_factory=dict)
    statuses: list[CommitStatus] = field(default_factory=list)
    pipelines: list[Pipeline] = field(default_factory=list)
    next_mr_iid: int = 1
    next_issue_iid: int = 1
    created_at: datetime = field(default_factory=now)

    @property
    def path(self) -> str:
        return self.full_path.rsplit("/", 1)[-1]

    @property
    def visibility_level(self) -> int:
        return {"private": 0, "internal": 10, "public": 20}[self.visibility]


@dataclass
class AwardEmoji:
    id: int
    name: str
    user: User
    awardable_id: int
    awardable_type: str
    created_at: datetime = field(default_factory=now)


@dataclass
class Note:
    id: int
    body: str
    author: User
    noteable_type: str
    noteable_id: int
    noteable_iid: int
    system: bool = False
    awards: list[AwardEmoji] = field(default_factory=list)
    created_at: datetime = field(default_factory=now)
    updated_at: datetime | None = None

    def __post_init__(self) -> None:
        if self.updated_at is None:
            self.updated_at = self.created_at

    def snapshot(self) -> dict[str, Any]:
        """The note as tests inspect it."""
        return {
            "id": self.id,
            "body": self.body,
            "author": self.author.username,
            "system": self.system,
            "awards": [(award.name, award.user.username) for award in self.awards],
            "edited": self.updated_at != self.created_at,
        }


@dataclass
class Pipeline:
    id: int
    iid: int
    sha: str
    ref: str | None
    source: str
    created_at: datetime = field(default_factory=now)
    updated_at: datetime = field(default_factory=now)


@dataclass
class CommitStatus:
    id: int
    sha: str
    ref: str | None
    name: str
    status: str
    description: str | None
    target_url: str | None
    author: User
    pipeline_id: int
    created_at: datetime = field(default_factory=now)
    finished_at: datetime | None = None

    def snapshot(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "description": self.description,
            "target_url": self.target_url,
            "pipeline_id": self.pipeline_id,
            "ref": self.ref,
        }


@dataclass
class MergeRequest:
    id: int
    iid: int
    project: Project
    source_project: Project
    source_branch: str
    target_branch: str
    title: str
    description: str
    author: User
    sha: str
    base_sha: str
    draft: bool = False
    state: str = "opened"
    notes: dict[int, Note] = field(default_factory=dict)
    awards: list[AwardEmoji] = field(default_factory=list)
    approvals: list[tuple[User, datetime]] = field(default_factory=list)
    previous_sha: str | None = None
    merge_status_override: list[str] = field(default_factory=list)
    """detailed_merge_status values to answer, one per read, before computing it again."""
    merge_when_pipeline_succeeds: bool = False
    auto_merge_options: dict[str, Any] = field(default_factory=dict)
    squash: bool = False
    should_remove_source_branch: bool | None = None
    merge_commit_sha: str | None = None
    squash_commit_sha: str | None = None
    merged_by: User | None = None
    merged_at: datetime | None = None
    closed_by: User | None = None
    closed_at: datetime | None = None
    created_at: datetime = field(default_factory=now)
    updated_at: datetime = field(default_factory=now)

    @property
    def is_fork(self) -> bool:
        return self.source_project is not self.project

    @property
    def head_ref(self) -> str:
        return f"refs/merge-requests/{self.iid}/head"

    def base_sha_now(self) -> str:
        """Where the target branch is now (the merge request was opened against `base_sha`)."""
        return self.project.git.resolve(f"refs/heads/{self.target_branch}") or self.base_sha


@dataclass
class Issue:
    id: int
    iid: int
    project: Project
    title: str
    description: str
    author: User
    labels: list[str] = field(default_factory=list)
    state: str = "opened"
    closed_by: User | None = None
    closed_at: datetime | None = None
    created_at: datetime = field(default_factory=now)
    updated_at: datetime = field(default_factory=now)
    notes: dict[int, Note] = field(default_factory=dict)

    def snapshot(self) -> dict[str, Any]:
        return {
            "iid": self.iid,
            "title": self.title,
            "description": self.description,
            "labels": list(self.labels),
            "state": self.state,
            "author": self.author.username,
        }
