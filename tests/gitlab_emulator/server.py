"""The GitLab emulator: GitLab's REST API v4 and git over HTTP on a local port, for end-to-end tests.

Tests build the world with plain Python methods (`create_project`, `open_merge_request`, `push`,
`approve`, `add_member`, `fail_next` …), point python-gitlab (or atlas) at `base_url` with
`token`, and inspect what was done through `notes`, `statuses`, `issues` and `requests`. Every
method is safe to call while the server answers requests on its own threads.
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from tests.emulator.git_http import GitAccess, GitHttpBackend
from tests.emulator.gitrepo import Author, BareRepo, Changes, DiffEntry
from tests.gitlab_emulator.api import create_api_app
from tests.gitlab_emulator.responses import ResponseShapes
from tests.gitlab_emulator.state import (
    ACCESS_LEVELS,
    ApprovalRule,
    AwardEmoji,
    CommitStatus,
    Group,
    InjectedFailure,
    Issue,
    MergeRequest,
    Note,
    Pipeline,
    Project,
    Refused,
    RequestRecord,
    User,
    now,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from _typeshed.wsgi import StartResponse, WSGIEnvironment

API_PREFIX = "/api/v4"
STATUS_STATES = ("pending", "running", "success", "failed", "canceled", "skipped")
FINISHED_STATES = ("success", "failed", "canceled", "skipped")

GIT_PATH = re.compile(r"^/(?P<owner>[^.][^/]*(?:/[^/]+)*?)/(?P<name>[^/]+?)\.git(?P<rest>/.*)?$")
"""`/{group}/{subgroup…}/{project}.git/...`: GitLab's clone paths, nested groups included."""
GIT_USERS = ("oauth2",)
"""The basic-auth user GitLab documents for cloning with an OAuth or personal access token."""

_PROJECT_SEGMENT = re.compile(rf"^{API_PREFIX}/(?P<kind>projects|groups)/(?P<id>[^/?]+)(?P<rest>/[^?]*)?")
_UNAUTHORIZED_GIT = (
    b"HTTP Basic: Access denied. If a password was provided for Git authentication, the password was "
    b"incorrect or you're required to use a token instead of a password.\n"
)


