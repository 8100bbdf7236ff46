"""`VCSClient` for GitHub and GitHub Enterprise Server, on PyGithub.

PyGithub's blanket pacing is switched off and replaced by `atlas.github.ratelimit`: writes are counted
against the token's budget and only wait when it is spent, and retries follow what GitHub asks.
Every failure leaves as `VCSError` with GitHub's status and message, never the token.

Over 500 lines on purpose: it implements the whole VCS client protocol for GitHub, one method per
protocol method, each counting its own calls.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Concatenate, ParamSpec, TypeVar
from urllib.parse import quote

import requests
from github import Auth, BadCredentialsException, Github, GithubException, UnknownObjectException
from github.Issue import Issue as GithubIssue
from github.PullRequest import PullRequest as GithubPull
from github.Repository import Repository as GithubRepository

from atlas import metrics
from atlas.github.app_auth import AppAuthError, GitHubApp
from atlas.github.checks import CheckRuns
from atlas.github.errors import describe
from atlas.github.ratelimit import GitHubRetry, WriteBudget
from atlas.host_retry import DEFAULT_BACKOFF_BASE, DEFAULT_MAX_RATE_LIMIT_WAIT, DEFAULT_MAX_RETRIES
from atlas.logs import redact, runtime_secrets
from atlas.models import PullRequest, Repo
from atlas.vcs import ChangedFile, CommitState, FileStatus, Issue, Permission, PostedComment, VCSError

log = logging.getLogger(__name__)

GITHUB_API_URL = "https://api.github.com"
PER_PAGE = 100
"""Items per page for every list (GitHub's maximum), so long lists take few requests."""
STATUS_DESCRIPTION_MAX = 140
"""GitHub's limit on a commit status description; atlas shortens longer ones."""
MERGEABLE_POLLS = 3
"""How often to ask again while GitHub is still computing `mergeable` (it answers null)."""

_DECIDING_REVIEW_STATES = ("APPROVED", "CHANGES_REQUESTED", "DISMISSED")


def pull_from_api(pr: GithubPull) -> PullRequest:
    """The pull request as atlas models it, from PyGithub's object of the REST answer."""
    base_repo = pr.base.repo
    head_repo = pr.head.repo
    repo = Repo(
        full_name=base_repo.full_name,
        clone_url=base_repo.clone_url,
        html_url=base_repo.html_url,
        default_branch=base_repo.default_branch,
        private=base_repo.private,
    )
    return PullRequest(
        repo=repo,
        number=pr.number,
        head_sha=pr.head.sha,
        head_ref=pr.head.ref,
        base_ref=pr.base.ref,
        base_sha=pr.base.sha,
        author=pr.user.login,
        html_url=pr.html_url,
        title=pr.title,
        is_draft=bool(pr.draft),
        # A deleted fork leaves `head.repo` null; it was a fork all the same.
        is_fork=head_repo is None or head_repo.full_name != base_repo.full_name,
        head_clone_url=head_repo.clone_url if head_repo is not None else "",
        is_open=pr.state == "open",
        merged=bool(pr.merged),
        merge_commit_sha=(pr.merge_commit_sha or "") if pr.merged else "",
        merged_by=pr.merged_by.login if pr.merged and pr.merged_by else "",
        labels=tuple(label.name for label in pr.labels),
    )


def issue_from_api(issue: GithubIssue) -> Issue:
    return Issue(
        number=issue.number,
        title=issue.title,
        body=issue.body or "",
        state=issue.state,
        html_url=issue.html_url,
        labels=tuple(label.name for label in issue.labels),
    )


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


P = ParamSpec("P")
T = TypeVar("T")


def _counted(method: Callable[Concatenate[GitHubClient, P], T]) -> Callable[Concatenate[GitHubClient, P], T]:
    """Count each call of a `VCSClient` method, and each failed one, under the method's name."""
    name = method.__name__

    @functools.wraps(method)
    def counted(self: GitHubClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            try:
                result = method(self, *args, **kwargs)
            except VCSError as error:
                # An installation token GitHub refused (revoked, or expired early): replace it once, retry once.
                if not (isinstance(error.__cause__, BadCredentialsException) and self._replace_refused_token()):
                    raise
                result = method(self, *args, **kwargs)
        except Exception:
            metrics.record_github_call(name, ok=False)
            raise
        metrics.record_github_call(name, ok=True)
        return result

    return counted


class GitHubClient:
    """atlas's `VCSClient` for github.com (`https://api.github.com`) or GHES (`https://HOST/api/v3`)."""

    def __init__(
        self,
        token: str,
        api_url: str = GITHUB_API_URL,
        *,
        write_budget: WriteBudget | None = None,
        app: GitHubApp | None = None,
        installation_budget: Callable[[int], WriteBudget] | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        timeout: float = 30,
        backoff_base: float = DEFAULT_BACKOFF_BASE,
        max_rate_limit_wait: float = DEFAULT_MAX_RATE_LIMIT_WAIT,
        mergeable_poll_interval: float = 1.0,
    ) -> None:
        self._token = token
        self.api_url = api_url.rstrip("/")
        self.write_budget = write_budget or WriteBudget.for_token(token)
        self._mergeable_poll_interval = mergeable_poll_interval
        self._retry_settings = (max_retries, backoff_base, max_rate_limit_wait, max(math.ceil(timeout), 1))
        self._github = self._client(Auth.Token(token) if token else None, self.write_budget)
        # App mode: one client and one write budget per installation, since GitHub counts per installation.
        self.app = app
        self._installation_budget = installation_budget or (
            lambda installation: WriteBudget.for_token(f"github-app-installation:{installation}"))
        self._installations: dict[int, tuple[Github, WriteBudget]] = {}
        self._sessions_lock = threading.Lock()
        self._used = threading.local()

    def _client(self, auth: Auth.Auth | None, budget: WriteBudget) -> Github:
        max_retries, backoff_base, max_rate_limit_wait, timeout = self._retry_settings
        retry = GitHubRetry.policy(
            max_retries, backoff_base=backoff_base, max_rate_limit_wait=max_rate_limit_wait, write_budget=budget,
        )
        return Github(
            base_url=self.api_url,
            auth=auth,
            # Pacing is the write budget's job; PyGithub's fixed sleeps would slow every request.
            seconds_between_requests=None,
            seconds_between_writes=None,
            retry=retry,
            timeout=timeout,
            per_page=PER_PAGE,
            # Objects are built from URLs without a GET; data is fetched when first read.
            lazy=True,
        )

    def __repr__(self) -> str:
        return f"GitHubClient(api_url={self.api_url!r})"

    def close(self) -> None:
        """Close the pooled HTTP connections."""
        self._github.close()
        with self._sessions_lock:
            for github, _ in self._installations.values():
                github.close()

    # Who atlas is on each repository: the token, or the App's installation there

    def _session(self, installation: int) -> tuple[Github, WriteBudget]:
        assert self.app is not None
        # Noted per thread, so that a refused token is replaced for the installation that used it.
        self._used.installation, self._used.token = installation, self.app.token(installation)
        with self._sessions_lock:
            session = self._installations.get(installation)
            if session is None:
                budget = self._installation_budget(installation)
                session = self._installations[installation] = (
                    self._client(self.app.auth(installation), budget), budget)
            return session

    def _for_repo(self, full_name: str) -> tuple[Github, WriteBudget]:
        if self.app is None:
            return self._github, self.write_budget
        try:
            return self._session(self.app.installation_id(full_name))
        except AppAuthError as error:
            raise VCSError(str(error)) from None

    def _for_owner(self, owner: str) -> Github:
        if self.app is None:
            return self._github
        try:
            return self._session(self.app.owner_installation_id(owner))[0]
        except AppAuthError as error:
            raise VCSError(str(error)) from None

    def _gh(self, full_name: str) -> Github:
        return self._for_repo(full_name)[0]

    def _budget(self, full_name: str) -> WriteBudget:
        return self._for_repo(full_name)[1]

    def check_runs(self, repo_full_name: str) -> CheckRuns:
        """Check runs on the repository, as its App installation (GitHub lets only Apps write them)."""
        if self.app is None:
            raise VCSError("check runs need a GitHub App (--gh-app-id): GitHub lets only Apps create them")
        try:
            installation = self.app.installation_id(repo_full_name)
        except AppAuthError as error:
            raise VCSError(str(error)) from None
        github, budget = self._session(installation)
        app = self.app

        def call(action: Callable[[], T]) -> T:
            return app.call(installation, action)

        return CheckRuns(github, write_budget=budget, call=call)

    def _replace_refused_token(self) -> bool:
        """Replace the installation token this thread last used, after GitHub refused it; False in token mode."""
        installation, token = getattr(self._used, "installation", None), getattr(self._used, "token", None)
        if self.app is None or installation is None or token is None:
            return False
        log.info("GitHub refused the installation token; replacing it", extra={"installation": installation})
        try:
            self.app.replace_token(installation, token)
        except AppAuthError:
            return False
        return True

    @contextmanager
    def _calling(self, action: str) -> Iterator[None]:
        """Turn whatever PyGithub or requests raise into a `VCSError` safe to show users."""
        try:
            yield
        except GithubException as error:
            raise VCSError(self._scrub(describe(action, error))) from error
        except requests.RequestException as error:
            raise VCSError(self._scrub(f"GitHub {action} failed: {type(error).__name__}: {error}")) from error
        except AppAuthError as error:
            raise VCSError(str(error)) from None

    def _scrub(self, text: str) -> str:
        return redact(text, (self._token, *runtime_secrets()[1]))

    def _repo(self, repo: Repo) -> GithubRepository:
        return self._gh(repo.full_name).get_repo(repo.full_name)

    def _repo_url(self, repo: Repo) -> str:
        return f"/repos/{repo.full_name}"

    # Reading

    @_counted
    def get_pull(self, repo: Repo, number: int) -> PullRequest:
        with self._calling(f"reading pull request {repo.full_name}#{number}"):
            return pull_from_api(self._repo(repo).get_pull(number))

    @_counted
    def resolve_ref(self, repo: Repo, ref: str) -> str:
        with self._calling(f"resolving {ref} in {repo.full_name}"):
            # raw_data forces the request: a lazy Commit would report the ref itself as its sha.
            sha: str = self._repo(repo).get_commit(ref).raw_data["sha"]
            return sha

    @_counted
    def changed_files(self, pull: PullRequest) -> list[ChangedFile]:
        """Every file the pull request changes, all pages (GitHub lists at most 3000)."""
        with self._calling(f"listing files of {pull.key}"):
            files = []
            for item in self._repo(pull.repo).get_pull(pull.number).get_files():
                try:
                    status = FileStatus(item.status)
                except ValueError:
                    status = FileStatus.MODIFIED
                files.append(
                    ChangedFile(filename=item.filename, status=status, previous_filename=item.previous_filename)
                )
            return files

    @_counted
    def list_comments(self, repo: Repo, number: int) -> list[tuple[PostedComment, str, str]]:
        with self._calling(f"listing comments of {repo.full_name}#{number}"):
            return [
                (PostedComment(id=c.id, node_id=c.node_id, html_url=c.html_url), c.user.login, c.body)
                for c in self._repo(repo).get_issue(number).get_comments()
            ]

    @_counted
    def get_repo(self, full_name: str) -> Repo:
        with self._calling(f"reading repository {full_name}"):
            found = self._gh(full_name).get_repo(full_name)
            return Repo(
                full_name=found.full_name,
                clone_url=found.clone_url,
                html_url=found.html_url,
                default_branch=found.default_branch,
                private=found.private,
            )

    @_counted
    def branch_head(self, repo: Repo, branch: str) -> str:
        with self._calling(f"reading branch {branch} of {repo.full_name}"):
            return str(self._repo(repo).get_branch(branch).commit.sha)

    @_counted
    def find_issue(self, repo: Repo, title: str, label: str) -> Issue | None:
        """The open issue with this title and label; pull requests, which GitHub lists too, are skipped."""
        with self._calling(f"listing issues of {repo.full_name}"):
            for issue in self._repo(repo).get_issues(state="open", labels=[label]):
                if issue.pull_request is None and issue.title == title:
                    return issue_from_api(issue)
            return None

    @_counted
    def permission(self, repo: Repo, user: str) -> Permission:
        """The user's role on the repository; `none` for users GitHub does not know there."""
        with self._calling(f"reading the permission of {user} on {repo.full_name}"):
            try:
                _, data = self._gh(repo.full_name).requester.requestJsonAndCheck(
                    "GET", f"{self._repo_url(repo)}/collaborators/{quote(user, safe='')}/permission"
                )
            except UnknownObjectException:
                return Permission.NONE
        # `role_name` says maintain/triage; `permission` folds them into write/read (custom roles too).
        for value in (data.get("role_name"), data.get("permission")):
            try:
                return Permission(value)
            except ValueError:
                continue
        return Permission.NONE

    @_counted
    def is_team_member(self, org: str, team_slug: str, user: str) -> bool:
        """Whether the user is an active member (or maintainer) of the team; False if no such team."""
        with self._calling(f"reading membership of {user} in {org}/{team_slug}"):
            team = self._for_owner(org).get_organization(org).get_team_by_slug(team_slug)
            try:
                membership = team.get_team_membership(user)
            except UnknownObjectException:
                return False
            return membership.state == "active"

    @_counted
    def approvals(self, repo: Repo, number: int) -> list[str]:
        """Logins whose latest review approves; a later comment-only review does not undo it."""
        with self._calling(f"listing reviews of {repo.full_name}#{number}"):
            latest: dict[str, str] = {}
            for review in self._repo(repo).get_pull(number).get_reviews():
                if review.state in _DECIDING_REVIEW_STATES and review.user is not None:
                    latest[review.user.login] = review.state
            return sorted(login for login, state in latest.items() if state == "APPROVED")

    @_counted
    def is_mergeable(self, repo: Repo, number: int, ignore_contexts: tuple[str, ...] = ()) -> bool:
        """GitHub says it can be merged, not counting failing statuses named in ignore_contexts.

        `clean`, `has_hooks` and `unstable` (only optional statuses fail) are mergeable, as the
        merge button says. `blocked` counts as mergeable when every status that is not green is one
        of `ignore_contexts` (typically atlas's own apply status, pending while it applies). Only
        commit statuses are read: a pull request blocked by reviews or check runs stays blocked.
        """
        with self._calling(f"reading mergeability of {repo.full_name}#{number}"):
            github_repo = self._repo(repo)
            pr = github_repo.get_pull(number)
            mergeable = pr.mergeable
            for _ in range(MERGEABLE_POLLS):
                if mergeable is not None:
                    break
                # GitHub computes mergeability in the background and answers null meanwhile.
                time.sleep(self._mergeable_poll_interval)
                pr = github_repo.get_pull(number)
                mergeable = pr.mergeable
            if not mergeable:
                return False
            state = pr.mergeable_state
            if state in ("clean", "has_hooks", "unstable"):
                return True
            if state != "blocked":
                # dirty (conflicts), behind, draft, unknown.
                return False
            combined = github_repo.get_commit(pr.head.sha).get_combined_status()
            failing = [s.context for s in combined.statuses if s.state != "success"]
            # No failing status means something else blocks (reviews, check runs): not ours to ignore.
            return bool(failing) and all(context in ignore_contexts for context in failing)

    # Writing

    @_counted
    def post_comment(self, repo: Repo, number: int, body: str) -> PostedComment:
        with self._calling(f"commenting on {repo.full_name}#{number}"):
            self._budget(repo.full_name).acquire()
            comment = self._repo(repo).get_issue(number).create_comment(body)
            return PostedComment(id=comment.id, node_id=comment.node_id, html_url=comment.html_url)

    def comment_on_issue(self, repo: Repo, number: int, body: str) -> None:
        # GitHub comments on an issue as on a pull request.
        self.post_comment(repo, number, body)

    @_counted
    def create_issue(self, repo: Repo, title: str, body: str, labels: Sequence[str] = ()) -> Issue:
        with self._calling(f"opening an issue in {repo.full_name}"):
            self._budget(repo.full_name).acquire()
            return issue_from_api(self._repo(repo).create_issue(title=title, body=body, labels=list(labels)))

    @_counted
    def update_issue(self, repo: Repo, number: int, body: str) -> None:
        with self._calling(f"updating issue {repo.full_name}#{number}"):
            self._budget(repo.full_name).acquire()
            self._repo(repo).get_issue(number).edit(body=body)

    @_counted
    def close_issue(self, repo: Repo, number: int) -> None:
        with self._calling(f"closing issue {repo.full_name}#{number}"):
            self._budget(repo.full_name).acquire()
            self._repo(repo).get_issue(number).edit(state="closed", state_reason="completed")

    @_counted
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
        body: dict[str, str] = {
            "state": CommitState(state).value,
            "context": context,
            "description": _shorten(description, STATUS_DESCRIPTION_MAX),
        }
        if target_url:
            body["target_url"] = target_url
        with self._calling(f"setting status {context} on {repo.full_name}@{sha[:12]}"):
            self._budget(repo.full_name).acquire()
            # Straight to the endpoint: PyGithub's Commit.create_status would first GET the commit.
            self._gh(repo.full_name).requester.requestJsonAndCheck(
                "POST", f"{self._repo_url(repo)}/statuses/{sha}", input=body)

    @_counted
    def react(self, repo: Repo, comment_id: int, reaction: str, number: int | None = None) -> None:
        with self._calling(f"reacting to comment {comment_id} on {repo.full_name}"):
            self._budget(repo.full_name).acquire()
            self._gh(repo.full_name).requester.requestJsonAndCheck(
                "POST",
                f"{self._repo_url(repo)}/issues/comments/{comment_id}/reactions",
                input={"content": reaction},
            )

    @_counted
    def merge(self, repo: Repo, number: int, sha: str, method: str | None = None) -> None:
        """Merge exactly `sha` (GitHub answers 409 if the head moved since); no method: GitHub's default."""
        with self._calling(f"merging {repo.full_name}#{number}"):
            self._budget(repo.full_name).acquire()
            pull = self._repo(repo).get_pull(number)
            result = pull.merge(sha=sha, merge_method=method) if method else pull.merge(sha=sha)
            if not result.merged:
                raise VCSError(f"GitHub did not merge {repo.full_name}#{number}: {result.message}")

    @_counted
    def delete_branch(self, repo: Repo, branch: str) -> None:
        with self._calling(f"deleting branch {branch} of {repo.full_name}"):
            self._budget(repo.full_name).acquire()
            # Straight to the endpoint: PyGithub's GitRef.delete would first GET the ref.
            self._gh(repo.full_name).requester.requestJsonAndCheck(
                "DELETE", f"{self._repo_url(repo)}/git/refs/heads/{quote(branch, safe='/')}")

    @_counted
    def dismiss_approvals(self, repo: Repo, number: int, message: str) -> list[str]:
        with self._calling(f"dismissing approvals of {repo.full_name}#{number}"):
            latest: dict[str, tuple[int, str]] = {}
            for review in self._repo(repo).get_pull(number).get_reviews():
                if review.state in _DECIDING_REVIEW_STATES and review.user is not None:
                    latest[review.user.login] = (review.id, review.state)
            dismissed = []
            for login, (review_id, state) in sorted(latest.items()):
                if state != "APPROVED":
                    continue
                self._budget(repo.full_name).acquire()
                self._gh(repo.full_name).requester.requestJsonAndCheck(
                    "PUT", f"{self._repo_url(repo)}/pulls/{number}/reviews/{review_id}/dismissals",
                    input={"message": message, "event": "DISMISS"})
                dismissed.append(login)
            return dismissed

    @_counted
    def hide_comment(self, node_id: str, classifier: str = "OUTDATED", *, repo: Repo | None = None) -> None:
        """Minimize a comment (GraphQL `minimizeComment`; github.com `/graphql`, GHES `/api/graphql`).

        `repo` is where the comment is: in App mode, whose installation hides it.
        """
        with self._calling(f"hiding comment {node_id}"):
            github, budget = self._for_repo(repo.full_name) if repo is not None else (self._github, self.write_budget)
            budget.acquire()
            _, data = github.requester.graphql_named_mutation(
                "minimizeComment",
                {"subjectId": node_id, "classifier": classifier},
                "minimizedComment { isMinimized }",
            )
        if not (data.get("minimizedComment") or {}).get("isMinimized"):
            raise VCSError(f"GitHub did not hide comment {node_id}")
