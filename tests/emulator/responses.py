"""JSON bodies of the emulator's answers, built from real recorded GitHub responses.

Each body starts as a copy of a response GitHub really sent (tests/data/github/replay), with every
URL moved to the emulator's host and the identifying fields replaced by the emulated state.
Bodies with no recording (reviews, reactions, teams, permissions) follow GitHub's documented
examples field by field.
"""

from __future__ import annotations

import copy
import functools
import zlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlparse

from tests.emulator.gitrepo import CommitInfo, DiffEntry
from tests.emulator.recordings import replay_body
from tests.emulator.state import (
    Comment,
    EmulatedIssue,
    EmulatedPull,
    EmulatedRepo,
    Reaction,
    Review,
    Status,
    Team,
    iso,
    node_id,
)

if TYPE_CHECKING:
    from tests.emulator.server import GitHubEmulator

Json = dict[str, Any]

GITHUB_API = "https://api.github.com"
GITHUB_WEB = "https://github.com"


@functools.cache
def _templates() -> dict[str, Any]:
    comment_setup = "IssueComment.setUp.txt"
    pull_files = "CompletableGithubObjectWithPaginatedProperty.testPullCommitsGetFiles.txt"
    commit = replay_body(pull_files, "GET", "/repos/PyGithub/PyGithub/commits/")
    combined = replay_body("CommitCombinedStatus.setUp.txt", "GET", "/repos/edx/edx-platform/commits/")
    return {
        "repo": replay_body(comment_setup, "GET", "/repos/PyGithub/PyGithub"),
        "issue": replay_body(comment_setup, "GET", "/repos/PyGithub/PyGithub/issues/28"),
        "comment": replay_body(comment_setup, "GET", "/repos/PyGithub/PyGithub/issues/comments/"),
        "pull": replay_body(pull_files, "GET", "/repos/PyGithub/PyGithub/pulls/3370"),
        "commit": commit,
        "file": commit["files"][0],
        "combined": combined,
        "merge": replay_body("PullRequest.testMerge.txt", "PUT", "/repos/PyGithub/PyGithub/pulls/31/merge"),
        "minimize": replay_body("IssueComment.testMinimize.txt", "POST", "/graphql"),
    }


def template(name: str) -> Json:
    """A fresh copy of one recorded body."""
    body: Json = copy.deepcopy(_templates()[name])
    return body


def rehome(value: Json, prefixes: list[tuple[str, str]]) -> Json:
    """`value` with every string that starts with an old prefix moved to the new one (first match)."""
    moved: Json = _rehome(value, prefixes)
    return moved


def _rehome(value: Any, prefixes: list[tuple[str, str]]) -> Any:
    if isinstance(value, dict):
        return {key: _rehome(item, prefixes) for key, item in value.items()}
    if isinstance(value, list):
        return [_rehome(item, prefixes) for item in value]
    if isinstance(value, str):
        for old, new in prefixes:
            if value.startswith(old):
                return new + value[len(old) :]
    return value