class EmulatorError(RuntimeError):
    """A test asked the emulator for something that does not exist or cannot be done."""


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class GitLabEmulator:
    """A GitLab (REST API v4 + git smart HTTP) served from `root` on a free port of 127.0.0.1."""

    def __init__(self, root: Path, *, bot_username: str = "atlas-bot") -> None:
        self.root = root
        self.repos_root = root / "repos"
        self.repos_root.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self._ids = {
            kind: itertools.count(start)
            for kind, start in {
                "user": 101,
                "group": 11,
                "project": 278_964,
                "mr": 155_016_530,
                "note": 1_244_000,
                "award": 2_000,
                "status": 93_000,
                "pipeline": 538_317_940,
                "issue": 84_000,
                "rule": 1,
            }.items()
        }
        self._users: dict[str, User] = {}
        self._groups: dict[str, Group] = {}
        self._projects: dict[str, Project] = {}
        self._tokens: dict[str, User] = {}
        self._failures: list[InjectedFailure] = []
        self._requests: list[RequestRecord] = []
        self._diff_cache: dict[tuple[str, str, str], list[DiffEntry]] = {}
        self.bot = self.add_user(bot_username, name="atlas", bot=True)
        self.token = "glpat-" + secrets.token_urlsafe(15)
        self._tokens[self.token] = self.bot
        self.shapes = ResponseShapes(self)
        self._api = create_api_app(self)
        self._git = GitHttpBackend(
            self.repos_root,
            GitAccess(
                login_for_token=lambda token: user.username if (user := self.user_for_token(token)) else None,
                repository=self._git_repository,
                after_push=self._sync_merge_requests,
            ),
            path=GIT_PATH,
            users=GIT_USERS,
            realm="GitLab",
            unauthorized_body=_UNAUTHORIZED_GIT,
        )
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # Lifecycle

    def start(self) -> GitLabEmulator:
        self._server = make_server("127.0.0.1", 0, self, threaded=True, request_handler=_QuietHandler)
        self.port = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="gitlab-emulator", daemon=True
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

    def __enter__(self) -> GitLabEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """What `--gitlab-hostname` names for this GitLab: scheme, host and port."""
        if not self.port:
            raise EmulatorError("the emulator is not started: call start() first")
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}{API_PREFIX}"

    def next_id(self, kind: str) -> int:
        with self.lock:
            return next(self._ids[kind])

    # Users, tokens, groups

    def add_user(self, username: str, *, name: str | None = None, bot: bool = False) -> User:
        with self.lock:
            key = username.lower()
            if key not in self._users:
                self._users[key] = User(id=next(self._ids["user"]), username=username, name=name or username, bot=bot)
            return self._users[key]

    def user(self, username: str) -> User:
        return self.add_user(username)

    def find_user(self, username: str) -> User | None:
        with self.lock:
            return self._users.get(username.lower())

    def find_user_by_id(self, user_id: int) -> User | None:
        with self.lock:
            return next((u for u in self._users.values() if u.id == user_id), None)

    def add_token(self, token: str, username: str) -> None:
        """Accept `token` as `username`'s personal access token from now on."""
        with self.lock:
            self._tokens[token] = self.user(username)

    def revoke_token(self, token: str) -> None:
        with self.lock:
            self._tokens.pop(token, None)

    def user_for_token(self, token: str) -> User | None:
        with self.lock:
            return self._tokens.get(token)

    def group(self, full_path: str) -> Group:
        """The group at `full_path` (`a/b/c`), made with its parents when new."""
        with self.lock:
            key = full_path.lower()
            if key not in self._groups:
                parent_path, _, name = full_path.rpartition("/")
                parent = self.group(parent_path) if parent_path else None
                self._groups[key] = Group(id=next(self._ids["group"]), full_path=full_path, name=name, parent=parent)
            return self._groups[key]

    def find_group(self, ref: str) -> Group | None:
        with self.lock:
            if ref.isdigit():
                return next((g for g in self._groups.values() if g.id == int(ref)), None)
            return self._groups.get(ref.lower())

    def add_member(self, path: str, username: str, role: str) -> None:
        """Give `username` a role (guest … owner) on the project or group at `path`."""
        if role not in ACCESS_LEVELS:
            raise EmulatorError(f"role must be one of {tuple(ACCESS_LEVELS)}, not {role!r}")
        with self.lock:
            user = self.user(username)
            target = self.find_project(path) or self.group(path)
            target.members[user.id] = ACCESS_LEVELS[role]

    def access_level(self, target: Project | Group, user: User) -> int | None:
        """The user's access level there, inherited from parent groups as GitLab does (highest wins)."""
        with self.lock:
            levels: list[int] = []
            node: Project | Group | None = target
            while node is not None:
                if user.id in node.members:
                    levels.append(node.members[user.id])
                node = node.namespace if isinstance(node, Project) else node.parent
            return max(levels) if levels else None

    # Projects

    def create_project(
        self,
        full_path: str,
        files: Mapping[str, str | bytes] | None = None,
        *,
        default_branch: str = "main",
        visibility: str = "private",
        source_dir: Path | None = None,
    ) -> Project:
        """A project at `group[/subgroup…]/name` whose first commit on the default branch holds `files`."""
        group_path, sep, name = full_path.rpartition("/")
        if not sep or not group_path or not name:
            raise EmulatorError(f"project paths are group[/subgroup…]/name, not {full_path!r}")
        contents: dict[str, str | bytes | None] = {}
        if source_dir is not None:
            for item in sorted(source_dir.rglob("*")):
                if item.is_file() and ".git" not in item.relative_to(source_dir).parts:
                    contents[item.relative_to(source_dir).as_posix()] = item.read_bytes()
        contents.update(files or {})
        with self.lock:
            if full_path.lower() in self._projects:
                raise EmulatorError(f"project {full_path} already exists")
            project = self._new_project(full_path, default_branch, visibility)
            # atlas's token belongs to a member that can comment, set statuses and merge.
            project.members[self.bot.id] = ACCESS_LEVELS["maintainer"]
            project.git.commit(
                f"refs/heads/{default_branch}",
                contents,
                parent=None,
                message="Initial commit",
                author=_author(self.user(group_path.split("/")[0])),
            )
            return project

    def _new_project(
        self, full_path: str, default_branch: str, visibility: str, parent: Project | None = None
    ) -> Project:
        group_path, _, name = full_path.rpartition("/")
        git_path = self.repos_root / group_path / f"{name}.git"
        git = parent.git.clone_to(git_path) if parent is not None else BareRepo(git_path)
        if parent is None:
            git.init(default_branch)
        project = Project(
            id=next(self._ids["project"]),
            full_path=full_path,
            namespace=self.group(group_path),
            git=git,
            default_branch=default_branch,
            visibility=visibility,
            forked_from=parent,
        )
        self._projects[full_path.lower()] = project
        return project

    def project(self, ref: str | int) -> Project:
        found = self.find_project(str(ref))
        if found is None:
            raise EmulatorError(f"no project {ref}")
        return found

    def find_project(self, ref: str) -> Project | None:
        with self.lock:
            if ref.isdigit():
                return next((p for p in self._projects.values() if p.id == int(ref)), None)
            return self._projects.get(ref.lower())

    def add_approval_rule(self, path: str, name: str, approvals_required: int, eligible: Iterable[str] = ()) -> None:
        """A project approval rule: `approvals_required` approvals from `eligible` (anyone but the author if empty)."""
        with self.lock:
            project = self.project(path)
            project.approval_rules.append(
                ApprovalRule(
                    id=next(self._ids["rule"]),
                    name=name,
                    approvals_required=approvals_required,
                    eligible=tuple(eligible),
                )
            )

    def require_pipeline_success(self, path: str, required: bool = True) -> None:
        """The project setting "Pipelines must succeed"."""
        with self.lock:
            self.project(path).only_allow_merge_if_pipeline_succeeds = required

    def branch_sha(self, path: str, branch: str) -> str | None:
        return self.project(path).git.resolve(f"refs/heads/{branch}")

    # Merge requests

    def open_merge_request(
        self,
        path: str,
        source_branch: str,
        changes: Changes,
        *,
        title: str = "Update infrastructure",
        author: str = "alice",
        draft: bool = False,
        from_fork: bool = False,
        target_branch: str | None = None,
        description: str = "",
    ) -> MergeRequest:
        """A new merge request from `source_branch` holding one commit with `changes` on the target branch."""
        with self.lock:
            project = self.project(path)
            target = target_branch or project.default_branch
            base_sha = project.git.resolve(f"refs/heads/{target}")
            if base_sha is None:
                raise EmulatorError(f"{path} has no branch {target}")
            user = self.user(author)
            source = project
            if from_fork:
                fork_path = f"{author}/{project.path}"
                source = self.find_project(fork_path) or self._new_project(
                    fork_path, project.default_branch, project.visibility, parent=project
                )
                source.members[user.id] = ACCESS_LEVELS["owner"]
            iid = project.next_mr_iid
            project.next_mr_iid += 1
            sha = project.git.commit(
                f"refs/merge-requests/{iid}/head",
                changes,
                parent=base_sha,
                message=title if not draft else f"Draft: {title}",
                author=_author(user),
            )
            self._publish(project, source, source_branch, iid, sha)
            mr = MergeRequest(
                id=next(self._ids["mr"]),
                iid=iid,
                project=project,
                source_project=source,
                source_branch=source_branch,
                target_branch=target,
                title=title,
                description=description,
                author=user,
                sha=sha,
                base_sha=base_sha,
                draft=draft,
            )
            project.merge_requests[iid] = mr
            return mr

    def _publish(self, project: Project, source: Project, branch: str, iid: int, sha: str) -> None:
        """Point the source branch (in the fork, for forks) and refs/merge-requests/IID/head at `sha`."""
        project.git.update_ref(f"refs/merge-requests/{iid}/head", sha)
        if source is project:
            project.git.update_ref(f"refs/heads/{branch}", sha)
        else:
            source.git.git(
                "fetch", "--quiet", str(project.git.path), f"+refs/merge-requests/{iid}/head:refs/heads/{branch}"
            )

    def merge_request(self, path: str, iid: int) -> MergeRequest:
        with self.lock:
            found = self.project(path).merge_requests.get(iid)
            if found is None:
                raise EmulatorError(f"no merge request {path}!{iid}")
            return found

    def push(self, path: str, iid: int, changes: Changes, message: str = "Update") -> str:
        """A new commit with `changes` on the merge request's source branch; the new head sha."""
        with self.lock:
            mr = self.merge_request(path, iid)
            sha = mr.project.git.commit(mr.head_ref, changes, parent=mr.sha, message=message, author=_author(mr.author))
            self._publish(mr.project, mr.source_project, mr.source_branch, iid, sha)
            mr.previous_sha, mr.sha = mr.sha, sha
            mr.updated_at = now()
            return sha

    def push_to_branch(self, path: str, branch: str, changes: Changes, message: str = "Update") -> str:
        """A commit with `changes` on `branch` (from the default branch if new); its sha."""
        with self.lock:
            project = self.project(path)
            parent = project.git.resolve(f"refs/heads/{branch}") or project.git.resolve(
                f"refs/heads/{project.default_branch}"
            )
            sha = project.git.commit(
                f"refs/heads/{branch}",
                changes,
                parent=parent,
                message=message,
                author=_author(self.user(project.namespace.full_path.split("/")[0])),
            )
            self._sync_merge_requests(path)
            return sha

    def _sync_merge_requests(self, full_path: str) -> None:
        """Follow pushes made over git: a moved source branch moves its open merge requests."""
        with self.lock:
            pushed = self.find_project(full_path)
            if pushed is None:
                return
            for project in list(self._projects.values()):
                for mr in project.merge_requests.values():
                    if mr.state != "opened" or mr.source_project is not pushed:
                        continue
                    sha = pushed.git.resolve(f"refs/heads/{mr.source_branch}")
                    if sha and sha != mr.sha:
                        if pushed is not project:
                            project.git.git("fetch", "--quiet", str(pushed.git.path), f"+{sha}:{mr.head_ref}")
                        else:
                            project.git.update_ref(mr.head_ref, sha)
                        mr.previous_sha, mr.sha = mr.sha, sha
                        mr.updated_at = now()

    def set_draft(self, path: str, iid: int, draft: bool) -> None:
        with self.lock:
            mr = self.merge_request(path, iid)
            mr.draft = draft
            mr.updated_at = now()

    def close_merge_request(self, path: str, iid: int, by: str | None = None) -> None:
        with self.lock:
            mr = self.merge_request(path, iid)
            if mr.state == "opened":
                mr.state = "closed"
                mr.closed_by = self.user(by) if by else mr.author
                mr.closed_at = mr.updated_at = now()

    def reopen_merge_request(self, path: str, iid: int) -> None:
        with self.lock:
            mr = self.merge_request(path, iid)
            if mr.state == "merged":
                raise EmulatorError("a merged merge request cannot be reopened")
            mr.state = "opened"
            mr.closed_by = mr.closed_at = None
            mr.updated_at = now()

    def approve(self, path: str, iid: int, username: str) -> None:
        with self.lock:
            mr = self.merge_request(path, iid)
            user = self.user(username)
            if all(existing.id != user.id for existing, _ in mr.approvals):
                mr.approvals.append((user, now()))
                mr.updated_at = now()

    def unapprove(self, path: str, iid: int, username: str) -> None:
        with self.lock:
            mr = self.merge_request(path, iid)
            mr.approvals = [(u, at) for u, at in mr.approvals if u.username.lower() != username.lower()]

    def set_merge_status(self, path: str, iid: int, *statuses: str) -> None:
        """Answer these `detailed_merge_status` values on the next reads (e.g. `checking`), then compute it."""
        with self.lock:
            self.merge_request(path, iid).merge_status_override = list(statuses)

    def diffs(self, mr: MergeRequest) -> list[DiffEntry]:
        """The merge request's changed files: `git diff base...head`, as GitLab lists them."""
        with self.lock:
            # A merged merge request keeps the diff it was merged with.
            base = mr.base_sha if mr.state == "merged" else mr.base_sha_now()
            key = (mr.project.full_path, base, mr.sha)
            if key not in self._diff_cache:
                self._diff_cache[key] = mr.project.git.diff(key[1], key[2])
            return self._diff_cache[key]

    def rule_states(self, mr: MergeRequest) -> list[tuple[ApprovalRule, list[User], bool]]:
        """Each approval rule with the approvals that count for it and whether it is met."""
        with self.lock:
            states = []
            for rule in mr.project.approval_rules:
                counted = [
                    user
                    for user, _ in mr.approvals
                    if user.id != mr.author.id
                    and (not rule.eligible or user.username.lower() in {e.lower() for e in rule.eligible})
                ]
                states.append((rule, counted, len(counted) >= rule.approvals_required))
            return states

    def head_pipeline(self, mr: MergeRequest) -> Pipeline | None:
        with self.lock:
            found = [p for p in mr.project.pipelines if p.sha == mr.sha]
            return found[-1] if found else None

    def pipeline_status(self, project: Project, pipeline: Pipeline) -> str:
        """A pipeline's status from its jobs' latest statuses: failed before running before success."""
        with self.lock:
            latest: dict[str, str] = {}
            for status in project.statuses:
                if status.pipeline_id == pipeline.id:
                    latest[status.name] = status.status
            states = set(latest.values())
            for state in ("failed", "running", "pending"):
                if state in states:
                    return state
            if "canceled" in states:
                return "canceled"
            return "success" if states - {"skipped"} else ("skipped" if states else "created")

    def detailed_merge_status(self, mr: MergeRequest, *, consume: bool = True) -> str:
        """What GitLab's `detailed_merge_status` says now (see api/merge_requests.md, "Merge status")."""
        with self.lock:
            if mr.merge_status_override:
                return mr.merge_status_override.pop(0) if consume else mr.merge_status_override[0]
            if mr.state != "opened":
                return "not_open"
            if mr.draft:
                return "draft_status"
            if mr.project.git.merge_tree(mr.base_sha_now(), mr.sha) is None:
                return "conflict"
            if not all(met for _, _, met in self.rule_states(mr)):
                return "not_approved"
            if mr.project.only_allow_merge_if_pipeline_succeeds:
                pipeline = self.head_pipeline(mr)
                status = self.pipeline_status(mr.project, pipeline) if pipeline else None
                if status in ("running", "pending", "created"):
                    return "ci_still_running"
                if status not in ("success", "skipped"):
                    return "ci_must_pass"
            return "mergeable"

    def merge(self, mr: MergeRequest, by: User, options: Mapping[str, Any]) -> None:
        """Merge as `PUT …/merge` asks, or set it to merge when the pipeline succeeds."""
        with self.lock:
            if mr.state != "opened":
                raise Refused(405, "405 Method Not Allowed")
            sha = options.get("sha")
            if sha and sha != mr.sha:
                raise Refused(409, "SHA does not match HEAD of source branch")
            status = self.detailed_merge_status(mr)
            auto = _truthy(options.get("merge_when_pipeline_succeeds")) or _truthy(options.get("auto_merge"))
            if auto and status == "ci_still_running":
                mr.merge_when_pipeline_succeeds = True
                mr.merged_by = by
                mr.auto_merge_options = dict(options)
                return
            if status == "conflict":
                raise Refused(422, "Branch cannot be merged")
            if status != "mergeable":
                raise Refused(405, "405 Method Not Allowed")
            self._merge_now(mr, by, options)

    def _merge_now(self, mr: MergeRequest, by: User, options: Mapping[str, Any]) -> None:
        git = mr.project.git
        base = mr.base_sha_now()
        tree = git.merge_tree(base, mr.sha)
        if tree is None:
            raise Refused(422, "Branch cannot be merged")
        committer = _author(by)
        squash = _truthy(options.get("squash")) or mr.squash
        head = mr.sha
        if squash:
            message = options.get("squash_commit_message") or mr.title
            head = git.commit_tree(tree, [base], f"{message}\n", committer)
            mr.squash_commit_sha = head
        default_message = (
            f"Merge branch '{mr.source_branch}' into '{mr.target_branch}'\n\n{mr.title}\n\n"
            f"See merge request {mr.project.full_path}!{mr.iid}"
        )
        message = options.get("merge_commit_message") or default_message
        merged = git.commit_tree(tree, [base, head], f"{message}\n", committer)
        git.update_ref(f"refs/heads/{mr.target_branch}", merged, base)
        remove = options.get("should_remove_source_branch")
        if _truthy(remove) or (remove is None and mr.should_remove_source_branch):
            mr.source_project.git.git("update-ref", "-d", f"refs/heads/{mr.source_branch}")
        mr.state = "merged"
        mr.merge_commit_sha = merged
        mr.merged_by = by
        mr.merged_at = mr.updated_at = now()
        mr.merge_when_pipeline_succeeds = False

    def merge_merge_request(self, path: str, iid: int, by: str | None = None, **options: Any) -> str:
        """Merge as if someone pressed the button; the merge commit sha."""
        with self.lock:
            mr = self.merge_request(path, iid)
            try:
                self.merge(mr, self.user(by) if by else mr.author, options)
            except Refused as refused:
                raise EmulatorError(f"GitLab would refuse this merge: {refused.message}") from refused
            assert mr.merge_commit_sha is not None
            return mr.merge_commit_sha

    # Notes and award emoji

    def add_note(self, path: str, iid: int, body: str, author: str, *, system: bool = False) -> Note:
        """A note by `author` on the merge request, as someone typed it in GitLab."""
        with self.lock:
            return self.create_note(self.merge_request(path, iid), body, self.user(author), system=system)

    def create_note(self, mr: MergeRequest | Issue, body: str, author: User, *, system: bool = False) -> Note:
        """A note on a merge request or an issue (GitLab's comments on either)."""
        with self.lock:
            note = Note(
                id=next(self._ids["note"]),
                body=body,
                author=author,
                noteable_type="Issue" if isinstance(mr, Issue) else "MergeRequest",
                noteable_id=mr.id,
                noteable_iid=mr.iid,
                system=system,
            )
            mr.notes[note.id] = note
            return note

    def award(
        self, awards: list[AwardEmoji], name: str, user: User, awardable_id: int, awardable_type: str
    ) -> AwardEmoji:
        """Add the award; GitLab refuses a user's second award of the same emoji with 404."""
        with self.lock:
            if any(a.name == name and a.user.id == user.id for a in awards):
                raise Refused(404, "404 Award Emoji Name has already been taken")
            award = AwardEmoji(
                id=next(self._ids["award"]),
                name=name,
                user=user,
                awardable_id=awardable_id,
                awardable_type=awardable_type,
            )
            awards.append(award)
            return award

    def notes(self, path: str, iid: int) -> list[dict[str, Any]]:
        """The merge request's notes, oldest first, as tests inspect them."""
        with self.lock:
            return [n.snapshot() for n in sorted(self.merge_request(path, iid).notes.values(), key=lambda n: n.id)]

    # Statuses and pipelines

    def add_pipeline(
        self, path: str, sha: str, ref: str | None = None, source: str = "merge_request_event"
    ) -> Pipeline:
        """A pipeline on `sha`, as CI would create one for a merge request."""
        with self.lock:
            project = self.project(path)
            pipeline = Pipeline(
                id=next(self._ids["pipeline"]), iid=len(project.pipelines) + 1, sha=sha, ref=ref, source=source
            )
            project.pipelines.append(pipeline)
            return pipeline

    def create_status(self, project: Project, sha: str, options: Mapping[str, Any], author: User) -> CommitStatus:
        """`POST /projects/:id/statuses/:sha`, with GitLab's refusals."""
        with self.lock:
            state = options.get("state")
            if state not in STATUS_STATES:
                raise Refused(400, "state does not have a valid value")
            if project.git.resolve(sha) is None:
                raise Refused(404, "404 Commit Not Found")
            name = str(options.get("name") or options.get("context") or "default")
            ref = options.get("ref")
            pipeline = self._status_pipeline(project, sha, ref, options.get("pipeline_id"))
            previous = next(
                (s for s in reversed(project.statuses) if s.pipeline_id == pipeline.id and s.name == name), None
            )
            if previous is not None and previous.status == state and state in ("pending", "running"):
                event = "enqueue" if state == "pending" else "run"
                raise Refused(
                    400,
                    f"Cannot transition status via :{event} from :{state} "
                    f'(Reason(s): Status cannot transition via "{event}")',
                )
            status = CommitStatus(
                id=next(self._ids["status"]),
                sha=sha,
                ref=ref or pipeline.ref,
                name=name,
                status=str(state),
                description=options.get("description"),
                target_url=options.get("target_url"),
                author=author,
                pipeline_id=pipeline.id,
            )
            if state in FINISHED_STATES:
                status.finished_at = status.created_at
            project.statuses.append(status)
            pipeline.updated_at = now()
            self._merge_waiting(project)
            return status

    def _status_pipeline(self, project: Project, sha: str, ref: str | None, pipeline_id: Any) -> Pipeline:
        if pipeline_id is not None:
            found = next((p for p in project.pipelines if str(p.id) == str(pipeline_id)), None)
            if found is None or found.sha != sha:
                raise Refused(404, "404 Pipeline Not Found")
            return found
        candidates = [p for p in project.pipelines if p.sha == sha and (ref is None or p.ref == ref)]
        if candidates:
            return candidates[-1]
        # GitLab makes an external pipeline for statuses on a commit no pipeline ran for.
        return self.add_pipeline(project.full_path, sha, ref, source="external")

    def _merge_waiting(self, project: Project) -> None:
        """Merge requests set to merge when the pipeline succeeds merge once it has."""
        for mr in project.merge_requests.values():
            waiting = mr.merge_when_pipeline_succeeds and mr.state == "opened"
            if waiting and self.detailed_merge_status(mr) == "mergeable":
                    assert mr.merged_by is not None
                    self._merge_now(mr, mr.merged_by, mr.auto_merge_options)

    def statuses(self, path: str, sha: str) -> list[dict[str, Any]]:
        """Every status set on the commit, in the order they were set."""
        with self.lock:
            return [s.snapshot() for s in self.project(path).statuses if s.sha == sha]

    # Issues

    def create_issue(
        self, project: Project, title: str, description: str, labels: Iterable[str], author: User
    ) -> Issue:
        with self.lock:
            issue = Issue(
                id=next(self._ids["issue"]),
                iid=project.next_issue_iid,
                project=project,
                title=title,
                description=description,
                author=author,
                labels=list(dict.fromkeys(labels)),
            )
            project.next_issue_iid += 1
            project.issues[issue.iid] = issue
            return issue

    def issue_notes(self, path: str, iid: int) -> list[dict[str, Any]]:
        """The notes on issue `iid`, oldest first: body and author."""
        with self.lock:
            issue = self.project(path).issues[iid]
            notes = sorted(issue.notes.values(), key=lambda n: n.id)
            return [{"body": n.body, "author": n.author.username} for n in notes]

    def issues(self, path: str, *, state: str = "all") -> list[dict[str, Any]]:
        with self.lock:
            return [
                i.snapshot()
                for i in sorted(self.project(path).issues.values(), key=lambda i: i.iid)
                if state in ("all", i.state)
            ]

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

        `path_regex` is searched in the raw request path (project paths still URL-encoded).
        """
        with self.lock:
            self._failures.append(InjectedFailure(method.upper(), path_regex, status, body, dict(headers or {}), times))

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
    def requests(self) -> list[RequestRecord]:
        """Every request answered so far, oldest first."""
        with self.lock:
            return list(self._requests)

    # WSGI

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        raw = str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", ""))
        raw_path = raw.split("?", 1)[0]
        headers = {
            key[5:].replace("_", "-").title(): str(value) for key, value in environ.items() if key.startswith("HTTP_")
        }

        def recording_start_response(
            status: str, response_headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], object]:
            with self.lock:
                self._requests.append(RequestRecord(method, raw, int(status.split()[0]), headers))
            return start_response(status, response_headers, exc_info)

        failure = self._take_failure(method, raw_path)
        if failure is not None:
            return _injected(failure, recording_start_response)
        if raw_path.startswith(API_PREFIX + "/") or raw_path == API_PREFIX:
            environ["PATH_INFO"] = self._resolve_ids(raw_path)
            return self._api(environ, recording_start_response)
        return self._git(environ, recording_start_response)

    def _resolve_ids(self, raw_path: str) -> str:
        """The API path with a URL-encoded project or group path replaced by its numeric id.

        GitLab takes `projects/group%2Fsub%2Fproject`; WSGI decodes `%2F` into `/`, so the id is
        resolved here from the raw path. An unknown path becomes an id that names nothing.
        """
        match = _PROJECT_SEGMENT.match(raw_path)
        if match is None:
            return unquote(raw_path)
        ref = unquote(match["id"])
        found: Project | Group | None = self.find_project(ref) if match["kind"] == "projects" else self.find_group(ref)
        resolved = str(found.id) if found is not None else "0"
        return f"{API_PREFIX}/{match['kind']}/{resolved}{unquote(match['rest'] or '')}"

    def _git_repository(self, full_path: str) -> tuple[Path, bool] | None:
        project = self.find_project(full_path)
        return (project.git.path, project.visibility != "public") if project is not None else None


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("true", "1", "yes"))


def _author(user: User) -> Author:
    return Author(user.name, user.email)


def _injected(failure: InjectedFailure, start_response: StartResponse) -> list[bytes]:
    body = failure.body if failure.body is not None else {"message": f"{failure.status} Injected failure"}
    data = body if isinstance(body, bytes) else (body.encode() if isinstance(body, str) else json.dumps(body).encode())
    content_type = "text/plain" if isinstance(body, str | bytes) else "application/json"
    headers = {"Content-Type": content_type, **failure.headers, "Content-Length": str(len(data))}
    start_response(f"{failure.status} Injected", list(headers.items()))
    return [data]
