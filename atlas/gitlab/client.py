"""`VCSClient` for GitLab (gitlab.com and self-managed), on python-gitlab.

Every request goes through python-gitlab's `http_*` calls with its own retries off; retries and
rate limits are `GitLabRetry`'s (atlas.gitlab.retry). Every failure leaves as `VCSError` with
GitLab's status and message, never the token. Where GitLab is not GitHub:

- comments are merge request notes, up to `comment_limit` (1,000,000) characters: callers split
  longer bodies (`split_comment(body, client.comment_limit)`); a longer one is refused here
  before it is sent;
- a reaction is an award emoji on the note (GitHub's reaction names are translated), which needs
  the merge request: pass `number`;
- statuses go on the merge request's head pipeline when `number` is given (`pipeline_id`, and
  the source branch as `ref`), else on the commit; atlas's `pending` is GitLab's `running`;
- `approvals` are the approvers once GitLab says the approval rules are met, and none before;
- `is_mergeable` reads `detailed_merge_status`;
- GitLab cannot hide a note: `hide_comment` folds the earlier note into a collapsed
  `<details>` block titled as outdated, which is as close as GitLab allows.

Over 500 lines on purpose: it implements the whole VCS client protocol for one host, one method per
protocol method, as the GitHub client does.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, cast
from urllib.parse import quote

import requests
from gitlab import Gitlab
from gitlab.exceptions import GitlabError, GitlabHttpError
from requests.adapters import HTTPAdapter

from atlas.gitlab.hosts import DEFAULT_HOSTNAME, gitlab_base_url
from atlas.gitlab.markdown import gitlab_markdown
from atlas.gitlab.retry import GitLabRetry
from atlas.host_retry import DEFAULT_BACKOFF_BASE, DEFAULT_MAX_RATE_LIMIT_WAIT, DEFAULT_MAX_RETRIES
from atlas.models import PullRequest, Repo, VCSHost
from atlas.vcs import ChangedFile, CommitState, FileStatus, Issue, Permission, PostedComment, VCSError

log = logging.getLogger(__name__)

Json = dict[str, Any]

NOTE_LIMIT = 1_000_000
"""GitLab's limit on a note body, in characters."""
PER_PAGE = 100
"""Items per page for every list (GitLab's maximum)."""
STATUS_DESCRIPTION_MAX = 255
STATUS_CONFLICT = 409
STATUS_MAX_BACKOFF = 8.0
STATUS_RETRIES = 5
"""How often `--gitlab-status-retry-enabled` retries a status GitLab answers 409 Conflict."""
"""GitLab keeps at most 255 characters of a commit status description."""
MERGEABLE_POLLS = 3
"""How often to ask again while GitLab is still computing `detailed_merge_status`."""
COMPUTING_MERGE_STATUSES = frozenset({"checking", "unchecked", "preparing", "approvals_syncing"})
CI_MERGE_STATUSES = frozenset({"ci_must_pass", "ci_still_running"})

STATUS_STATES = {
    # GitLab refuses a status that stays `pending` while work runs; `running` is what it shows as in progress.
    CommitState.PENDING: "running",
    CommitState.SUCCESS: "success",
    CommitState.FAILURE: "failed",
    CommitState.ERROR: "failed",
}
"""atlas's commit states and GitLab's (`pending running success failed canceled skipped`)."""

AWARD_NAMES = {
    "+1": "thumbsup",
    "-1": "thumbsdown",
    "laugh": "laughing",
    "confused": "confused",
    "heart": "heart",
    "hooray": "tada",
    "rocket": "rocket",
    "eyes": "eyes",
}
"""GitHub's reaction names and GitLab's award emoji for them."""

ACCESS_LEVELS = (
    (50, Permission.ADMIN),  # Owner
    (40, Permission.MAINTAIN),  # Maintainer
    (30, Permission.WRITE),  # Developer
    (20, Permission.TRIAGE),  # Reporter: issues and merge requests, no pushes
    (1, Permission.READ),  # Guest, Planner, Minimal access
)