class ResponseShapes:
    """Builds GitHub-shaped JSON for one emulator (its URLs, users and repositories)."""

    def __init__(self, emulator: GitHubEmulator) -> None:
        self.emulator = emulator

    @property
    def api(self) -> str:
        return self.emulator.api_url

    @property
    def web(self) -> str:
        return self.emulator.base_url

    def _generic_prefixes(self) -> list[tuple[str, str]]:
        return [(GITHUB_API, self.api), (GITHUB_WEB, self.web)]

    # Users and organisations

    def user(self, login: str) -> Json:
        body = template("comment")["user"]
        old = body["login"]
        user_id = self.emulator.user_id(login)
        body = rehome(
            body,
            [
                (f"{GITHUB_API}/users/{old}", f"{self.api}/users/{login}"),
                (f"{GITHUB_WEB}/{old}", f"{self.web}/{login}"),
                *self._generic_prefixes(),
            ],
        )
        is_org = self.emulator.is_org(login)
        body.update(
            login=login,
            id=user_id,
            node_id=node_id("O" if is_org else "U", user_id),
            avatar_url=f"https://avatars.githubusercontent.com/u/{user_id}?v=4",
            type="Organization" if is_org else ("Bot" if login.endswith("[bot]") else "User"),
            site_admin=False,
        )
        return body

    def org(self, login: str) -> Json:
        """An organisation as GET /orgs/{org} shows it (owners inside repositories use `user`)."""
        org_id = self.emulator.user_id(login)
        url = f"{self.api}/orgs/{login}"
        return {
            "login": login,
            "id": org_id,
            "node_id": node_id("O", org_id),
            "url": url,
            "repos_url": f"{url}/repos",
            "events_url": f"{url}/events",
            "hooks_url": f"{url}/hooks",
            "issues_url": f"{url}/issues",
            "members_url": f"{url}/members{{/member}}",
            "public_members_url": f"{url}/public_members{{/member}}",
            "avatar_url": f"https://avatars.githubusercontent.com/u/{org_id}?v=4",
            "description": None,
            "name": login,
            "company": None,
            "blog": "",
            "location": None,
            "email": None,
            "is_verified": False,
            "has_organization_projects": True,
            "has_repository_projects": True,
            "public_repos": 0,
            "public_gists": 0,
            "followers": 0,
            "following": 0,
            "html_url": f"{self.web}/{login}",
            "created_at": "2020-01-01T00:00:00Z",
            "updated_at": "2020-01-01T00:00:00Z",
            "archived_at": None,
            "type": "Organization",
        }

    # Repositories

    def repo(self, repo: EmulatedRepo, *, with_parent: bool = True) -> Json:
        body = template("repo")
        old_full, old_owner = body["full_name"], body["owner"]["login"]
        host = urlparse(self.web).netloc
        body = rehome(
            body,
            [
                (f"{GITHUB_API}/repos/{old_full}", repo.url),
                (f"{GITHUB_API}/users/{old_owner}", f"{self.api}/users/{repo.owner}"),
                (f"{GITHUB_API}/orgs/{old_owner}", f"{self.api}/orgs/{repo.owner}"),
                (f"{GITHUB_WEB}/{old_full}", repo.html_url),
                (f"{GITHUB_WEB}/{old_owner}", f"{self.web}/{repo.owner}"),
                (f"git://github.com/{old_full}.git", f"git://{host}/{repo.full_name}.git"),
                (f"git@github.com:{old_full}.git", f"git@{host}:{repo.full_name}.git"),
                *self._generic_prefixes(),
            ],
        )
        created = iso(repo.created_at)
        body.update(
            id=repo.id,
            node_id=repo.node_id,
            name=repo.name,
            full_name=repo.full_name,
            private=repo.private,
            visibility="private" if repo.private else "public",
            owner=self.user(repo.owner),
            description=None,
            fork=repo.fork,
            created_at=created,
            updated_at=created,
            pushed_at=created,
            homepage=None,
            size=0,
            stargazers_count=0,
            watchers_count=0,
            watchers=0,
            language="HCL",
            forks_count=0,
            forks=0,
            # GitHub counts open pull requests as issues too.
            open_issues_count=sum(1 for p in repo.pulls.values() if p.state == "open")
            + sum(1 for i in repo.issues.values() if i.state == "open"),
            license=None,
            topics=[],
            default_branch=repo.default_branch,
            permissions={"admin": True, "maintain": True, "push": True, "triage": True, "pull": True},
            temp_clone_token="",
            custom_properties={},
            network_count=0,
            subscribers_count=0,
            html_url=repo.html_url,
            clone_url=repo.clone_url,
            url=repo.url,
        )
        body["open_issues"] = body["open_issues_count"]
        if self.emulator.is_org(repo.owner):
            body["organization"] = self.user(repo.owner)
        else:
            body.pop("organization", None)
        if repo.parent is not None and with_parent:
            parent = self.repo(repo.parent, with_parent=False)
            body["parent"] = parent
            body["source"] = parent
        return body

    # Pull requests and issues

    def pull(self, pull: EmulatedPull) -> Json:
        body = template("pull")
        repo = pull.repo
        mergeable, mergeable_state = self.emulator.mergeability(pull)
        base_sha = pull.base_sha
        files = self.emulator.pull_files(pull)
        head_statuses = f"{repo.url}/statuses/{pull.head_sha}"
        body.update(
            url=pull.url,
            id=pull.id,
            node_id=pull.node_id,
            html_url=pull.html_url,
            diff_url=f"{pull.html_url}.diff",
            patch_url=f"{pull.html_url}.patch",
            issue_url=pull.issue_url,
            number=pull.number,
            state=pull.state,
            locked=False,
            title=pull.title,
            user=self.user(pull.author),
            body=pull.body or None,
            created_at=iso(pull.created_at),
            updated_at=iso(pull.updated_at),
            closed_at=iso(pull.closed_at),
            merged_at=iso(pull.merged_at),
            merge_commit_sha=pull.merge_commit_sha,
            assignee=None,
            assignees=[],
            requested_reviewers=[],
            requested_teams=[],
            labels=[self.label(repo, name) for name in pull.labels],
            milestone=None,
            draft=pull.draft,
            commits_url=f"{pull.url}/commits",
            review_comments_url=f"{pull.url}/comments",
            review_comment_url=f"{repo.url}/pulls/comments{{/number}}",
            comments_url=f"{pull.issue_url}/comments",
            statuses_url=head_statuses,
            head={
                "label": f"{pull.head_repo.owner}:{pull.head_ref}",
                "ref": pull.head_ref,
                "sha": pull.head_sha,
                "user": self.user(pull.head_repo.owner),
                "repo": self.repo(pull.head_repo),
            },
            base={
                "label": f"{repo.owner}:{pull.base_ref}",
                "ref": pull.base_ref,
                "sha": base_sha,
                "user": self.user(repo.owner),
                "repo": self.repo(repo),
            },
            _links={
                "self": {"href": pull.url},
                "html": {"href": pull.html_url},
                "issue": {"href": pull.issue_url},
                "comments": {"href": f"{pull.issue_url}/comments"},
                "review_comments": {"href": f"{pull.url}/comments"},
                "review_comment": {"href": f"{repo.url}/pulls/comments{{/number}}"},
                "commits": {"href": f"{pull.url}/commits"},
                "statuses": {"href": head_statuses},
            },
            author_association=self.author_association(repo, pull.author),
            auto_merge=None,
            active_lock_reason=None,
            merged=pull.merged,
            mergeable=mergeable,
            rebaseable=mergeable,
            mergeable_state=mergeable_state,
            merged_by=self.user(pull.merged_by) if pull.merged_by else None,
            comments=sum(1 for c in repo.comments.values() if c.issue_number == pull.number),
            review_comments=0,
            maintainer_can_modify=False,
            commits=self.emulator.commit_count(pull),
            additions=sum(f.additions for f in files),
            deletions=sum(f.deletions for f in files),
            changed_files=len(files),
        )
        return body

    def issue(self, pull: EmulatedPull) -> Json:
        """The issue side of a pull request (GET /issues/{n}, and `issue` in comment webhooks)."""
        body = template("issue")
        repo = pull.repo
        body.update(
            url=pull.issue_url,
            repository_url=repo.url,
            labels_url=f"{pull.issue_url}/labels{{/name}}",
            comments_url=f"{pull.issue_url}/comments",
            events_url=f"{pull.issue_url}/events",
            html_url=pull.html_url,
            id=pull.id,
            node_id=pull.node_id,
            number=pull.number,
            title=pull.title,
            user=self.user(pull.author),
            labels=[self.label(repo, name) for name in pull.labels],
            state=pull.state,
            locked=False,
            assignee=None,
            assignees=[],
            milestone=None,
            comments=sum(1 for c in repo.comments.values() if c.issue_number == pull.number),
            created_at=iso(pull.created_at),
            updated_at=iso(pull.updated_at),
            closed_at=iso(pull.closed_at),
            author_association=self.author_association(repo, pull.author),
            active_lock_reason=None,
            draft=pull.draft,
            body=pull.body or None,
            closed_by=self.user(pull.merged_by) if pull.merged_by else None,
            reactions=self._reaction_counts(f"{pull.issue_url}/reactions", []),
            timeline_url=f"{pull.issue_url}/timeline",
            performed_via_github_app=None,
            state_reason="completed" if pull.state == "closed" else None,
            pull_request={
                "url": pull.url,
                "html_url": pull.html_url,
                "diff_url": f"{pull.html_url}.diff",
                "patch_url": f"{pull.html_url}.patch",
                "merged_at": iso(pull.merged_at),
            },
        )
        return body

    def plain_issue(self, issue: EmulatedIssue) -> Json:
        """An issue that is not a pull request (no `pull_request` key), as GET /issues/{n} shows it."""
        body = template("issue")
        repo = issue.repo
        body.pop("pull_request", None)
        body.update(
            url=issue.url,
            repository_url=repo.url,
            labels_url=f"{issue.url}/labels{{/name}}",
            comments_url=f"{issue.url}/comments",
            events_url=f"{issue.url}/events",
            html_url=issue.html_url,
            id=issue.id,
            node_id=issue.node_id,
            number=issue.number,
            title=issue.title,
            user=self.user(issue.author),
            labels=[self.label(repo, name) for name in issue.labels],
            state=issue.state,
            locked=False,
            assignee=None,
            assignees=[],
            milestone=None,
            comments=sum(1 for c in repo.comments.values() if c.issue_number == issue.number),
            created_at=iso(issue.created_at),
            updated_at=iso(issue.updated_at),
            closed_at=iso(issue.closed_at),
            author_association=self.author_association(repo, issue.author),
            active_lock_reason=None,
            body=issue.body or None,
            closed_by=self.user(issue.closed_by) if issue.closed_by else None,
            reactions=self._reaction_counts(f"{issue.url}/reactions", []),
            timeline_url=f"{issue.url}/timeline",
            performed_via_github_app=None,
            state_reason=issue.state_reason,
        )
        return body

    def label(self, repo: EmulatedRepo, name: str) -> Json:
        """A label as issues list them; ids are derived from the name, as the emulator keeps no label objects."""
        body: Json = template("issue")["labels"][0]
        label_id = zlib.crc32(name.encode()) + 1
        body.update(
            id=label_id,
            node_id=node_id("LA", label_id),
            url=f"{repo.url}/labels/{quote(name, safe='')}",
            name=name,
            color="ededed",
            default=False,
            description=None,
        )
        return body

    def author_association(self, repo: EmulatedRepo, login: str) -> str:
        if login == repo.owner:
            return "OWNER"
        if repo.permissions.get(login, "none") in ("admin", "maintain", "write", "triage"):
            return "COLLABORATOR"
        return "CONTRIBUTOR" if any(p.author == login and p.merged for p in repo.pulls.values()) else "NONE"

    def file(self, repo: EmulatedRepo, head_sha: str, entry: DiffEntry, blob_sha: str | None) -> Json:
        body = template("file")
        quoted = quote(entry.filename, safe="")
        body.update(
            sha=blob_sha,
            filename=entry.filename,
            status=entry.status,
            additions=entry.additions,
            deletions=entry.deletions,
            changes=entry.additions + entry.deletions,
            blob_url=f"{repo.html_url}/blob/{head_sha}/{quoted}",
            raw_url=f"{repo.html_url}/raw/{head_sha}/{quoted}",
            contents_url=f"{repo.url}/contents/{quoted}?ref={head_sha}",
        )
        # The emulator does not render patches; GitHub also omits them for large or binary files.
        body.pop("patch", None)
        if entry.previous_filename:
            body["previous_filename"] = entry.previous_filename
        return body

    def review(self, pull: EmulatedPull, review: Review) -> Json:
        html = f"{pull.html_url}#pullrequestreview-{review.id}"
        return {
            "id": review.id,
            "node_id": node_id("PRR", review.id),
            "user": self.user(review.user),
            "body": review.body,
            "state": review.state,
            "html_url": html,
            "pull_request_url": pull.url,
            "author_association": self.author_association(pull.repo, review.user),
            "_links": {"html": {"href": html}, "pull_request": {"href": pull.url}},
            "submitted_at": iso(review.submitted_at),
            "commit_id": review.commit_id,
        }

    # Comments and reactions

    def comment(self, repo: EmulatedRepo, comment: Comment) -> Json:
        body = template("comment")
        url = f"{repo.url}/issues/comments/{comment.id}"
        kind = "issues" if comment.issue_number in repo.issues else "pull"
        body.update(
            url=url,
            html_url=f"{repo.html_url}/{kind}/{comment.issue_number}#issuecomment-{comment.id}",
            issue_url=f"{repo.url}/issues/{comment.issue_number}",
            id=comment.id,
            node_id=comment.node_id,
            user=self.user(comment.user),
            created_at=iso(comment.created_at),
            updated_at=iso(comment.updated_at),
            author_association=self.author_association(repo, comment.user),
            body=comment.body,
            reactions=self._reaction_counts(f"{url}/reactions", comment.reactions),
            performed_via_github_app=None,
        )
        return body

    def _reaction_counts(self, url: str, reactions: list[Reaction]) -> Json:
        counts: Json = {"url": url, "total_count": len(reactions)}
        for content in ("+1", "-1", "laugh", "hooray", "confused", "heart", "rocket", "eyes"):
            counts[content] = sum(1 for r in reactions if r.content == content)
        return counts

    def reaction(self, reaction: Reaction) -> Json:
        return {
            "id": reaction.id,
            "node_id": node_id("REA", reaction.id),
            "user": self.user(reaction.user),
            "content": reaction.content,
            "created_at": iso(reaction.created_at),
        }

    # Commits and statuses

    def status(self, repo: EmulatedRepo, status: Status, *, with_creator: bool = True) -> Json:
        body: Json = template("combined")["statuses"][0]
        body.update(
            url=f"{repo.url}/statuses/{status.sha}",
            avatar_url=f"https://avatars.githubusercontent.com/u/{self.emulator.user_id(status.creator)}?v=4",
            id=status.id,
            node_id=node_id("SC", status.id),
            state=status.state,
            description=status.description,
            target_url=status.target_url,
            context=status.context,
            created_at=iso(status.created_at),
            updated_at=iso(status.created_at),
        )
        if with_creator:
            body["creator"] = self.user(status.creator)
        return body

    def combined_status(self, repo: EmulatedRepo, sha: str, latest: list[Status]) -> Json:
        body = template("combined")
        states = {s.state for s in latest}
        if states & {"error", "failure"}:
            state = "failure"
        elif not latest or "pending" in states:
            state = "pending"
        else:
            state = "success"
        body.update(
            state=state,
            statuses=[self.status(repo, s, with_creator=False) for s in latest],
            sha=sha,
            total_count=len(latest),
            repository=self.repo(repo),
            commit_url=f"{repo.url}/commits/{sha}",
            url=f"{repo.url}/commits/{sha}/status",
        )
        return body

    def branch(self, repo: EmulatedRepo, name: str, info: CommitInfo) -> Json:
        """GET /repos/{owner}/{repo}/branches/{branch}: the branch, its head commit and its protection."""
        url = f"{repo.url}/branches/{quote(name, safe='')}"
        commit = self.commit(repo, info, [])
        for key in ("files", "stats"):
            commit.pop(key, None)
        protected = bool(repo.required_contexts or repo.required_approvals) and name == repo.default_branch
        return {
            "name": name,
            "commit": commit,
            "_links": {"self": url, "html": f"{repo.html_url}/tree/{name}"},
            "protected": protected,
            "protection": {
                "enabled": protected,
                "required_status_checks": {
                    "enforcement_level": "non_admins" if protected else "off",
                    "contexts": list(repo.required_contexts),
                    "checks": [{"context": context, "app_id": None} for context in repo.required_contexts],
                },
            },
            "protection_url": f"{url}/protection",
        }

    def commit(self, repo: EmulatedRepo, info: CommitInfo, files: list[Json]) -> Json:
        body = template("commit")
        additions = sum(int(f["additions"]) for f in files)
        deletions = sum(int(f["deletions"]) for f in files)
        body.update(
            sha=info.sha,
            node_id=f"C_{info.sha[:20]}",
            commit={
                "author": {
                    "name": info.author_name,
                    "email": info.author_email,
                    "date": _epoch_iso(info.author_date),
                },
                "committer": {
                    "name": info.committer_name,
                    "email": info.committer_email,
                    "date": _epoch_iso(info.committer_date),
                },
                "message": info.message,
                "tree": {"sha": info.tree, "url": f"{repo.url}/git/trees/{info.tree}"},
                "url": f"{repo.url}/git/commits/{info.sha}",
                "comment_count": 0,
                "verification": {
                    "verified": False,
                    "reason": "unsigned",
                    "signature": None,
                    "payload": None,
                    "verified_at": None,
                },
            },
            url=f"{repo.url}/commits/{info.sha}",
            html_url=f"{repo.html_url}/commit/{info.sha}",
            comments_url=f"{repo.url}/commits/{info.sha}/comments",
            author=None,
            committer=None,
            parents=[
                {"sha": p, "url": f"{repo.url}/commits/{p}", "html_url": f"{repo.html_url}/commit/{p}"}
                for p in info.parents
            ],
            stats={"total": additions + deletions, "additions": additions, "deletions": deletions},
            files=files,
        )
        return body

    # Organisations, teams and permissions

    def team(self, team: Team) -> Json:
        url = f"{self.api}/organizations/{team.org_id}/team/{team.id}"
        return {
            "name": team.name,
            "id": team.id,
            "node_id": node_id("T", team.id),
            "slug": team.slug,
            "description": None,
            "privacy": "closed",
            "notification_setting": "notifications_enabled",
            "url": url,
            "html_url": f"{self.web}/orgs/{team.org}/teams/{team.slug}",
            "members_url": f"{url}/members{{/member}}",
            "repositories_url": f"{url}/repos",
            "permission": "pull",
            "parent": None,
            "members_count": sum(1 for m in team.memberships.values() if m.state == "active"),
            "repos_count": 0,
            "created_at": "2020-01-01T00:00:00Z",
            "updated_at": "2020-01-01T00:00:00Z",
            "organization": self.org(team.org),
        }

    def membership(self, team: Team, login: str, state: str, role: str) -> Json:
        url = f"{self.api}/organizations/{team.org_id}/team/{team.id}/memberships/{login}"
        return {"url": url, "role": role, "state": state}

    def permission(self, repo: EmulatedRepo, login: str, role: str) -> Json:
        # `permission` keeps GitHub's legacy four values; `role_name` says the real role.
        legacy = {"admin": "admin", "maintain": "write", "write": "write", "triage": "read"}.get(role, role)
        user = self.user(login)
        user["permissions"] = {
            "admin": role == "admin",
            "maintain": role in ("admin", "maintain"),
            "push": role in ("admin", "maintain", "write"),
            "triage": role in ("admin", "maintain", "write", "triage"),
            "pull": role != "none",
        }
        user["role_name"] = role
        return {"permission": legacy, "role_name": role, "user": user}

    def merge_result(self, sha: str) -> Json:
        body: Json = template("merge")
        body.update(sha=sha, merged=True, message="Pull Request successfully merged")
        return body

    def minimize_result(self, mutation: str, minimized: bool) -> Json:
        body: Json = template("minimize")
        body["data"] = {mutation: {"minimizedComment": {"isMinimized": minimized}}}
        return body


def _epoch_iso(epoch: int) -> str:
    return iso(datetime.fromtimestamp(epoch, UTC)) or ""
