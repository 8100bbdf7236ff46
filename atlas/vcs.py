"""The VCS client interface: everything atlas asks of GitHub, and nothing about how it is asked.

The command pipeline only sees `VCSClient`; `atlas.github.client` implements it with PyGithub, and a
GitLab client could implement it later without the pipeline changing.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel

from atlas.models import PullRequest, Repo


class CommitState(StrEnum):
    PENDING = "pending"
    SUCCESS = "success"
    FAILURE = "failure"
    ERROR = "error"


class FileStatus(StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    MODIFIED = "modified"
    RENAMED = "renamed"
    COPIED = "copied"
    CHANGED = "changed"
    UNCHANGED = "unchanged"


class ChangedFile(BaseModel):
    filename: str
    status: FileStatus = FileStatus.MODIFIED
    previous_filename: str | None = None


class PostedComment(BaseModel):
    id: int
    node_id: str = ""
    html_url: str = ""


class Permission(StrEnum):
    ADMIN = "admin"
    MAINTAIN = "maintain"
    WRITE = "write"
    TRIAGE = "triage"
    READ = "read"
    NONE = "none"

    @property
    def can_write(self) -> bool:
        return self in (Permission.ADMIN, Permission.MAINTAIN, Permission.WRITE)


class Issue(BaseModel):
    """An issue (not a pull request), as atlas's drift reports use them."""

    number: int
    title: str
    body: str = ""
    state: str = "open"
    html_url: str = ""
    labels: tuple[str, ...] = ()


class VCSError(Exception):
    """A VCS request failed after retries; the message is safe to show users (no token in it)."""


class VCSClient(Protocol):
    """What the command pipeline needs from a code host."""

    def changed_files(self, pull: PullRequest) -> list[ChangedFile]:
        """Every file the pull request changes (all pages)."""
        ...

    def post_comment(self, repo: Repo, number: int, body: str) -> PostedComment: ...

    def set_status(
        self,
        repo: Repo,
        sha: str,
        state: CommitState,
        context: str,
        description: str,
        target_url: str | None = None,
    ) -> None: ...

    def get_pull(self, repo: Repo, number: int) -> PullRequest: ...

    def resolve_ref(self, repo: Repo, ref: str) -> str:
        """The commit sha a branch, tag or sha names (VCSError when there is none)."""
        ...

    def react(self, repo: Repo, comment_id: int, reaction: str) -> None: ...

    def permission(self, repo: Repo, user: str) -> Permission: ...

    def is_team_member(self, org: str, team_slug: str, user: str) -> bool: ...

    def approvals(self, repo: Repo, number: int) -> list[str]:
        """Logins whose latest review of the pull request approves it."""
        ...

    def is_mergeable(self, repo: Repo, number: int, ignore_contexts: tuple[str, ...] = ()) -> bool:
        """GitHub says it can be merged, not counting failing statuses named in ignore_contexts."""
        ...

    def merge(self, repo: Repo, number: int, sha: str, method: str | None = None) -> None:
        """Merge exactly `sha` with `method` (merge, squash, rebase; None: the host's default)."""
        ...

    def delete_branch(self, repo: Repo, branch: str) -> None:
        """Delete a branch of `repo` (after its pull request was merged)."""
        ...

    def dismiss_approvals(self, repo: Repo, number: int, message: str) -> list[str]:
        """Dismiss every approving review of the pull request; the logins whose approval was dismissed."""
        ...

    def hide_comment(self, node_id: str, classifier: str = "OUTDATED", *, repo: Repo | None = None) -> None: ...

    def list_comments(self, repo: Repo, number: int) -> list[tuple[PostedComment, str, str]]:
        """Comments on the pull request as (comment, author login, body)."""
        ...

    def get_repo(self, full_name: str) -> Repo:
        """The repository `owner/name`, with its clone URL and default branch."""
        ...

    def branch_head(self, repo: Repo, branch: str) -> str:
        """The sha of the commit the branch points at now."""
        ...

    def find_issue(self, repo: Repo, title: str, label: str) -> Issue | None:
        """The open issue (not pull request) with exactly this title and this label, or None."""
        ...

    def create_issue(self, repo: Repo, title: str, body: str, labels: Sequence[str] = ()) -> Issue: ...

    def update_issue(self, repo: Repo, number: int, body: str) -> None:
        """Replace the issue's body; comment on an issue with `post_comment`."""
        ...

    def close_issue(self, repo: Repo, number: int) -> None: ...
