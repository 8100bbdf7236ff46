"""Per-project locks: which pull request may plan and apply a project, and who waits for it next.

A lock is held per (repository, project dir, workspace) by one pull request. A command takes every
lock it needs in one step before it plans anything (`LockStore.acquire`), so of several pull
requests racing for a project exactly one gets it, and a small pull request can never take one
project of a large one halfway through. A pull request refused a lock can wait for it in a FIFO
queue; when the lock is released it passes straight to the first waiter in the same step, which
is then recorded as needing a plan (`pending_handoffs`) so that whichever process released it,
the server plans the waiter.

`LockStore` is the interface; `atlas.stores.sqlite.locks.SQLiteLockStore` is the embedded default
(its own tables in `<data-dir>/atlas.db`) and `atlas.stores.redis.locks.RedisLockStore` the shared one.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from atlas.models import Project, PullRequest, Repo, VCSHost, repo_key, split_repo_key, utcnow


def lock_id_for(repo: str, project: Project) -> str:
    """The lock's stable, URL-safe id: base64url of `REPO_KEY/DIR/WORKSPACE` (`Repo.key`), without padding.

    base64url rather than percent-escaping, because web servers decode `%2F` before routing
    `/locks/<id>`. The text is unambiguous: a GitHub repository is the first two segments, a GitLab
    project's path (any number of segments, never a colon) ends at the colon after its `gitlab:`
    prefix, and a workspace name holds no slash.
    """
    _, vcs = split_repo_key(repo)
    separator = ":" if vcs is VCSHost.GITLAB else "/"
    text = f"{repo}{separator}{project.dir}/{project.workspace}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def lock_id_parts(lock_id: str) -> tuple[str, str, str] | None:
    """The repository key, dir and workspace a `lock_id_for` id names, or None when it is not one."""
    try:
        text = base64.urlsafe_b64decode(lock_id + "=" * (-len(lock_id) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    path, vcs = split_repo_key(text)
    if vcs is VCSHost.GITLAB:
        repo, colon, rest = path.partition(":")
        if not colon:
            return None
        repo = repo_key(repo, vcs)
    else:
        owner, name, rest = [*text.split("/", 2), "", ""][:3]
        repo = f"{owner}/{name}"
    project_dir, slash, workspace = rest.rpartition("/")
    if not (slash and project_dir and workspace and repo.strip("/") == repo and "//" not in repo):
        return None
    return repo, project_dir, workspace


class ProjectLock(BaseModel):
    """A project of a repository held by one pull request; self-contained, so it can name its PR."""

    model_config = ConfigDict(frozen=True)

    id: str
    repo: str
    """The repository's key (`Repo.key`): `OWNER/NAME`, or `gitlab:GROUP/…/PROJECT`."""
    project: Project
    pull_number: int
    pull_url: str
    user: str
    head_sha: str
    created_at: datetime = Field(default_factory=utcnow)
    repo_html_url: str = ""
    repo_clone_url: str = ""
    job_id: str = ""
    """The job that took the lock while it runs; empty once the pull request holds it on its own."""
    repo_vcs: VCSHost = VCSHost.GITHUB
    """The host of the holder's repository, whose client answers it (a lock is released there)."""

    @classmethod
    def of(cls, pull: PullRequest, project: Project, user: str, job_id: str = "") -> ProjectLock:
        """The lock `pull` holds (or would hold) on `project`, taken now because of `user` (by job `job_id`)."""
        return cls(
            job_id=job_id,
            id=lock_id_for(pull.repo.key, project),
            repo=pull.repo.key,
            project=project,
            pull_number=pull.number,
            pull_url=pull.html_url,
            user=user,
            head_sha=pull.head_sha,
            repo_html_url=pull.repo.html_url,
            repo_clone_url=pull.repo.clone_url,
            repo_vcs=pull.repo.vcs,
        )

    @property
    def pull_key(self) -> str:
        """`owner/name#number`, as `PullRequest.key` names the holder."""
        return f"{self.repo}#{self.pull_number}"

    def vcs_repo(self) -> Repo:
        """The holder's repository, enough for a VCS client to comment on the pull request."""
        html_url = self.repo_html_url or self.pull_url.rsplit("/pull/", 1)[0]
        return Repo(full_name=split_repo_key(self.repo)[0], html_url=html_url,
                    clone_url=self.repo_clone_url or f"{html_url}.git", vcs=self.repo_vcs)


class LockAttempt(BaseModel):
    """What `acquire` did: the locks the pull request now holds, and those other pull requests hold."""

    acquired: list[ProjectLock] = Field(default_factory=list)
    conflicts: list[ProjectLock] = Field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every requested project is held by the pull request."""
        return not self.conflicts


class Release(BaseModel):
    """What a release did: the locks removed, and the new locks of the waiters they passed to."""

    released: list[ProjectLock] = Field(default_factory=list)
    handed_over: list[ProjectLock] = Field(default_factory=list)


class LockStore(Protocol):
    def acquire(self, pull: PullRequest, projects: Sequence[Project], user: str, job_id: str = "") -> LockAttempt:
        """Take (or keep, refreshing the head sha) every free project in one step; others are conflicts.

        A lock taken now carries `job_id`; one the pull request already held keeps what it carried.
        """
        ...

    def settle_job_lock(self, lock_id: str, job_id: str, *, release: bool) -> Release:
        """After job `job_id` was interrupted: release the lock it took (handing it over), or leave it
        to its pull request without the job; nothing when the lock is no longer that job's."""
        ...

    def wait_for(self, pull: PullRequest, project: Project, user: str) -> int:
        """Queue the pull request for the project's lock; its 1-based place in the queue.

        0 means it holds the lock: it already did, or the lock was free, in which case it takes it
        and the lock is recorded as a pending handoff like any other that passes to a waiter.
        """
        ...

    def waiting(self, repo: str, project: Project) -> list[int]:
        """Numbers of the pull requests waiting for the project, first in line first."""
        ...

    def waiting_for_pull(self, repo: str, number: int) -> list[Project]: ...

    def leave_queues(self, repo: str, number: int) -> list[Project]:
        """Take the pull request out of every queue; the projects it was waiting for."""
        ...

    def release_pull(self, repo: str, number: int) -> Release:
        """Release every lock of the pull request and take it out of every queue, handing locks over."""
        ...

    def release(self, lock_id: str) -> Release:
        """Release one lock (an operator's action), handing it over to the first waiter."""
        ...

    def pending_handoffs(self) -> list[ProjectLock]:
        """Locks that passed to a waiter that has not been planned yet, oldest first."""
        ...

    def mark_handoff_planned(self, lock_id: str) -> None: ...

    def get(self, repo: str, project: Project) -> ProjectLock | None: ...

    def get_by_id(self, lock_id: str) -> ProjectLock | None: ...

    def for_pull(self, repo: str, number: int) -> list[ProjectLock]: ...

    def all(self) -> list[ProjectLock]:
        """Every lock, sorted by repository, dir and workspace."""
        ...

    def count(self) -> int: ...
