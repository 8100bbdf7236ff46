"""What the emulated GitHub knows: repositories, pull requests, comments, statuses, teams."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from tests.emulator.gitrepo import BareRepo

if TYPE_CHECKING:
    from tests.emulator.server import GitHubEmulator


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def iso(moment: datetime | None) -> str | None:
    """GitHub's timestamp format: `2025-09-08T06:01:05Z`."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def node_id(prefix: str, number: int) -> str:
    """A global node id in GitHub's modern shape (`PR_kwDO…`, `IC_kwDO…`), unique per number."""
    return f"{prefix}_kwDO" + base64.urlsafe_b64encode(number.to_bytes(8, "big")).decode().rstrip("=")


class RequestRecord(NamedTuple):
    """One request the emulator answered."""

    method: str
    path: str
    status: int
    timestamp: float


@dataclass
class InjectedFailure:
    method: str
    path_regex: str
    status: int
    body: Any
    headers: dict[str, str]
    times: int


@dataclass
class Reaction:
    id: int
    user: str
    content: str
    created_at: datetime = field(default_factory=now)


@dataclass
class Comment:
    id: int
    issue_number: int
    user: str
    body: str
    created_at: datetime = field(default_factory=now)
    updated_at: datetime = field(default_factory=now)
    minimized: bool = False
    minimized_classifier: str | None = None
    reactions: list[Reaction] = field(default_factory=list)

    @property
    def node_id(self) -> str:
        return node_id("IC", self.id)

    def snapshot(self) -> dict[str, Any]:
        """The comment as tests inspect it."""
        return {
            "id": self.id,
            "node_id": self.node_id,
            "body": self.body,
            "user": self.user,
            "minimized": self.minimized,
            "classifier": self.minimized_classifier,
            "reactions": [{"user": r.user, "content": r.content} for r in self.reactions],
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }


@dataclass
class Status:
    id: int
    sha: str
    state: str
    context: str
    description: str | None
    target_url: str | None
    creator: str
    created_at: datetime = field(default_factory=now)

    def snapshot(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "sha": self.sha,
            "state": self.state,
            "context": self.context,
            "description": self.description,
            "target_url": self.target_url,
            "creator": self.creator,
        }


@dataclass
class Review:
    id: int
    user: str
    state: str
    commit_id: str
    body: str = ""
    submitted_at: datetime = field(default_factory=now)
    dismissed_by: str | None = None
    dismissal_message: str | None = None


@dataclass
class TeamMembership:
    state: str
    role: str


@dataclass
class Team:
    id: int
    org: str
    org_id: int
    slug: str
    name: str
    memberships: dict[str, TeamMembership] = field(default_factory=dict)


class _Unset:
    """Marks a pull request whose mergeability the emulator computes from git."""


COMPUTED = _Unset()


@dataclass(eq=False)
class EmulatedRepo:
    """A repository: a bare git repository on disk plus GitHub's data about it."""

    emulator: GitHubEmulator
    id: int
    full_name: str
    git: BareRepo
    default_branch: str = "main"
    private: bool = True
    parent: EmulatedRepo | None = None
    created_at: datetime = field(default_factory=now)
    permissions: dict[str, str] = field(default_factory=dict)
    pulls: dict[int, EmulatedPull] = field(default_factory=dict)
    issues: dict[int, EmulatedIssue] = field(default_factory=dict)
    comments: dict[int, Comment] = field(default_factory=dict)
    statuses: dict[str, list[Status]] = field(default_factory=dict)
    required_contexts: tuple[str, ...] = ()
    required_approvals: int = 0
    next_number: int = 1

    @property
    def owner(self) -> str:
        return self.full_name.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.full_name.split("/", 1)[1]

    @property
    def fork(self) -> bool:
        return self.parent is not None

    @property
    def node_id(self) -> str:
        return node_id("R", self.id)

    @property
    def url(self) -> str:
        return f"{self.emulator.api_url}/repos/{self.full_name}"

    @property
    def html_url(self) -> str:
        return f"{self.emulator.base_url}/{self.full_name}"

    @property
    def clone_url(self) -> str:
        return f"{self.emulator.base_url}/{self.full_name}.git"


@dataclass(eq=False)
class EmulatedIssue:
    """An issue that is not a pull request; it shares its repository's numbers with pull requests."""

    repo: EmulatedRepo
    number: int
    id: int
    title: str
    author: str
    body: str = ""
    labels: list[str] = field(default_factory=list)
    state: str = "open"
    state_reason: str | None = None
    closed_by: str | None = None
    created_at: datetime = field(default_factory=now)
    updated_at: datetime = field(default_factory=now)
    closed_at: datetime | None = None

    @property
    def node_id(self) -> str:
        return node_id("I", self.id)

    @property
    def url(self) -> str:
        return f"{self.repo.url}/issues/{self.number}"

    @property
    def html_url(self) -> str:
        return f"{self.repo.html_url}/issues/{self.number}"

    def snapshot(self) -> dict[str, Any]:
        """The issue as tests inspect it."""
        return {
            "number": self.number,
            "title": self.title,
            "body": self.body,
            "user": self.author,
            "labels": list(self.labels),
            "state": self.state,
            "state_reason": self.state_reason,
            "closed_by": self.closed_by,
        }


@dataclass(eq=False)
class EmulatedPull:
    """A pull request: its branches, state, reviews and merge result."""

    repo: EmulatedRepo
    number: int
    id: int
    title: str
    author: str
    head_ref: str
    head_repo: EmulatedRepo
    base_ref: str
    head_sha: str
    body: str = ""
    draft: bool = False
    previous_head_sha: str | None = None
    state: str = "open"
    merged: bool = False
    merge_method: str | None = None
    merged_at: datetime | None = None
    merged_by: str | None = None
    merge_commit_sha: str | None = None
    closed_at: datetime | None = None
    closed_base_sha: str | None = None
    created_at: datetime = field(default_factory=now)
    updated_at: datetime = field(default_factory=now)
    reviews: list[Review] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    mergeable_override: bool | _Unset | None = COMPUTED

    @property
    def full_name(self) -> str:
        return self.repo.full_name

    @property
    def is_fork(self) -> bool:
        return self.head_repo is not self.repo

    @property
    def node_id(self) -> str:
        return node_id("PR", self.id)

    @property
    def url(self) -> str:
        return f"{self.repo.url}/pulls/{self.number}"

    @property
    def issue_url(self) -> str:
        return f"{self.repo.url}/issues/{self.number}"

    @property
    def html_url(self) -> str:
        return f"{self.repo.html_url}/pull/{self.number}"

    @property
    def base_sha(self) -> str:
        """The base branch tip now (or when the pull request was closed)."""
        if self.closed_base_sha:
            return self.closed_base_sha
        sha = self.repo.git.resolve(f"refs/heads/{self.base_ref}")
        assert sha is not None, f"base branch {self.base_ref} of {self.repo.full_name} is gone"
        return sha
