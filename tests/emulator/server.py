"""The GitHub emulator: GitHub's REST API and git over HTTP on a local port, for end-to-end tests.

Tests build the world through plain Python methods (`create_repo`, `open_pull`, `push`,
`set_permission`, `fail_next` …), point atlas at `api_url`, and inspect what atlas did with
`comments`, `statuses` and `requests`. Every method is safe to call while the server answers
requests on its own threads.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from tests.emulator.api import create_api_app
from tests.emulator.git_http import GitAccess, GitHttpBackend
from tests.emulator.gitrepo import Author, BareRepo, Changes, DiffEntry
from tests.emulator.responses import ResponseShapes
from tests.emulator.state import (
    Comment,
    EmulatedIssue,
    EmulatedPull,
    EmulatedRepo,
    InjectedFailure,
    Reaction,
    RequestRecord,
    Review,
    Status,
    Team,
    TeamMembership,
    now,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

API_PREFIX = "/api/v3"
"""Where the REST API lives, as on GitHub Enterprise Server (`https://HOST/api/v3`)."""

GRAPHQL_PATH = "/api/graphql"
"""Where PyGithub posts GraphQL for a `…/api/v3` base URL."""

COMMENT_MAX_CHARS = 65536
"""GitHub's limit on an issue comment body; longer bodies get 422."""

STATUS_STATES = ("error", "failure", "pending", "success")
REVIEW_STATES = ("APPROVED", "CHANGES_REQUESTED", "COMMENTED", "DISMISSED", "PENDING")
REACTIONS = ("+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes")
ROLES = ("admin", "maintain", "write", "triage", "read", "none")

_REPO_BY_ID = re.compile(rf"^{API_PREFIX}/repositories/(?P<id>\d+)(?P<rest>/.*)?$")
_GITHUB_IDENT = Author("GitHub", "noreply@github.com")


class EmulatorExtension(Protocol):
    """Endpoints added to the emulator (tests/emulator/app.py: the GitHub App and check runs)."""

    def handles(self, environ: WSGIEnvironment) -> bool: ...

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]: ...


class EmulatorError(RuntimeError):
    """A test asked the emulator for something that does not exist or cannot be done."""


class MergeRefused(Exception):
    """GitHub would refuse this merge; carries the HTTP status and message it answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _QuietHandler(WSGIRequestHandler):
    """Werkzeug's handler without a log line per request (tests read `requests` instead)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def _user_author(login: str) -> Author:
    return Author(login, f"{login}@users.noreply.github.com")


