"""The VCS client interface: everything atlas asks of GitHub, and nothing about how it is asked.

The command pipeline only sees `VCSClient`; `atlas.github.client` implements it with PyGithub and
`atlas.gitlab.client` with python-gitlab. `VCSClients` is the one the pipeline is handed: it answers
each call with the client of the repository's host (`Repo.vcs`), so no command knows which it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel

from atlas.models import PullRequest, Repo, VCSHost


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
        number: int | None = None,
    ) -> None:
        """A commit status; `number` is the pull request it is for, where the host files statuses by it
        (GitLab: the merge request's head pipeline)."""
        ...

    def get_pull(self, repo: Repo, number: int) -> PullRequest: ...

    def resolve_ref(self, repo: Repo, ref: str) -> str:
        """The commit sha a branch, tag or sha names (VCSError when there is none)."""
        ...

    def react(self, repo: Repo, comment_id: int, reaction: str, number: int | None = None) -> None:
        """React to a comment of pull request `number` (GitLab needs it to find the note)."""
        ...

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
        """Replace the issue's body."""
        ...

    def comment_on_issue(self, repo: Repo, number: int, body: str) -> None:
        """Comment on issue `number` (on GitHub an issue comment, as on a pull request; on GitLab an issue note)."""
        ...

    def close_issue(self, repo: Repo, number: int) -> None: ...


class VCSClients:
    """The `VCSClient` of every host atlas serves, answering each call with the repository's host's client.

    A repository of a host without a client (GitLab on a GitHub-only server) is a `VCSError` that
    says which settings serve it.
    """

    def __init__(self, clients: Mapping[VCSHost, VCSClient]) -> None:
        self.clients = dict(clients)

    def for_repo(self, repo: Repo) -> VCSClient:
        return self.for_host(repo.vcs)

    def for_host(self, host: VCSHost) -> VCSClient:
        client = self.clients.get(host)
        if client is None:
            flag = "--gitlab-token" if host is VCSHost.GITLAB else "--gh-token or --gh-app-id"
            raise VCSError(f"this server does not serve {host.display_name} ({flag} is not set)")
        return client

    def changed_files(self, pull: PullRequest) -> list[ChangedFile]:
        return self.for_repo(pull.repo).changed_files(pull)

    def post_comment(self, repo: Repo, number: int, body: str) -> PostedComment:
        return self.for_repo(repo).post_comment(repo, number, body)

    def set_status(
        self,
        repo: Repo,
        sha: str,
        state: CommitState,
        context: str,
        description: str,
        target_url: str | None = None,
        number: int | None = None,
    ) -> None:
        self.for_repo(repo).set_status(repo, sha, state, context, description, target_url, number)

    def get_pull(self, repo: Repo, number: int) -> PullRequest:
        return self.for_repo(repo).get_pull(repo, number)

    def resolve_ref(self, repo: Repo, ref: str) -> str:
        return self.for_repo(repo).resolve_ref(repo, ref)

    def react(self, repo: Repo, comment_id: int, reaction: str, number: int | None = None) -> None:
        self.for_repo(repo).react(repo, comment_id, reaction, number)

    def permission(self, repo: Repo, user: str) -> Permission:
        return self.for_repo(repo).permission(repo, user)

    def is_team_member(self, org: str, team_slug: str, user: str) -> bool:
        """GitHub's teams; ask `for_repo(repo)` for another host's (GitLab's groups)."""
        return self.for_host(VCSHost.GITHUB).is_team_member(org, team_slug, user)

    def approvals(self, repo: Repo, number: int) -> list[str]:
        return self.for_repo(repo).approvals(repo, number)

    def is_mergeable(self, repo: Repo, number: int, ignore_contexts: tuple[str, ...] = ()) -> bool:
        return self.for_repo(repo).is_mergeable(repo, number, ignore_contexts)

    def merge(self, repo: Repo, number: int, sha: str, method: str | None = None) -> None:
        self.for_repo(repo).merge(repo, number, sha, method)

    def delete_branch(self, repo: Repo, branch: str) -> None:
        self.for_repo(repo).delete_branch(repo, branch)

    def dismiss_approvals(self, repo: Repo, number: int, message: str) -> list[str]:
        return self.for_repo(repo).dismiss_approvals(repo, number, message)

    def hide_comment(self, node_id: str, classifier: str = "OUTDATED", *, repo: Repo | None = None) -> None:
        client = self.for_repo(repo) if repo is not None else self.for_host(VCSHost.GITHUB)
        client.hide_comment(node_id, classifier, repo=repo)

    def list_comments(self, repo: Repo, number: int) -> list[tuple[PostedComment, str, str]]:
        return self.for_repo(repo).list_comments(repo, number)

    def get_repo(self, full_name: str, host: VCSHost = VCSHost.GITHUB) -> Repo:
        """The repository `full_name` on `host` (GitHub unless said)."""
        return self.for_host(host).get_repo(full_name)

    def branch_head(self, repo: Repo, branch: str) -> str:
        return self.for_repo(repo).branch_head(repo, branch)

    def find_issue(self, repo: Repo, title: str, label: str) -> Issue | None:
        return self.for_repo(repo).find_issue(repo, title, label)

    def create_issue(self, repo: Repo, title: str, body: str, labels: Sequence[str] = ()) -> Issue:
        return self.for_repo(repo).create_issue(repo, title, body, labels)

    def update_issue(self, repo: Repo, number: int, body: str) -> None:
        self.for_repo(repo).update_issue(repo, number, body)

    def comment_on_issue(self, repo: Repo, number: int, body: str) -> None:
        self.for_repo(repo).comment_on_issue(repo, number, body)

    def close_issue(self, repo: Repo, number: int) -> None:
        self.for_repo(repo).close_issue(repo, number)