NODE_PREFIX = "gitlab-note"
OUTDATED_SUMMARY = "Outdated: superseded by a later atlas run"
_FOLDED_OPENING = "<details><summary>"


def note_node_id(project_id: int, mr_iid: int, note_id: int) -> str:
    """What `PostedComment.node_id` holds for a GitLab note: everything `hide_comment` needs."""
    return f"{NODE_PREFIX}:{project_id}:{mr_iid}:{note_id}"


def parse_note_node_id(node_id: str) -> tuple[int, int, int]:
    """(project id, merge request iid, note id) from `note_node_id`'s text."""
    prefix, _, rest = node_id.partition(":")
    parts = rest.split(":")
    if prefix != NODE_PREFIX or len(parts) != 3 or not all(part.isdigit() for part in parts):
        raise VCSError(f"{node_id!r} does not name a GitLab merge request note")
    project_id, iid, note_id = (int(part) for part in parts)
    return project_id, iid, note_id


def folded_note(body: str, summary: str = OUTDATED_SUMMARY, limit: int = NOTE_LIMIT) -> str:
    """The note's body collapsed under `summary`, cut to fit GitLab's limit."""
    opening = f"{_FOLDED_OPENING}{summary}</summary>\n\n"
    closing = "\n\n</details>"
    room = limit - len(opening) - len(closing)
    inner = body if len(body) <= room else body[: room - 1] + "…"
    return opening + inner + closing


def _project(repo: Repo | str) -> str:
    """The URL-encoded project path GitLab takes as `:id` (`group%2Fsubgroup%2Fproject`)."""
    return quote(repo.full_name if isinstance(repo, Repo) else repo, safe="")


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _describe(action: str, error: GitlabError) -> str:
    """`GitLab <action> failed: <status> <message>` from GitLab's `{"message": …}` body."""
    message = error.error_message
    if isinstance(message, bytes):
        message = message.decode(errors="replace")
    if isinstance(message, dict):
        message = "; ".join(
            f"{key} {', '.join(map(str, v)) if isinstance(v, list) else v}" for key, v in message.items()
        )
    status = error.response_code or ""
    text = str(message or "")
    if isinstance(status, int) and text.startswith(f"{status} "):
        text = text[len(str(status)) + 1 :]
    return f"GitLab {action} failed: {status} {text}".replace("  ", " ").rstrip()


def file_status(diff: Mapping[str, Any]) -> FileStatus:
    if diff.get("new_file"):
        return FileStatus.ADDED
    if diff.get("deleted_file"):
        return FileStatus.REMOVED
    if diff.get("renamed_file"):
        return FileStatus.RENAMED
    return FileStatus.MODIFIED


def repo_from_project(project: Mapping[str, Any]) -> Repo:
    return Repo(
        full_name=str(project["path_with_namespace"]),
        clone_url=str(project["http_url_to_repo"]),
        html_url=str(project["web_url"]),
        default_branch=str(project.get("default_branch") or "main"),
        private=project.get("visibility") != "public",
        vcs=VCSHost.GITLAB,
    )


def pull_from_api(mr: Mapping[str, Any], target: Repo, source_clone_url: str) -> PullRequest:
    """The merge request as atlas models it, from GitLab's answer and its projects."""
    merged = mr.get("state") == "merged"
    merger = mr.get("merge_user") or mr.get("merged_by") or {}
    diff_refs = mr.get("diff_refs") or {}
    return PullRequest(
        repo=target,
        number=int(mr["iid"]),
        head_sha=str(mr.get("sha") or ""),
        head_ref=str(mr["source_branch"]),
        base_ref=str(mr["target_branch"]),
        base_sha=str(diff_refs.get("start_sha") or ""),
        author=str((mr.get("author") or {}).get("username") or ""),
        html_url=str(mr.get("web_url") or ""),
        title=str(mr.get("title") or ""),
        is_draft=bool(mr.get("draft") or mr.get("work_in_progress")),
        is_fork=mr.get("source_project_id") != mr.get("target_project_id"),
        head_clone_url=source_clone_url,
        is_open=mr.get("state") == "opened",
        merged=merged,
        merge_commit_sha=str(mr.get("merge_commit_sha") or mr.get("squash_commit_sha") or "") if merged else "",
        merged_by=str(merger.get("username") or "") if merged else "",
        labels=tuple(str(label) for label in mr.get("labels") or () if isinstance(label, str)),
    )


