"""JSON bodies of the emulator's answers and webhook payloads, built from GitLab's documented examples.

Each body starts as a fresh copy of an example under tests/data/gitlab (see its README), with the
identifying fields, URLs and state replaced by the emulated world's; every other field keeps the
documented shape, so what python-gitlab and atlas read is what GitLab sends.
"""

from __future__ import annotations

import copy
import functools
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.emulator.gitrepo import DiffEntry
from tests.gitlab_emulator.state import (
    AwardEmoji,
    CommitStatus,
    Group,
    Issue,
    MergeRequest,
    Note,
    Pipeline,
    Project,
    User,
    hook_time,
    iso,
)

if TYPE_CHECKING:
    from tests.gitlab_emulator.server import GitLabEmulator

Json = dict[str, Any]

DATA_DIR = Path(__file__).resolve().parents[1] / "data" / "gitlab"


@functools.cache
def _example_text(name: str) -> str:
    path = DATA_DIR / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"GitLab example {path} is missing: the emulator builds its answers from it")
    return path.read_text()


def example(name: str) -> Any:
    """A fresh copy of a documented example, e.g. `api/merge_request` or `webhooks/merge_request`."""
    return json.loads(_example_text(name))


class ResponseShapes:
    """Builds GitLab's bodies for one emulator (its URLs, ids and state)."""

    def __init__(self, emulator: GitLabEmulator) -> None:
        self.emulator = emulator

    @property
    def web(self) -> str:
        return self.emulator.base_url

    # Users and members

    def user_basic(self, user: User) -> Json:
        return {
            "id": user.id,
            "username": user.username,
            "name": user.name,
            "state": "active",
            "locked": False,
            "avatar_url": f"{self.web}/uploads/-/system/user/avatar/{user.id}/avatar.png",
            "web_url": f"{self.web}/{user.username}",
        }

    def current_user(self, user: User) -> Json:
        body: Json = example("api/user")
        body.update(self.user_basic(user))
        body.update(email=user.email, public_email=user.email, commit_email=user.email, bot=user.bot)
        return body

    def member(self, user: User, access_level: int) -> Json:
        body: Json = example("api/member")
        body.update(self.user_basic(user))
        body.update(access_level=access_level, expires_at=None, email=user.email)
        return body

    # Projects and groups

    def namespace(self, group: Group) -> Json:
        return {
            "id": group.id,
            "name": group.name,
            "path": group.path,
            "kind": "group",
            "full_path": group.full_path,
            "parent_id": group.parent.id if group.parent else None,
            "avatar_url": None,
            "web_url": f"{self.web}/groups/{group.full_path}",
        }

    def project(self, project: Project) -> Json:
        body: Json = example("api/project")
        web_url = f"{self.web}/{project.full_path}"
        api = f"{self.emulator.api_url}/projects/{project.id}"
        names = [g.name for g in _ancestry(project.namespace)] + [project.path]
        body.update(
            id=project.id,
            description="",
            default_branch=project.default_branch,
            visibility=project.visibility,
            ssh_url_to_repo=f"git@127.0.0.1:{project.full_path}.git",
            http_url_to_repo=f"{web_url}.git",
            web_url=web_url,
            readme_url=f"{web_url}/-/blob/{project.default_branch}/README.md",
            name=project.path,
            name_with_namespace=" / ".join(names),
            path=project.path,
            path_with_namespace=project.full_path,
            created_at=iso(project.created_at),
            updated_at=iso(project.created_at),
            last_activity_at=iso(project.created_at),
            namespace=self.namespace(project.namespace),
            avatar_url=None,
            only_allow_merge_if_pipeline_succeeds=project.only_allow_merge_if_pipeline_succeeds,
            _links={
                "self": api,
                "issues": f"{api}/issues",
                "merge_requests": f"{api}/merge_requests",
                "repo_branches": f"{api}/repository/branches",
                "labels": f"{api}/labels",
                "events": f"{api}/events",
                "members": f"{api}/members",
                "cluster_agents": f"{api}/cluster_agents",
            },
        )
        if project.forked_from is not None:
            body["forked_from_project"] = {
                "id": project.forked_from.id,
                "path_with_namespace": project.forked_from.full_path,
            }
        return body

    def hook_project(self, project: Project) -> Json:
        """A project as webhook payloads describe it (`project`, `source`, `target`)."""
        web_url = f"{self.web}/{project.full_path}"
        return {
            "id": project.id,
            "name": project.path,
            "description": "",
            "web_url": web_url,
            "avatar_url": None,
            "git_ssh_url": f"git@127.0.0.1:{project.full_path}.git",
            "git_http_url": f"{web_url}.git",
            "namespace": project.namespace.name,
            "visibility_level": project.visibility_level,
            "path_with_namespace": project.full_path,
            "default_branch": project.default_branch,
            "ci_config_path": "",
            "homepage": web_url,
            "url": f"{web_url}.git",
            "ssh_url": f"git@127.0.0.1:{project.full_path}.git",
            "http_url": f"{web_url}.git",
        }

    # Repository

    def commit(self, project: Project, sha: str) -> Json:
        info = project.git.commit_info(sha)
        assert info is not None
        body: Json = example("api/commit")
        title = info.message.split("\n", 1)[0]
        body.update(
            id=info.sha,
            short_id=info.sha[:11],
            title=title,
            message=info.message,
            parent_ids=list(info.parents),
            author_name=info.author_name,
            author_email=info.author_email,
            authored_date=_epoch(info.author_date),
            committer_name=info.committer_name,
            committer_email=info.committer_email,
            committed_date=_epoch(info.committer_date),
            created_at=_epoch(info.committer_date),
            last_pipeline=None,
            status=None,
            web_url=f"{self.web}/{project.full_path}/-/commit/{info.sha}",
        )
        body.pop("stats", None)
        return body

    def branch(self, project: Project, name: str, sha: str) -> Json:
        body: Json = example("api/branch")
        commit = self.commit(project, sha)
        body.update(
            name=name,
            merged=False,
            protected=name == project.default_branch,
            default=name == project.default_branch,
            web_url=f"{self.web}/{project.full_path}/-/tree/{name}",
            commit={key: commit[key] for key in body["commit"]},
        )
        return body

    # Merge requests

    def pipeline(self, project: Project, pipeline: Pipeline) -> Json:
        status = self.emulator.pipeline_status(project, pipeline)
        return {
            "id": pipeline.id,
            "iid": pipeline.iid,
            "project_id": project.id,
            "sha": pipeline.sha,
            "ref": pipeline.ref,
            "status": status,
            "source": pipeline.source,
            "created_at": iso(pipeline.created_at),
            "updated_at": iso(pipeline.updated_at),
            "web_url": f"{self.web}/{project.full_path}/-/pipelines/{pipeline.id}",
        }

    def merge_request(self, mr: MergeRequest) -> Json:
        body: Json = example("api/merge_request")
        project = mr.project
        web_url = f"{self.web}/{project.full_path}/-/merge_requests/{mr.iid}"
        detailed = self.emulator.detailed_merge_status(mr)
        pipeline = self.emulator.head_pipeline(mr)
        merge_base = project.git.out("merge-base", mr.base_sha_now(), mr.sha) if mr.state != "merged" else mr.base_sha
        body.update(
            id=mr.id,
            iid=mr.iid,
            project_id=project.id,
            title=mr.title if not mr.draft else f"Draft: {mr.title}",
            description=mr.description,
            state=mr.state,
            created_at=iso(mr.created_at),
            updated_at=iso(mr.updated_at),
            merged_by=self.user_basic(mr.merged_by) if mr.merged_by and mr.state == "merged" else None,
            merge_user=self.user_basic(mr.merged_by) if mr.merged_by else None,
            merged_at=iso(mr.merged_at),
            merge_after=None,
            prepared_at=iso(mr.created_at),
            closed_by=self.user_basic(mr.closed_by) if mr.closed_by else None,
            closed_at=iso(mr.closed_at),
            target_branch=mr.target_branch,
            source_branch=mr.source_branch,
            user_notes_count=sum(1 for n in mr.notes.values() if not n.system),
            upvotes=sum(1 for a in mr.awards if a.name == "thumbsup"),
            downvotes=sum(1 for a in mr.awards if a.name == "thumbsdown"),
            author=self.user_basic(mr.author),
            source_project_id=mr.source_project.id,
            target_project_id=project.id,
            draft=mr.draft,
            work_in_progress=mr.draft,
            merge_when_pipeline_succeeds=mr.merge_when_pipeline_succeeds,
            merge_status="can_be_merged" if detailed != "conflict" else "cannot_be_merged",
            detailed_merge_status=detailed,
            sha=mr.sha,
            merge_commit_sha=mr.merge_commit_sha,
            squash_commit_sha=mr.squash_commit_sha,
            should_remove_source_branch=mr.should_remove_source_branch,
            reference=f"!{mr.iid}",
            references={"short": f"!{mr.iid}", "relative": f"!{mr.iid}", "full": f"{project.full_path}!{mr.iid}"},
            web_url=web_url,
            squash=mr.squash,
            has_conflicts=detailed == "conflict",
            changes_count=str(len(self.emulator.diffs(mr))),
            pipeline=self.pipeline(project, pipeline) if pipeline else None,
            diff_refs={"base_sha": merge_base, "head_sha": mr.sha, "start_sha": mr.base_sha_now()},
        )
        if pipeline is None:
            body["head_pipeline"] = None
        else:
            head = body["head_pipeline"]
            head.update(self.pipeline(project, pipeline))
            head.update(
                before_sha=pipeline.sha,
                user=self.user_basic(self.emulator.bot),
                started_at=None,
                finished_at=None,
                duration=None,
                queued_duration=None,
            )
            status = head["status"]
            head["detailed_status"].update(
                icon=f"status_{status}",
                text=status,
                label=status,
                group=status,
                tooltip=status,
                details_path=f"/{project.full_path}/-/pipelines/{pipeline.id}",
            )
        return body

    def diff(self, entry: DiffEntry) -> Json:
        body: Json = example("api/merge_request_diffs")[0]
        body.update(
            old_path=entry.previous_filename or entry.filename,
            new_path=entry.filename,
            a_mode="0" if entry.status == "added" else "100644",
            b_mode="0" if entry.status == "removed" else "100644",
            diff=f"@@ -0,0 +{entry.additions} @@\n" if entry.additions else "",
            new_file=entry.status == "added",
            renamed_file=entry.status == "renamed",
            deleted_file=entry.status == "removed",
        )
        return body

    def approvals(self, mr: MergeRequest) -> Json:
        body: Json = example("api/merge_request_approvals")
        states = self.emulator.rule_states(mr)
        required = sum(rule.approvals_required for rule, _, _ in states)
        left = sum(max(rule.approvals_required - len(counted), 0) for rule, counted, _ in states)
        body.update(
            id=mr.id,
            iid=mr.iid,
            project_id=mr.project.id,
            title=mr.title,
            description=mr.description,
            state=mr.state,
            created_at=iso(mr.created_at),
            updated_at=iso(mr.updated_at),
            merge_status="can_be_merged",
            approvals_required=required,
            approvals_left=left,
            approved=all(met for _, _, met in states),
            approved_by=[{"user": self.user_basic(user), "approved_at": iso(at)} for user, at in mr.approvals],
        )
        return body

    def approval_state(self, mr: MergeRequest) -> Json:
        body: Json = example("api/merge_request_approval_state")
        template = body["rules"][0]
        rules = []
        for rule, counted, met in self.emulator.rule_states(mr):
            eligible = [self.emulator.user(name) for name in rule.eligible]
            item = copy.deepcopy(template)
            item.update(
                id=rule.id,
                name=rule.name,
                rule_type=rule.rule_type,
                eligible_approvers=[self.user_basic(u) for u in eligible],
                approvals_required=rule.approvals_required,
                users=[self.user_basic(u) for u in eligible],
                approved_by=[self.user_basic(u) for u in counted],
                approved=met,
            )
            rules.append(item)
        body.update(approval_rules_overwritten=False, rules=rules)
        return body

    # Notes, award emoji, statuses, issues

    def note(self, mr: MergeRequest | Issue, note: Note) -> Json:
        body: Json = example("api/note")
        body.update(
            id=note.id,
            body=note.body,
            author=self.user_basic(note.author),
            created_at=iso(note.created_at),
            updated_at=iso(note.updated_at),
            system=note.system,
            noteable_id=mr.id,
            noteable_type=note.noteable_type,
            project_id=mr.project.id,
            noteable_iid=mr.iid,
            type=None,
            attachment=None,
        )
        return body

    def award_emoji(self, award: AwardEmoji) -> Json:
        body: Json = example("api/award_emoji")
        body.update(
            id=award.id,
            name=award.name,
            user=self.user_basic(award.user),
            created_at=iso(award.created_at),
            updated_at=iso(award.created_at),
            awardable_id=award.awardable_id,
            awardable_type=award.awardable_type,
        )
        return body

    def commit_status(self, status: CommitStatus) -> Json:
        body: Json = example("api/commit_status")
        body.update(
            author=self.user_basic(status.author),
            name=status.name,
            sha=status.sha,
            status=status.status,
            coverage=None,
            description=status.description,
            id=status.id,
            target_url=status.target_url,
            ref=status.ref,
            started_at=None,
            created_at=iso(status.created_at),
            allow_failure=False,
            finished_at=iso(status.finished_at),
            pipeline_id=status.pipeline_id,
        )
        return body

    def issue(self, issue: Issue) -> Json:
        body: Json = example("api/issue")
        project = issue.project
        api = f"{self.emulator.api_url}/projects/{project.id}/issues/{issue.iid}"
        body.update(
            id=issue.id,
            iid=issue.iid,
            project_id=project.id,
            title=issue.title,
            description=issue.description,
            state=issue.state,
            created_at=iso(issue.created_at),
            updated_at=iso(issue.updated_at),
            closed_at=iso(issue.closed_at),
            closed_by=self.user_basic(issue.closed_by) if issue.closed_by else None,
            labels=list(issue.labels),
            author=self.user_basic(issue.author),
            web_url=f"{self.web}/{project.full_path}/-/issues/{issue.iid}",
            _links={
                "self": api,
                "notes": f"{api}/notes",
                "award_emoji": f"{api}/award_emoji",
                "project": f"{self.emulator.api_url}/projects/{project.id}",
                "closed_as_duplicate_of": None,
            },
            references={
                "short": f"#{issue.iid}",
                "relative": f"#{issue.iid}",
                "full": f"{project.full_path}#{issue.iid}",
            },
        )
        return body

    # Webhook payloads

    def hook_user(self, user: User) -> Json:
        return {
            "id": user.id,
            "name": user.name,
            "username": user.username,
            "avatar_url": f"{self.web}/uploads/-/system/user/avatar/{user.id}/avatar.png",
            "email": user.email,
        }

    def hook_merge_request(self, mr: MergeRequest) -> Json:
        """The merge request as webhook payloads carry it (`object_attributes`, or `merge_request` in notes)."""
        attributes: Json = example("webhooks/merge_request")["object_attributes"]
        info = mr.project.git.commit_info(mr.sha)
        assert info is not None
        web_url = f"{self.web}/{mr.project.full_path}"
        attributes.update(
            id=mr.id,
            iid=mr.iid,
            target_branch=mr.target_branch,
            source_branch=mr.source_branch,
            source_project_id=mr.source_project.id,
            target_project_id=mr.project.id,
            author_id=mr.author.id,
            assignee_ids=[],
            assignee_id=None,
            reviewer_ids=[],
            title=mr.title if not mr.draft else f"Draft: {mr.title}",
            description=mr.description,
            created_at=hook_time(mr.created_at),
            updated_at=hook_time(mr.updated_at),
            last_edited_at=None,
            last_edited_by_id=None,
            state={"opened": "opened", "closed": "closed", "merged": "merged"}[mr.state],
            state_id={"opened": 1, "closed": 2, "merged": 3}[mr.state],
            work_in_progress=mr.draft,
            draft=mr.draft,
            merge_status="can_be_merged",
            detailed_merge_status=self.emulator.detailed_merge_status(mr, consume=False),
            prepared_at=hook_time(mr.created_at),
            url=f"{web_url}/-/merge_requests/{mr.iid}",
            source=self.hook_project(mr.source_project),
            target=self.hook_project(mr.project),
            last_commit={
                "id": info.sha,
                "message": info.message,
                "title": info.message.split("\n", 1)[0],
                "timestamp": _epoch(info.committer_date),
                "url": f"{web_url}/-/commit/{info.sha}",
                "author": {"name": info.author_name, "email": info.author_email},
            },
            labels=[],
            merge_commit_sha=mr.merge_commit_sha,
        )
        return attributes


def _ancestry(group: Group) -> list[Group]:
    chain: list[Group] = []
    node: Group | None = group
    while node is not None:
        chain.insert(0, node)
        node = node.parent
    return chain


def _epoch(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.000+00:00")