class GitHubEmulator:
    """A GitHub (REST API + git smart HTTP) served from `root` on a free port of 127.0.0.1."""

    def __init__(self, root: Path, *, bot_login: str = "atlas-bot") -> None:
        self.root = root
        self.repos_root = root / "repos"
        self.repos_root.mkdir(parents=True, exist_ok=True)
        self.bot_login = bot_login
        self.token = "ghp_" + secrets.token_hex(18)
        self._tokens: dict[str, str] = {self.token: bot_login}
        # Further judges of tokens (a GitHub App's installation tokens) and routes (its endpoints).
        self._token_sources: list[Callable[[str], str | None]] = []
        self._extensions: list[EmulatorExtension] = []
        self.lock = threading.RLock()
        self._repos: dict[str, EmulatedRepo] = {}
        self._users: dict[str, int] = {}
        self._orgs: set[str] = set()
        self._teams: dict[tuple[str, str], Team] = {}
        self._failures: list[InjectedFailure] = []
        self._requests: list[RequestRecord] = []
        self._diff_cache: dict[tuple[str, str, str], list[DiffEntry]] = {}
        self._merge_cache: dict[tuple[str, str, str], str | None] = {}
        # Distinct ranges keep ids of different kinds apart, as on GitHub.
        self._repo_ids = itertools.count(700_000_001)
        self._pull_ids = itertools.count(2_800_000_001)
        self._issue_ids = itertools.count(3_100_000_001)
        self._comment_ids = itertools.count(3_900_000_001)
        self._status_ids = itertools.count(39_000_000_001)
        self._review_ids = itertools.count(2_500_000_001)
        self._reaction_ids = itertools.count(280_000_001)
        self._team_ids = itertools.count(9_000_001)
        self._user_ids = itertools.count(100_001)
        self.rate_limit_reset = int(time.time()) + 3600
        self.shapes = ResponseShapes(self)
        self._api = create_api_app(self)
        self._git = GitHttpBackend(
            self.repos_root,
            GitAccess(
                login_for_token=self.login_for_token,
                repository=self._git_repository,
                after_push=self._sync_pulls,
            ),
        )
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # Lifecycle

    def start(self) -> GitHubEmulator:
        self._server = make_server("127.0.0.1", 0, self, threaded=True, request_handler=_QuietHandler)
        self.port = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="github-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> GitHubEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if not self.port:
            raise EmulatorError("the emulator is not started: call start() first")
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}{API_PREFIX}"

    @property
    def graphql_url(self) -> str:
        return f"{self.base_url}{GRAPHQL_PATH}"

    # Tokens and users

    def add_token(self, token: str, login: str | None = None) -> None:
        """Accept `token` from now on, as the bot user unless `login` says otherwise."""
        with self.lock:
            self._tokens[token] = login or self.bot_login

    def login_for_token(self, token: str) -> str | None:
        with self.lock:
            login = self._tokens.get(token)
            sources = list(self._token_sources)
        for source in sources:
            if login is not None:
                break
            login = source(token)
        return login

    def add_token_source(self, source: Callable[[str], str | None]) -> None:
        """Also accept the tokens `source` names a login for, for the API and git alike."""
        with self.lock:
            self._token_sources.append(source)

    def add_extension(self, extension: EmulatorExtension) -> None:
        """Serve the requests `extension.handles` with it, ahead of the built-in API."""
        with self.lock:
            self._extensions.append(extension)

    def user_id(self, login: str) -> int:
        with self.lock:
            key = login.lower()
            if key not in self._users:
                self._users[key] = next(self._user_ids)
            return self._users[key]

    def is_org(self, login: str) -> bool:
        with self.lock:
            return login.lower() in self._orgs

    def add_org(self, login: str) -> None:
        with self.lock:
            self._orgs.add(login.lower())

    # Repositories

    def create_repo(
        self,
        full_name: str,
        source_dir: Path | None = None,
        files: Mapping[str, str | bytes] | None = None,
        substitutions: Mapping[str, str] | None = None,
        default_branch: str = "main",
        *,
        private: bool = True,
    ) -> EmulatedRepo:
        """A new repository whose first commit on `default_branch` holds `source_dir` plus `files`."""
        contents: dict[str, str | bytes | None] = {}
        modes: dict[str, str] = {}
        if source_dir is not None:
            for path in sorted(source_dir.rglob("*")):
                relative = path.relative_to(source_dir).as_posix()
                if ".git" in path.relative_to(source_dir).parts:
                    continue
                if path.is_symlink():  # committed as git does: the link's target, mode 120000
                    contents[relative] = os.readlink(path).encode()
                    modes[relative] = "120000"
                    continue
                if path.is_dir():
                    continue
                contents[relative] = path.read_bytes()
                if os.access(path, os.X_OK):
                    modes[relative] = "100755"
        contents.update(files or {})
        if substitutions:
            contents = {path: _substitute(data, substitutions) for path, data in contents.items()}
        with self.lock:
            if full_name.lower() in self._repos:
                raise EmulatorError(f"repository {full_name} already exists")
            repo = self._new_repo(full_name, default_branch, private)
            repo.git.commit(
                f"refs/heads/{default_branch}",
                contents,
                parent=None,
                message="Initial commit",
                author=_user_author(repo.owner),
                modes=modes,
            )
            return repo

    def _new_repo(
        self, full_name: str, default_branch: str, private: bool, parent: EmulatedRepo | None = None
    ) -> EmulatedRepo:
        owner, sep, name = full_name.partition("/")
        if not sep or not owner or not name or "/" in name:
            raise EmulatorError(f"repository names are owner/name, not {full_name!r}")
        path = self.repos_root / owner / f"{name}.git"
        git = parent.git.clone_to(path) if parent is not None else BareRepo(path)
        if parent is None:
            git.init(default_branch)
        repo = EmulatedRepo(
            emulator=self,
            id=next(self._repo_ids),
            full_name=full_name,
            git=git,
            default_branch=default_branch,
            private=private,
            parent=parent,
        )
        self._repos[full_name.lower()] = repo
        return repo

    def repo(self, full_name: str) -> EmulatedRepo:
        found = self.find_repo(full_name)
        if found is None:
            raise EmulatorError(f"no repository {full_name}")
        return found

    def find_repo(self, full_name: str) -> EmulatedRepo | None:
        with self.lock:
            return self._repos.get(full_name.lower())

    def find_repo_by_id(self, repo_id: int) -> EmulatedRepo | None:
        with self.lock:
            return next((r for r in self._repos.values() if r.id == repo_id), None)

    def set_permission(self, full_name: str, user: str, role: str) -> None:
        """Give `user` a role on the repository: admin, maintain, write, triage, read or none."""
        if role not in ROLES:
            raise EmulatorError(f"role must be one of {ROLES}, not {role!r}")
        with self.lock:
            self.repo(full_name).permissions[user.lower()] = role

    def role(self, repo: EmulatedRepo, user: str) -> str | None:
        """The user's role, None when GitHub knows no such collaborator."""
        with self.lock:
            explicit = repo.permissions.get(user.lower())
            if explicit is not None:
                return explicit
            if user.lower() == repo.owner.lower() and not self.is_org(repo.owner):
                return "admin"
            return None

    def set_branch_protection(
        self, full_name: str, required_contexts: Iterable[str] = (), required_approvals: int = 0
    ) -> None:
        """Protect the default branch: these statuses must pass and this many approvals exist."""
        with self.lock:
            repo = self.repo(full_name)
            repo.required_contexts = tuple(required_contexts)
            repo.required_approvals = required_approvals

    # Pull requests

    def open_pull(
        self,
        full_name: str,
        head: str,
        changes: Changes,
        title: str = "Update infrastructure",
        author: str = "octocat",
        draft: bool = False,
        from_fork: bool = False,
        base: str = "main",
        body: str = "",
    ) -> EmulatedPull:
        """A new pull request from branch `head` holding one commit with `changes` on top of `base`."""
        with self.lock:
            repo = self.repo(full_name)
            base_sha = repo.git.resolve(f"refs/heads/{base}")
            if base_sha is None:
                raise EmulatorError(f"{full_name} has no branch {base}")
            number = repo.next_number
            repo.next_number += 1
            head_repo = repo
            if from_fork:
                fork_name = f"{author}/{repo.name}"
                head_repo = self.find_repo(fork_name) or self._new_repo(
                    fork_name, repo.default_branch, repo.private, parent=repo
                )
            # The commit is made in the base repository, as GitHub keeps every head at refs/pull/N/head.
            head_sha = repo.git.commit(
                f"refs/pull/{number}/head",
                changes,
                parent=base_sha,
                message=title,
                author=_user_author(author),
            )
            self._publish_head(repo, head_repo, head, number, head_sha)
            pull = EmulatedPull(
                repo=repo,
                number=number,
                id=next(self._pull_ids),
                title=title,
                body=body,
                author=author,
                head_ref=head,
                head_repo=head_repo,
                base_ref=base,
                head_sha=head_sha,
                draft=draft,
            )
            repo.pulls[number] = pull
            return pull

    def _publish_head(self, repo: EmulatedRepo, head_repo: EmulatedRepo, branch: str, number: int, sha: str) -> None:
        """Point the head branch (in the fork, for forks) and refs/pull/N/head at `sha`."""
        repo.git.update_ref(f"refs/pull/{number}/head", sha)
        if head_repo is repo:
            repo.git.update_ref(f"refs/heads/{branch}", sha)
        else:
            head_repo.git.git("fetch", "--quiet", str(repo.git.path), f"+refs/pull/{number}/head:refs/heads/{branch}")

    def pull(self, full_name: str, number: int) -> EmulatedPull:
        with self.lock:
            found = self.repo(full_name).pulls.get(number)
            if found is None:
                raise EmulatorError(f"no pull request {full_name}#{number}")
            return found

    def label_pull(self, full_name: str, number: int, *labels: str) -> None:
        """Put `labels` on the pull request (as `POST /issues/{number}/labels` does)."""
        with self.lock:
            pull = self.pull(full_name, number)
            pull.labels = list(dict.fromkeys([*pull.labels, *labels]))

    def push(self, full_name: str, number: int, changes: Changes, message: str = "Update") -> str:
        """Add a commit with `changes` to the pull request's head branch; the new head sha."""
        with self.lock:
            pull = self.pull(full_name, number)
            sha = pull.repo.git.commit(
                f"refs/pull/{number}/head",
                changes,
                parent=pull.head_sha,
                message=message,
                author=_user_author(pull.author),
            )
            self._publish_head(pull.repo, pull.head_repo, pull.head_ref, number, sha)
            pull.previous_head_sha = pull.head_sha
            pull.head_sha = sha
            pull.updated_at = now()
            return sha

    def push_to_branch(self, full_name: str, branch: str, changes: Changes, message: str = "Update") -> str:
        """Add a commit with `changes` to `branch` (made from the default branch if new); its sha."""
        with self.lock:
            repo = self.repo(full_name)
            parent = repo.git.resolve(f"refs/heads/{branch}") or repo.git.resolve(f"refs/heads/{repo.default_branch}")
            sha = repo.git.commit(
                f"refs/heads/{branch}",
                changes,
                parent=parent,
                message=message,
                author=_user_author(repo.owner),
            )
            self._sync_pulls(full_name)
            return sha

    def _sync_pulls(self, full_name: str) -> None:
        """Follow pushes made over git: a moved head branch moves its open pull requests."""
        with self.lock:
            pushed = self.find_repo(full_name)
            if pushed is None:
                return
            for repo in list(self._repos.values()):
                for pull in repo.pulls.values():
                    if pull.state != "open" or pull.head_repo is not pushed:
                        continue
                    sha = pushed.git.resolve(f"refs/heads/{pull.head_ref}")
                    if sha and sha != pull.head_sha:
                        if pushed is not repo:
                            repo.git.git(
                                "fetch",
                                "--quiet",
                                str(pushed.git.path),
                                f"+{sha}:refs/pull/{pull.number}/head",
                            )
                        else:
                            repo.git.update_ref(f"refs/pull/{pull.number}/head", sha)
                        pull.previous_head_sha, pull.head_sha = pull.head_sha, sha
                        pull.updated_at = now()

    def set_draft(self, full_name: str, number: int, draft: bool) -> None:
        with self.lock:
            pull = self.pull(full_name, number)
            pull.draft = draft
            pull.updated_at = now()

    def set_mergeable(self, full_name: str, number: int, mergeable: bool | None) -> None:
        """Override GitHub's `mergeable` (None: still computing); by default it comes from git."""
        with self.lock:
            self.pull(full_name, number).mergeable_override = mergeable

    def add_review(
        self, full_name: str, number: int, user: str, state: str, body: str = "", commit_id: str | None = None
    ) -> Review:
        if state not in REVIEW_STATES:
            raise EmulatorError(f"review state must be one of {REVIEW_STATES}, not {state!r}")
        with self.lock:
            pull = self.pull(full_name, number)
            review = Review(
                id=next(self._review_ids),
                user=user,
                state=state,
                commit_id=commit_id or pull.head_sha,
                body=body,
            )
            pull.reviews.append(review)
            return review

    def dismiss_review(self, pull: EmulatedPull, review_id: int, by: str, message: str) -> Review:
        """Dismiss an approving or change-requesting review, as GitHub's dismissals endpoint does."""
        with self.lock:
            review = next((r for r in pull.reviews if r.id == review_id), None)
            if review is None:
                raise MergeRefused(404, "Not Found")
            if review.state not in ("APPROVED", "CHANGES_REQUESTED"):
                raise MergeRefused(422, f"Can not dismiss a {review.state.lower()} pull request review")
            review.state = "DISMISSED"
            review.dismissed_by = by
            review.dismissal_message = message
            return review

    def delete_branch(self, full_name: str, branch: str) -> None:
        """Delete a branch (`DELETE /repos/{owner}/{repo}/git/refs/heads/{branch}`); 422 when there is none."""
        with self.lock:
            repo = self.repo(full_name)
            if repo.git.resolve(f"refs/heads/{branch}") is None:
                raise MergeRefused(422, "Reference does not exist")
            repo.git.git("update-ref", "-d", f"refs/heads/{branch}")

    def branch_exists(self, full_name: str, branch: str) -> bool:
        return self.repo(full_name).git.resolve(f"refs/heads/{branch}") is not None

    def approvers(self, pull: EmulatedPull) -> list[str]:
        """Users whose latest approving or blocking review approves (comments do not count)."""
        latest: dict[str, str] = {}
        for review in pull.reviews:
            if review.state in ("APPROVED", "CHANGES_REQUESTED", "DISMISSED"):
                latest[review.user] = review.state
        return [user for user, state in latest.items() if state == "APPROVED"]

    def close_pull(self, full_name: str, number: int) -> None:
        with self.lock:
            pull = self.pull(full_name, number)
            if pull.state == "open":
                pull.closed_base_sha = pull.base_sha
                pull.state = "closed"
                pull.closed_at = pull.updated_at = now()

    def reopen_pull(self, full_name: str, number: int) -> None:
        with self.lock:
            pull = self.pull(full_name, number)
            if pull.merged:
                raise EmulatorError("a merged pull request cannot be reopened")
            pull.state = "open"
            pull.closed_at = pull.closed_base_sha = None
            pull.updated_at = now()

    def merge_pull(self, full_name: str, number: int, method: str = "merge", user: str | None = None) -> str:
        """Merge as if someone pressed the button; the merge commit sha."""
        with self.lock:
            pull = self.pull(full_name, number)
            try:
                return self.merge(pull, user or pull.author, method=method)
            except MergeRefused as refused:
                raise EmulatorError(f"GitHub would refuse this merge: {refused.message}") from refused

    def pull_files(self, pull: EmulatedPull) -> list[DiffEntry]:
        """The pull request's changed files: `git diff base...head`, as GitHub lists them."""
        with self.lock:
            key = (pull.full_name, pull.base_sha, pull.head_sha)
            if key not in self._diff_cache:
                self._diff_cache[key] = pull.repo.git.diff(key[1], key[2])
            return self._diff_cache[key]

    def commit_count(self, pull: EmulatedPull) -> int:
        merge_base = pull.repo.git.out("merge-base", pull.base_sha, pull.head_sha)
        return int(pull.repo.git.out("rev-list", "--count", f"{merge_base}..{pull.head_sha}"))

    def _merged_tree(self, pull: EmulatedPull) -> str | None:
        key = (pull.full_name, pull.base_sha, pull.head_sha)
        if key not in self._merge_cache:
            self._merge_cache[key] = pull.repo.git.merge_tree(key[1], key[2])
        return self._merge_cache[key]

    def mergeability(self, pull: EmulatedPull) -> tuple[bool | None, str]:
        """GitHub's (`mergeable`, `mergeable_state`) for the pull request now."""
        with self.lock:
            if pull.state != "open":
                return None, "unknown"
            override = pull.mergeable_override
            if override is None:
                return None, "unknown"
            mergeable = override if isinstance(override, bool) else self._merged_tree(pull) is not None
            if not mergeable:
                return False, "dirty"
            if pull.draft:
                return True, "draft"
            latest = {s.context: s.state for s in self.latest_statuses(pull.repo, pull.head_sha)}
            required_failing = [c for c in pull.repo.required_contexts if latest.get(c) != "success"]
            if required_failing or len(self.approvers(pull)) < pull.repo.required_approvals:
                return True, "blocked"
            if any(state != "success" for state in latest.values()):
                return True, "unstable"
            return True, "clean"

    def merge(
        self,
        pull: EmulatedPull,
        merged_by: str,
        *,
        method: str = "merge",
        sha: str | None = None,
        title: str | None = None,
        message: str | None = None,
    ) -> str:
        """Merge the head into the base branch in git and close the pull request; the new sha."""
        with self.lock:
            if pull.state != "open":
                raise MergeRefused(405, "Pull Request is not mergeable")
            if sha is not None and sha != pull.head_sha:
                raise MergeRefused(409, "Head branch was modified. Review and try the merge again.")
            if method not in ("merge", "squash", "rebase"):
                raise MergeRefused(422, f"Invalid merge_method: {method}")
            mergeable, state = self.mergeability(pull)
            if not mergeable or state in ("dirty", "blocked", "draft"):
                raise MergeRefused(405, "Pull Request is not mergeable")
            git = pull.repo.git
            base_sha = pull.base_sha
            tree = self._merged_tree(pull)
            if tree is None:
                # Forced mergeable by the test, but git cannot merge it: GitHub would find out too.
                raise MergeRefused(405, "Pull Request is not mergeable")
            committer = _user_author(merged_by)
            if method == "merge":
                head_label = f"{pull.head_repo.owner}/{pull.head_ref}"
                default_title = f"Merge pull request #{pull.number} from {head_label}"
                text = f"{title or default_title}\n\n{message or pull.title}"
                new_sha = git.commit_tree(tree, [base_sha, pull.head_sha], text, committer)
            elif method == "squash":
                text = f"{title or f'{pull.title} (#{pull.number})'}\n\n{message or ''}".rstrip() + "\n"
                new_sha = git.commit_tree(tree, [base_sha], text, committer)
            else:
                new_sha = self._rebase(pull, base_sha, committer)
            try:
                git.update_ref(f"refs/heads/{pull.base_ref}", new_sha, base_sha)
            except Exception as error:
                raise MergeRefused(409, "Base branch was modified. Review and try the merge again.") from error
            pull.closed_base_sha = new_sha
            pull.state = "closed"
            pull.merge_method = method
            pull.merged = True
            pull.merged_by = merged_by
            pull.merge_commit_sha = new_sha
            pull.merged_at = pull.closed_at = pull.updated_at = now()
            return new_sha

    def _rebase(self, pull: EmulatedPull, base_sha: str, committer: Author) -> str:
        """Replay the head's commits on the base; only when the base has not moved since branching."""
        git = pull.repo.git
        if git.out("merge-base", base_sha, pull.head_sha) != base_sha:
            raise MergeRefused(405, "This branch can't be rebased")
        tip = base_sha
        for commit in git.out("rev-list", "--reverse", f"{base_sha}..{pull.head_sha}").split():
            info = git.commit_info(commit)
            assert info is not None
            tip = git.commit_tree(info.tree, [tip], info.message + "\n", committer)
        return tip

    # Issues

    def create_issue(
        self, repo: EmulatedRepo, title: str, body: str = "", labels: Iterable[str] = (), author: str | None = None
    ) -> EmulatedIssue:
        """A new issue, numbered after the repository's last issue or pull request."""
        with self.lock:
            number = repo.next_number
            repo.next_number += 1
            issue = EmulatedIssue(
                repo=repo,
                number=number,
                id=next(self._issue_ids),
                title=title,
                author=author or self.bot_login,
                body=body,
                labels=list(dict.fromkeys(labels)),
            )
            repo.issues[number] = issue
            return issue

    def set_issue_state(self, issue: EmulatedIssue, state: str, by: str, reason: str | None = None) -> None:
        with self.lock:
            if state == issue.state:
                return
            issue.state = state
            if state == "closed":
                issue.state_reason = reason or "completed"
                issue.closed_by = by
                issue.closed_at = now()
            else:
                issue.state_reason = "reopened"
                issue.closed_by = None
                issue.closed_at = None
            issue.updated_at = now()

    def issues(self, full_name: str, *, state: str = "all", label: str | None = None) -> list[dict[str, Any]]:
        """The repository's issues (not pull requests), oldest first, as tests inspect them."""
        with self.lock:
            return [
                issue.snapshot()
                for issue in sorted(self.repo(full_name).issues.values(), key=lambda i: i.number)
                if state in ("all", issue.state) and (label is None or label in issue.labels)
            ]

    # Comments and reactions

    def add_comment(self, full_name: str, number: int, body: str, user: str) -> dict[str, Any]:
        """A comment by `user` on the pull request, as someone typed it on GitHub."""
        with self.lock:
            pull = self.pull(full_name, number)
            return self.create_comment(pull.repo, number, body, user).snapshot()

    def create_comment(self, repo: EmulatedRepo, number: int, body: str, user: str) -> Comment:
        with self.lock:
            comment = Comment(id=next(self._comment_ids), issue_number=number, user=user, body=body)
            repo.comments[comment.id] = comment
            return comment

    def add_reaction(self, comment: Comment, user: str, content: str) -> tuple[Reaction, bool]:
        """The user's reaction on the comment, and whether it is new."""
        with self.lock:
            for existing in comment.reactions:
                if existing.user == user and existing.content == content:
                    return existing, False
            reaction = Reaction(id=next(self._reaction_ids), user=user, content=content)
            comment.reactions.append(reaction)
            return reaction, True

    def find_comment_by_node(self, node: str) -> Comment | None:
        with self.lock:
            for repo in self._repos.values():
                for comment in repo.comments.values():
                    if comment.node_id == node:
                        return comment
            return None

    def comments(self, full_name: str, number: int) -> list[dict[str, Any]]:
        """Comments on the pull request, oldest first, as tests inspect them."""
        with self.lock:
            repo = self.repo(full_name)
            return [
                c.snapshot() for c in sorted(repo.comments.values(), key=lambda c: c.id) if c.issue_number == number
            ]

    # Statuses

    def create_status(
        self,
        repo: EmulatedRepo,
        sha: str,
        state: str,
        context: str,
        description: str | None,
        target_url: str | None,
        creator: str,
    ) -> Status:
        with self.lock:
            status = Status(
                id=next(self._status_ids),
                sha=sha,
                state=state,
                context=context,
                description=description,
                target_url=target_url,
                creator=creator,
            )
            repo.statuses.setdefault(sha, []).append(status)
            return status

    def latest_statuses(self, repo: EmulatedRepo, sha: str) -> list[Status]:
        """The newest status of each context on the commit, newest first (GitHub's combined view)."""
        with self.lock:
            latest: dict[str, Status] = {}
            for status in repo.statuses.get(sha, []):
                latest[status.context] = status
            return sorted(latest.values(), key=lambda s: s.id, reverse=True)

    def statuses(self, full_name: str, sha: str) -> list[dict[str, Any]]:
        """Every status set on the commit, in the order they were set."""
        with self.lock:
            return [s.snapshot() for s in self.repo(full_name).statuses.get(sha, [])]

    # Teams

    def add_team(self, org: str, slug: str, members: Iterable[str] = (), name: str | None = None) -> Team:
        with self.lock:
            self.add_org(org)
            key = (org.lower(), slug.lower())
            team = self._teams.get(key)
            if team is None:
                team = Team(id=next(self._team_ids), org=org, org_id=self.user_id(org), slug=slug, name=name or slug)
                self._teams[key] = team
            for member in members:
                team.memberships[member.lower()] = TeamMembership(state="active", role="member")
            return team

    def set_team_membership(
        self, org: str, slug: str, user: str, state: str | None = "active", role: str = "member"
    ) -> None:
        """Make `user` an active or pending member or maintainer of the team; None removes them."""
        with self.lock:
            team = self.add_team(org, slug)
            if state is None:
                team.memberships.pop(user.lower(), None)
            else:
                team.memberships[user.lower()] = TeamMembership(state=state, role=role)

    def find_team(self, org: str, slug: str) -> Team | None:
        with self.lock:
            return self._teams.get((org.lower(), slug.lower()))

    def find_team_by_id(self, team_id: int) -> Team | None:
        with self.lock:
            return next((t for t in self._teams.values() if t.id == team_id), None)

    # Failure injection and the request log

    def fail_next(
        self,
        method: str,
        path_regex: str,
        status: int,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next `times` matching requests with `status` instead of serving them.

        `method` is an HTTP method or `*`; `path_regex` is searched in the request path without
        its query string (e.g. `r"/pulls/1/files$"`). `body` defaults to GitHub's error shape.
        """
        with self.lock:
            self._failures.append(
                InjectedFailure(
                    method=method.upper(),
                    path_regex=path_regex,
                    status=status,
                    body=body,
                    headers=dict(headers or {}),
                    times=times,
                )
            )

    def _take_failure(self, method: str, path: str) -> InjectedFailure | None:
        with self.lock:
            for failure in self._failures:
                if failure.method in ("*", method) and re.search(failure.path_regex, path):
                    failure.times -= 1
                    if failure.times <= 0:
                        self._failures.remove(failure)
                    return failure
            return None

    @property
    def request_count(self) -> int:
        with self.lock:
            return len(self._requests)

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request answered so far, oldest first."""
        with self.lock:
            return list(self._requests)

    # WSGI

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        path = environ.get("PATH_INFO", "")
        query = environ.get("QUERY_STRING", "")
        logged_path = f"{path}?{query}" if query else path

        def recording_start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], object]:
            with self.lock:
                self._requests.append(RequestRecord(method, logged_path, int(status.split()[0]), time.time()))
            return start_response(status, headers, exc_info)

        failure = self._take_failure(method, path)
        if failure is not None:
            return self._injected(failure, recording_start_response)
        by_id = _REPO_BY_ID.match(path)
        if by_id is not None:
            # GitHub's Link headers name repositories by id; serve them like /repos/{owner}/{name}.
            repo = self.find_repo_by_id(int(by_id["id"]))
            if repo is not None:
                environ["PATH_INFO"] = f"{API_PREFIX}/repos/{repo.full_name}{by_id['rest'] or ''}"
        with self.lock:
            extensions = list(self._extensions)
        for extension in extensions:
            if extension.handles(environ):
                return extension(environ, recording_start_response)
        if path.startswith("/api/"):
            return self._api(environ, recording_start_response)
        return self._git(environ, recording_start_response)

    def _injected(self, failure: InjectedFailure, start_response: StartResponse) -> list[bytes]:
        body = failure.body
        if body is None:
            body = {
                "message": HTTPStatus(failure.status).phrase,
                "documentation_url": "https://docs.github.com/rest",
            }
        data = (
            body if isinstance(body, bytes) else (body.encode() if isinstance(body, str) else json.dumps(body).encode())
        )
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            **failure.headers,
            "Content-Length": str(len(data)),
        }
        start_response(f"{failure.status} {HTTPStatus(failure.status).phrase}", list(headers.items()))
        return [data]

    def _git_repository(self, full_name: str) -> tuple[Path, bool] | None:
        repo = self.find_repo(full_name)
        return (repo.git.path, repo.private) if repo is not None else None


def _substitute(data: str | bytes | None, substitutions: Mapping[str, str]) -> str | bytes | None:
    """`data` with each placeholder replaced, when it is text; binary files stay as they are."""
    if data is None:
        return None
    if isinstance(data, bytes):
        try:
            text = data.decode()
        except UnicodeDecodeError:
            return data
    else:
        text = data
    for placeholder, value in substitutions.items():
        text = text.replace(placeholder, value)
    return text