def issue_from_api(issue: Mapping[str, Any]) -> Issue:
    return Issue(
        number=int(issue["iid"]),
        title=str(issue["title"]),
        body=str(issue.get("description") or ""),
        state="open" if issue.get("state") == "opened" else "closed",
        html_url=str(issue.get("web_url") or ""),
        labels=tuple(str(label) for label in issue.get("labels") or ()),
    )


class GitLabClient:
    """atlas's `VCSClient` for the GitLab at `hostname` (the API at `<base>/api/v4`)."""

    comment_limit = NOTE_LIMIT
    """The longest comment this host takes; split longer bodies to it."""

    def __init__(
        self,
        token: str,
        hostname: str = DEFAULT_HOSTNAME,
        *,
        max_retries: int = DEFAULT_MAX_RETRIES,
        timeout: float = 30,
        backoff_base: float = DEFAULT_BACKOFF_BASE,
        max_rate_limit_wait: float = DEFAULT_MAX_RATE_LIMIT_WAIT,
        mergeable_poll_interval: float = 1.0,
        remove_source_branch: bool | None = None,
        status_retries: int = 0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._token = token
        self._status_retries = status_retries
        self._status_backoff = backoff_base
        self._sleep = sleep
        self.base_url = gitlab_base_url(hostname)
        self.api_url = f"{self.base_url}/api/v4"
        self._mergeable_poll_interval = mergeable_poll_interval
        self._remove_source_branch = remove_source_branch
        self._username: str | None = None
        session = requests.Session()
        adapter = HTTPAdapter(
            max_retries=GitLabRetry.policy(
                max_retries, backoff_base=backoff_base, max_rate_limit_wait=max_rate_limit_wait
            )
        )
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        self._gitlab = Gitlab(
            self.base_url,
            private_token=token or None,
            timeout=max(math.ceil(timeout), 1),
            per_page=PER_PAGE,
            # Retries are GitLabRetry's: python-gitlab's would retry writes on a 500.
            retry_transient_errors=False,
            session=session,
        )

    def __repr__(self) -> str:
        return f"GitLabClient(api_url={self.api_url!r})"

    def close(self) -> None:
        self._gitlab.session.close()

    # Plumbing

    @contextmanager
    def _calling(self, action: str) -> Iterator[None]:
        """Turn whatever python-gitlab or requests raise into a `VCSError` safe to show users."""
        try:
            yield
        except GitlabError as error:
            raise VCSError(self._scrub(_describe(action, error))) from error
        except requests.RequestException as error:
            raise VCSError(self._scrub(f"GitLab {action} failed: {type(error).__name__}: {error}")) from error

    def _scrub(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    def _get(self, path: str, **params: Any) -> Json:
        return cast(Json, self._gitlab.http_get(path, query_data=params, obey_rate_limit=False, max_retries=0))

    def _list(self, path: str, **params: Any) -> list[Json]:
        """Every item of a list, all pages (python-gitlab follows GitLab's `Link` headers)."""
        found = self._gitlab.http_list(
            path, query_data=params, get_all=True, per_page=PER_PAGE, obey_rate_limit=False, max_retries=0
        )
        return cast(list[Json], found)

    def _post(self, path: str, data: Mapping[str, Any]) -> Json:
        return cast(Json, self._gitlab.http_post(path, post_data=dict(data), obey_rate_limit=False, max_retries=0))

    def _put(self, path: str, data: Mapping[str, Any]) -> Json:
        return cast(Json, self._gitlab.http_put(path, post_data=dict(data), obey_rate_limit=False, max_retries=0))

    def _mr_path(self, repo: Repo, number: int) -> str:
        return f"/projects/{_project(repo)}/merge_requests/{number}"

    # Identity

    @property
    def username(self) -> str:
        """The token's user (`GET /user`): the bot whose notes atlas ignores."""
        if self._username is None:
            with self._calling("reading the token's user"):
                self._username = str(self._get("/user")["username"])
        return self._username

    # Reading

    def get_repo(self, full_name: str) -> Repo:
        with self._calling(f"reading project {full_name}"):
            return repo_from_project(self._get(f"/projects/{_project(full_name)}"))

    def get_pull(self, repo: Repo, number: int) -> PullRequest:
        with self._calling(f"reading merge request {repo.full_name}!{number}"):
            mr = self._get(self._mr_path(repo, number))
            target_project = self._get(f"/projects/{mr['target_project_id']}")
            source_clone_url = str(target_project["http_url_to_repo"])
            if mr.get("source_project_id") != mr.get("target_project_id"):
                try:
                    source_clone_url = str(self._get(f"/projects/{mr['source_project_id']}")["http_url_to_repo"])
                except GitlabHttpError as error:
                    # A deleted or unreadable fork: still a fork, with nothing to clone.
                    if error.response_code != 404:
                        raise
                    source_clone_url = ""
            return pull_from_api(mr, repo_from_project(target_project), source_clone_url)

    def resolve_ref(self, repo: Repo, ref: str) -> str:
        with self._calling(f"resolving {ref} in {repo.full_name}"):
            return str(self._get(f"/projects/{_project(repo)}/repository/commits/{quote(ref, safe='')}")["id"])

    def branch_head(self, repo: Repo, branch: str) -> str:
        with self._calling(f"reading branch {branch} of {repo.full_name}"):
            found = self._get(f"/projects/{_project(repo)}/repository/branches/{quote(branch, safe='')}")
            return str(found["commit"]["id"])

    def changed_files(self, pull: PullRequest) -> list[ChangedFile]:
        """Every file the merge request changes: all pages of the diffs API."""
        with self._calling(f"listing the diffs of {pull.repo.full_name}!{pull.number}"):
            return [
                ChangedFile(
                    filename=str(diff["new_path"]),
                    status=file_status(diff),
                    previous_filename=str(diff["old_path"]) if diff.get("renamed_file") else None,
                )
                for diff in self._list(f"{self._mr_path(pull.repo, pull.number)}/diffs")
            ]

    def list_comments(self, repo: Repo, number: int) -> list[tuple[PostedComment, str, str]]:
        """The merge request's notes, oldest first, without GitLab's system notes (pushes, labels)."""
        with self._calling(f"listing notes of {repo.full_name}!{number}"):
            notes = self._list(f"{self._mr_path(repo, number)}/notes", sort="asc", order_by="created_at")
            return [
                (self._posted(repo, number, note), str(note["author"]["username"]), str(note["body"]))
                for note in notes
                if not note.get("system")
            ]

    def _posted(self, repo: Repo, number: int, note: Mapping[str, Any]) -> PostedComment:
        return PostedComment(
            id=int(note["id"]),
            node_id=note_node_id(int(note["project_id"]), number, int(note["id"])),
            html_url=f"{self.base_url}/{repo.full_name}/-/merge_requests/{number}#note_{note['id']}",
        )

    def find_issue(self, repo: Repo, title: str, label: str) -> Issue | None:
        with self._calling(f"listing issues of {repo.full_name}"):
            for issue in self._list(
                f"/projects/{_project(repo)}/issues", state="opened", labels=label, search=title, **{"in": "title"}
            ):
                if issue.get("title") == title and label in (issue.get("labels") or ()):
                    return issue_from_api(issue)
            return None

    def _user_id(self, user: str) -> int | None:
        found = self._list("/users", username=user)
        return int(found[0]["id"]) if found else None

    def permission(self, repo: Repo, user: str) -> Permission:
        """The user's role on the project (inherited from its groups); `none` for non-members."""
        with self._calling(f"reading the role of {user} on {repo.full_name}"):
            user_id = self._user_id(user)
            if user_id is None:
                return Permission.NONE
            try:
                member = self._get(f"/projects/{_project(repo)}/members/all/{user_id}")
            except GitlabHttpError as error:
                if error.response_code == 404:
                    return Permission.NONE
                raise
        level = int(member.get("access_level") or 0)
        return next((permission for floor, permission in ACCESS_LEVELS if level >= floor), Permission.NONE)

    def is_team_member(self, org: str, team_slug: str, user: str) -> bool:
        """Whether the user is an active member of the group `org/team_slug` (False if there is no such group)."""
        group = quote(f"{org}/{team_slug}" if team_slug else org, safe="")
        with self._calling(f"reading membership of {user} in {org}/{team_slug}"):
            user_id = self._user_id(user)
            if user_id is None:
                return False
            try:
                member = self._get(f"/groups/{group}/members/all/{user_id}")
            except GitlabHttpError as error:
                if error.response_code == 404:
                    return False
                raise
            return bool(member.get("membership_state", "active") == "active" and member.get("state") == "active")

    def approvals(self, repo: Repo, number: int) -> list[str]:
        """Who approved, once GitLab says the approval rules are met (none while approvals are left).

        With no approval rules (GitLab Free) every approval counts; with rules, an approval that
        leaves a rule unmet does not make the merge request approved.
        """
        with self._calling(f"reading approvals of {repo.full_name}!{number}"):
            found = self._get(f"{self._mr_path(repo, number)}/approvals")
        if int(found.get("approvals_left") or 0) > 0 or found.get("approved") is False:
            return []
        return sorted(str(item["user"]["username"]) for item in found.get("approved_by") or ())

    def is_mergeable(self, repo: Repo, number: int, ignore_contexts: tuple[str, ...] = ()) -> bool:
        """GitLab's `detailed_merge_status` says it can merge, not counting statuses named in ignore_contexts.

        `mergeable` is mergeable. A merge request held only by its pipeline (`ci_must_pass`,
        `ci_still_running`) counts as mergeable when every job of its head pipeline that has not
        passed is one of `ignore_contexts` (atlas's own apply status, running while it applies).
        Everything else (approvals, conflicts, drafts, threads, rebase) blocks.
        """
        with self._calling(f"reading mergeability of {repo.full_name}!{number}"):
            mr = self._get(self._mr_path(repo, number))
            for _ in range(MERGEABLE_POLLS):
                if mr.get("detailed_merge_status") not in COMPUTING_MERGE_STATUSES:
                    break
                time.sleep(self._mergeable_poll_interval)
                mr = self._get(self._mr_path(repo, number))
            status = mr.get("detailed_merge_status")
            if status == "mergeable":
                return True
            if status not in CI_MERGE_STATUSES:
                return False
            pipeline = mr.get("head_pipeline") or {}
            params: dict[str, Any] = {"pipeline_id": pipeline["id"]} if pipeline.get("id") else {}
            statuses = self._list(f"/projects/{_project(repo)}/repository/commits/{mr['sha']}/statuses", **params)
            failing = {str(s["name"]) for s in statuses if s.get("status") not in ("success", "skipped")}
            return bool(failing) and failing <= set(ignore_contexts)

    # Writing

    def post_comment(self, repo: Repo, number: int, body: str) -> PostedComment:
        body = gitlab_markdown(body)
        if len(body) > NOTE_LIMIT:
            raise VCSError(
                f"a GitLab note holds at most {NOTE_LIMIT:,} characters; this one has {len(body):,} (split it first)"
            )
        with self._calling(f"commenting on {repo.full_name}!{number}"):
            note = self._post(f"{self._mr_path(repo, number)}/notes", {"body": body})
            return self._posted(repo, number, note)

    def react(self, repo: Repo, comment_id: int, reaction: str, number: int | None = None) -> None:
        """Award the emoji for `reaction` to note `comment_id` of merge request `number` (once)."""
        if number is None:
            raise VCSError(
                "GitLab awards emoji to a note through its merge request: the merge request number is needed"
            )
        name = AWARD_NAMES.get(reaction, reaction)
        with self._calling(f"awarding :{name}: to note {comment_id} on {repo.full_name}!{number}"):
            try:
                self._post(f"{self._mr_path(repo, number)}/notes/{comment_id}/award_emoji", {"name": name})
            except GitlabHttpError as error:
                # GitLab answers 404 "has already been taken" to a second award of the same emoji.
                if error.response_code == 404 and "already been taken" in str(error.error_message):
                    return
                raise

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
        """A commit status named `context`, on the merge request's head pipeline when `number` is given."""
        wanted = STATUS_STATES[CommitState(state)]
        body: dict[str, Any] = {
            "state": wanted,
            "name": context,
            "description": _shorten(description, STATUS_DESCRIPTION_MAX),
        }
        if target_url:
            body["target_url"] = target_url
        with self._calling(f"setting status {context} on {repo.full_name}@{sha[:12]}"):
            if number is not None:
                mr = self._get(self._mr_path(repo, number))
                pipeline = mr.get("head_pipeline") or {}
                if pipeline.get("id") and pipeline.get("sha") == sha:
                    body["pipeline_id"] = pipeline["id"]
                if mr.get("sha") == sha:
                    body["ref"] = mr["source_branch"]
            try:
                self._post_status(repo, sha, body)
            except GitlabHttpError as error:
                if not (error.response_code == 400 and "Cannot transition status" in str(error.error_message)):
                    raise
                # GitLab refuses running -> running; fine when the status already says so.
                params = {"name": context, **({"pipeline_id": body["pipeline_id"]} if "pipeline_id" in body else {})}
                latest = self._list(f"/projects/{_project(repo)}/repository/commits/{sha}/statuses", **params)
                if not latest or latest[-1].get("status") != wanted:
                    raise

    def _post_status(self, repo: Repo, sha: str, body: dict[str, Any]) -> None:
        """Post a commit status; with `status_retries` (`--gitlab-status-retry-enabled`), a 409 Conflict,
        GitLab's answer while another write to the same pipeline is in flight, is retried with backoff."""
        for attempt in range(self._status_retries + 1):
            try:
                self._post(f"/projects/{_project(repo)}/statuses/{sha}", body)
                return
            except GitlabHttpError as error:
                if error.response_code != STATUS_CONFLICT or attempt == self._status_retries:
                    raise
                wait = min(self._status_backoff * 2**attempt, STATUS_MAX_BACKOFF)
                log.info("GitLab answered 409 to status %s on %s@%s; retrying in %.1f s (%d/%d)", body["name"],
                         repo.full_name, sha[:12], wait, attempt + 1, self._status_retries)
                self._sleep(wait)

    def merge(
        self, repo: Repo, number: int, sha: str, method: str | None = None, *, auto_merge: bool = False
    ) -> None:
        """Merge exactly `sha` (GitLab answers 409 if the head moved); `squash` squashes first.

        GitLab merges with the project's merge method (merge commit, semi-linear, fast-forward);
        `rebase` is not a merge option of its API and is refused. With `auto_merge` GitLab may
        instead set the merge request to merge when its pipeline succeeds.
        """
        method = method or "merge"
        if method not in ("merge", "squash"):
            raise VCSError(
                f"GitLab cannot merge with method {method!r}: use merge or squash "
                "(the project's merge method decides merge commit, semi-linear or fast-forward)"
            )
        data: dict[str, Any] = {"sha": sha, "squash": method == "squash"}
        if self._remove_source_branch is not None:
            data["should_remove_source_branch"] = self._remove_source_branch
        if auto_merge:
            data["merge_when_pipeline_succeeds"] = True
        with self._calling(f"merging {repo.full_name}!{number}"):
            result = self._put(f"{self._mr_path(repo, number)}/merge", data)
        if result.get("state") == "merged" or (auto_merge and result.get("merge_when_pipeline_succeeds")):
            return
        raise VCSError(f"GitLab did not merge {repo.full_name}!{number}: {result.get('detailed_merge_status')}")

    def hide_comment(self, node_id: str, classifier: str = "OUTDATED", *, repo: Repo | None = None) -> None:
        """Fold an earlier note into a collapsed block titled outdated (GitLab cannot minimize notes)."""
        project_id, iid, note_id = parse_note_node_id(node_id)
        path = f"/projects/{project_id}/merge_requests/{iid}/notes/{note_id}"
        with self._calling(f"folding note {note_id} of !{iid}"):
            body = str(self._get(path)["body"])
            if body.startswith(_FOLDED_OPENING):
                return
            summary = OUTDATED_SUMMARY if classifier.upper() == "OUTDATED" else f"Hidden ({classifier.lower()})"
            self._put(path, {"body": folded_note(body, summary)})

    def delete_branch(self, repo: Repo, branch: str) -> None:
        with self._calling(f"deleting branch {branch} of {repo.full_name}"):
            self._gitlab.http_delete(
                f"/projects/{_project(repo)}/repository/branches/{quote(branch, safe='')}",
                obey_rate_limit=False, max_retries=0,
            )

    def dismiss_approvals(self, repo: Repo, number: int, message: str) -> list[str]:
        """Reset every approval of the merge request (GitLab allows it to bot users: project or group
        access tokens); the usernames whose approval was reset. GitLab takes no message."""
        with self._calling(f"resetting approvals of {repo.full_name}!{number}"):
            found = self._get(f"{self._mr_path(repo, number)}/approvals")
            approvers = sorted(str(item["user"]["username"]) for item in found.get("approved_by") or ())
            if approvers:
                self._put(f"{self._mr_path(repo, number)}/reset_approvals", {})
            return approvers

    def create_issue(self, repo: Repo, title: str, body: str, labels: Sequence[str] = ()) -> Issue:
        with self._calling(f"opening an issue in {repo.full_name}"):
            data = {"title": title, "description": gitlab_markdown(body), "labels": ",".join(labels)}
            return issue_from_api(self._post(f"/projects/{_project(repo)}/issues", data))

    def update_issue(self, repo: Repo, number: int, body: str) -> None:
        with self._calling(f"updating issue {repo.full_name}#{number}"):
            self._put(f"/projects/{_project(repo)}/issues/{number}", {"description": gitlab_markdown(body)})

    def comment_on_issue(self, repo: Repo, number: int, body: str) -> None:
        body = gitlab_markdown(body)
        if len(body) > NOTE_LIMIT:
            raise VCSError(f"a GitLab note holds at most {NOTE_LIMIT:,} characters; this one has {len(body):,}")
        with self._calling(f"commenting on issue {repo.full_name}#{number}"):
            self._post(f"/projects/{_project(repo)}/issues/{number}/notes", {"body": body})

    def close_issue(self, repo: Repo, number: int) -> None:
        with self._calling(f"closing issue {repo.full_name}#{number}"):
            self._put(f"/projects/{_project(repo)}/issues/{number}", {"state_event": "close"})
