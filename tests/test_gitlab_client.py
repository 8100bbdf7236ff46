"""GitLabClient against the GitLab emulator over real HTTP, through python-gitlab."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from atlas.gitlab.client import NOTE_LIMIT, OUTDATED_SUMMARY, GitLabClient, parse_note_node_id
from atlas.gitlab.hosts import (
    HostnameError,
    git_http_auth,
    gitlab_api_url,
    gitlab_base_url,
    gitlab_host,
    project_clone_url,
)
from atlas.gitlab.markdown import gitlab_markdown
from atlas.models import CommandName, PlanSummary, Project, ProjectResult, ProjectStatus, Repo
from atlas.render.comments import render_plan_comment
from atlas.vcs import CommitState, FileStatus, Permission, VCSError
from tests.gitlab_emulator import GitLabEmulator

PATH = "platform/network/core"


@pytest.fixture
def world(gitlab_emulator: GitLabEmulator) -> GitLabEmulator:
    gitlab_emulator.create_project(PATH, {"main.tf": "# root\n", "old.tf": "# old\n"})
    gitlab_emulator.open_merge_request(
        PATH, "feature/vpc", {"vpc/main.tf": "# vpc\n", "old.tf": None}, author="alice", title="Add the VPC"
    )
    return gitlab_emulator


@pytest.fixture
def client(world: GitLabEmulator) -> GitLabClient:
    return GitLabClient(world.token, world.base_url, backoff_base=0.01, mergeable_poll_interval=0.01)


@pytest.fixture
def repo(client: GitLabClient) -> Repo:
    return client.get_repo(PATH)


# The hostname rule


@pytest.mark.parametrize(
    ("hostname", "base"),
    [
        ("gitlab.com", "https://gitlab.com"),
        ("gitlab.example.com:8443", "https://gitlab.example.com:8443"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("https://git.example.com/gitlab/", "https://git.example.com/gitlab"),
        ("  GitLab.Example.com  ", "https://gitlab.example.com"),
    ],
)
def test_a_bare_host_means_https_and_a_url_is_taken_as_it_is(hostname: str, base: str) -> None:
    assert gitlab_base_url(hostname) == base
    assert gitlab_api_url(hostname) == base + "/api/v4"


@pytest.mark.parametrize(
    ("hostname", "problem"),
    [
        ("", "empty"),
        ("ftp://gitlab.example.com", "http:// or https://"),
        ("https://user:pw@gitlab.example.com", "credentials"),
        ("https://gitlab.example.com/api/v4", "without /api/v4"),
        ("https://gitlab.example.com:99999", "not a host or URL"),
        ("https://gitlab.example.com/?x=1", "query"),
    ],
)
def test_a_bad_hostname_is_refused_with_the_reason(hostname: str, problem: str) -> None:
    with pytest.raises(HostnameError, match=problem):
        gitlab_base_url(hostname)


def test_the_allowlist_host_is_the_host_alone() -> None:
    assert gitlab_host("https://gitlab.example.com:8443/gitlab") == "gitlab.example.com"


# Reading


def test_projects_in_nested_groups_are_read_by_their_encoded_path(world: GitLabEmulator, repo: Repo) -> None:
    assert repo.full_name == PATH
    assert repo.clone_url == f"{world.base_url}/{PATH}.git"
    assert repo.html_url == f"{world.base_url}/{PATH}"
    assert (repo.default_branch, repo.private) == ("main", True)
    project_id = world.project(PATH).id
    assert any("/projects/platform%2Fnetwork%2Fcore" in r.path for r in world.requests)
    assert world.find_project(str(project_id)) is world.project(PATH)


def test_get_pull_reads_the_merge_request(world: GitLabEmulator, client: GitLabClient, repo: Repo) -> None:
    pull = client.get_pull(repo, 1)
    mr = world.merge_request(PATH, 1)
    assert (pull.number, pull.head_sha, pull.head_ref, pull.base_ref) == (1, mr.sha, "feature/vpc", "main")
    assert pull.base_sha == world.branch_sha(PATH, "main")
    assert (pull.author, pull.title, pull.is_open, pull.is_fork, pull.merged) == (
        "alice",
        "Add the VPC",
        True,
        False,
        False,
    )
    assert pull.html_url == f"{world.base_url}/{PATH}/-/merge_requests/1"
    assert pull.head_clone_url == repo.clone_url


def test_a_fork_merge_request_names_the_forks_clone_url(world: GitLabEmulator, client: GitLabClient) -> None:
    world.create_project("oss/tools", {"main.tf": "\n"}, visibility="public")
    world.open_merge_request("oss/tools", "patch", {"x.tf": "\n"}, author="mallory", from_fork=True)
    pull = client.get_pull(client.get_repo("oss/tools"), 1)
    assert pull.is_fork is True
    assert pull.head_clone_url == f"{world.base_url}/mallory/tools.git"


def test_a_private_fork_atlas_cannot_read_is_a_fork_with_nothing_to_clone(
    world: GitLabEmulator, client: GitLabClient, repo: Repo
) -> None:
    world.open_merge_request(PATH, "patch", {"x.tf": "\n"}, author="mallory", from_fork=True)
    pull = client.get_pull(repo, 2)
    assert (pull.is_fork, pull.head_clone_url) == (True, "")


def test_changed_files_reads_every_page_of_the_diffs(world: GitLabEmulator, client: GitLabClient, repo: Repo) -> None:
    changes: dict[str, str | bytes | None] = {f"mod{i:03d}/main.tf": f"# {i}\n" for i in range(230)}
    world.open_merge_request(PATH, "big", changes)
    files = client.changed_files(client.get_pull(repo, 2))
    assert sorted(f.filename for f in files) == sorted(changes)
    pages = [r.path for r in world.requests if r.path.split("?")[0].endswith("/merge_requests/2/diffs")]
    assert len(pages) == 3 and "page=3" in pages[-1]


def test_changed_files_says_added_removed_and_modified(client: GitLabClient, repo: Repo) -> None:
    files = {f.filename: f.status for f in client.changed_files(client.get_pull(repo, 1))}
    assert files == {"vpc/main.tf": FileStatus.ADDED, "old.tf": FileStatus.REMOVED}


def test_resolve_ref_and_branch_head(world: GitLabEmulator, client: GitLabClient, repo: Repo) -> None:
    mr = world.merge_request(PATH, 1)
    assert client.branch_head(repo, "feature/vpc") == mr.sha
    assert client.resolve_ref(repo, "main") == world.branch_sha(PATH, "main")
    with pytest.raises(VCSError, match="404"):
        client.resolve_ref(repo, "no-such-branch")


# Notes, award emoji, hiding


def test_notes_are_posted_and_listed_without_system_notes(
    world: GitLabEmulator, client: GitLabClient, repo: Repo
) -> None:
    world.add_note(PATH, 1, "atlas plan", "bob")
    world.add_note(PATH, 1, "added 1 commit", "alice", system=True)
    posted = client.post_comment(repo, 1, "Ran Plan for 1 project")
    listed = client.list_comments(repo, 1)
    assert [(login, body) for _, login, body in listed] == [
        ("bob", "atlas plan"),
        ("atlas-bot", "Ran Plan for 1 project"),
    ]
    assert listed[-1][0] == posted
    assert posted.html_url.endswith(f"/{PATH}/-/merge_requests/1#note_{posted.id}")
    assert parse_note_node_id(posted.node_id) == (world.project(PATH).id, 1, posted.id)


def test_a_note_of_a_million_characters_is_posted_and_a_longer_one_refused(
    world: GitLabEmulator, client: GitLabClient, repo: Repo
) -> None:
    assert client.comment_limit == NOTE_LIMIT == 1_000_000
    client.post_comment(repo, 1, "x" * NOTE_LIMIT)
    before = len(world.requests)
    with pytest.raises(VCSError, match="at most 1,000,000 characters"):
        client.post_comment(repo, 1, "x" * (NOTE_LIMIT + 1))
    assert len(world.requests) == before


def test_the_reaction_is_an_award_emoji_on_the_note_given_once(
    world: GitLabEmulator, client: GitLabClient, repo: Repo
) -> None:
    note = world.add_note(PATH, 1, "atlas apply", "bob")
    client.react(repo, note.id, "eyes", number=1)
    client.react(repo, note.id, "eyes", number=1)
    client.react(repo, note.id, "+1", number=1)
    assert world.notes(PATH, 1)[0]["awards"] == [("eyes", "atlas-bot"), ("thumbsup", "atlas-bot")]
    with pytest.raises(VCSError, match="merge request number is needed"):
        client.react(repo, note.id, "eyes")


def test_hiding_folds_the_earlier_plan_note_under_an_outdated_summary(
    world: GitLabEmulator, client: GitLabClient, repo: Repo
) -> None:
    posted = client.post_comment(repo, 1, "Ran Plan for 1 project\n\n```\nPlan: 1 to add\n```")
    client.hide_comment(posted.node_id)
    client.hide_comment(posted.node_id)
    body = world.notes(PATH, 1)[0]["body"]
    assert body.startswith(f"<details><summary>{OUTDATED_SUMMARY}</summary>\n\nRan Plan for 1 project")
    assert body.endswith("```\n\n</details>") and body.count("<details>") == 1


def test_hiding_a_note_at_the_limit_keeps_it_within_the_limit(
    world: GitLabEmulator, client: GitLabClient, repo: Repo
) -> None:
    posted = client.post_comment(repo, 1, "y" * NOTE_LIMIT)
    client.hide_comment(posted.node_id)
    assert len(world.notes(PATH, 1)[0]["body"]) == NOTE_LIMIT


# Statuses


def test_statuses_go_on_the_head_pipeline_with_the_source_branch(
    world: GitLabEmulator, client: GitLabClient, repo: Repo
) -> None:
    mr = world.merge_request(PATH, 1)
    pipeline = world.add_pipeline(PATH, mr.sha, ref="refs/merge-requests/1/head")
    client.set_status(repo, mr.sha, CommitState.PENDING, "atlas/plan", "Planning 1 project", number=1)
    client.set_status(repo, mr.sha, CommitState.PENDING, "atlas/plan", "Planning 1 project", number=1)
    client.set_status(repo, mr.sha, CommitState.SUCCESS, "atlas/plan", "1 planned", "https://atlas/job/1", number=1)
    statuses = world.statuses(PATH, mr.sha)
    assert [(s["name"], s["status"]) for s in statuses] == [("atlas/plan", "running"), ("atlas/plan", "success")]
    assert {s["pipeline_id"] for s in statuses} == {pipeline.id}
    assert statuses[-1]["target_url"] == "https://atlas/job/1" and statuses[-1]["ref"] == "feature/vpc"


def test_a_status_without_the_merge_request_makes_an_external_pipeline(
    world: GitLabEmulator, client: GitLabClient, repo: Repo
) -> None:
    sha = world.branch_sha(PATH, "main")
    assert sha is not None
    client.set_status(repo, sha, CommitState.FAILURE, "atlas/drift", "x" * 400)
    (status,) = world.statuses(PATH, sha)
    assert status["status"] == "failed" and len(status["description"]) == 255


def test_a_status_refused_for_another_reason_is_an_error(
    world: GitLabEmulator, client: GitLabClient, repo: Repo
) -> None:
    with pytest.raises(VCSError, match="404"):
        client.set_status(repo, "0" * 40, CommitState.SUCCESS, "atlas/plan", "done")


# Approvals and mergeability


def test_approvals_count_once_the_approval_rules_are_met(
    world: GitLabEmulator, client: GitLabClient, repo: Repo
) -> None:
    world.add_approval_rule(PATH, "Platform", 2, eligible=("bob", "carol", "dave"))
    world.approve(PATH, 1, "bob")
    world.approve(PATH, 1, "eve")
    assert client.approvals(repo, 1) == []
    world.approve(PATH, 1, "carol")
    assert client.approvals(repo, 1) == ["bob", "carol", "eve"]


def test_without_approval_rules_every_approval_counts(world: GitLabEmulator, client: GitLabClient, repo: Repo) -> None:
    assert client.approvals(repo, 1) == []
    world.approve(PATH, 1, "bob")
    assert client.approvals(repo, 1) == ["bob"]


def test_mergeable_follows_detailed_merge_status(world: GitLabEmulator, client: GitLabClient, repo: Repo) -> None:
    assert client.is_mergeable(repo, 1) is True
    world.add_approval_rule(PATH, "Any", 1)
    assert client.is_mergeable(repo, 1) is False
    world.approve(PATH, 1, "bob")
    world.set_merge_status(PATH, 1, "checking", "unchecked")
    assert client.is_mergeable(repo, 1) is True
    world.set_draft(PATH, 1, True)
    assert client.is_mergeable(repo, 1) is False


def test_a_pipeline_held_only_by_atlas_apply_counts_as_mergeable(
    world: GitLabEmulator, client: GitLabClient, repo: Repo
) -> None:
    world.require_pipeline_success(PATH)
    mr = world.merge_request(PATH, 1)
    assert client.is_mergeable(repo, 1, ignore_contexts=("atlas/apply",)) is False  # no pipeline: ci_must_pass
    client.set_status(repo, mr.sha, CommitState.SUCCESS, "atlas/plan", "planned", number=1)
    client.set_status(repo, mr.sha, CommitState.PENDING, "atlas/apply", "applying", number=1)
    assert client.is_mergeable(repo, 1) is False
    assert client.is_mergeable(repo, 1, ignore_contexts=("atlas/apply",)) is True
    client.set_status(repo, mr.sha, CommitState.FAILURE, "atlas/plan", "failed", number=1)
    assert client.is_mergeable(repo, 1, ignore_contexts=("atlas/apply",)) is False


# Merging


def test_merge_merges_exactly_the_planned_sha(world: GitLabEmulator, client: GitLabClient, repo: Repo) -> None:
    mr = world.merge_request(PATH, 1)
    with pytest.raises(VCSError, match="409 SHA does not match HEAD of source branch"):
        client.merge(repo, 1, "f" * 40)
    client.merge(repo, 1, mr.sha)
    assert mr.state == "merged" and mr.merged_by is not None and mr.merged_by.username == "atlas-bot"
    pull = client.get_pull(repo, 1)
    assert pull.merged and pull.merge_commit_sha == world.branch_sha(PATH, "main") and pull.merged_by == "atlas-bot"


def test_squash_merge_removes_the_source_branch_when_configured(world: GitLabEmulator, repo: Repo) -> None:
    client = GitLabClient(world.token, world.base_url, remove_source_branch=True)
    mr = world.merge_request(PATH, 1)
    client.merge(repo, 1, mr.sha, method="squash")
    assert mr.squash_commit_sha is not None
    assert world.branch_sha(PATH, "feature/vpc") is None


def test_an_unmergeable_merge_request_is_not_merged(world: GitLabEmulator, client: GitLabClient, repo: Repo) -> None:
    world.set_draft(PATH, 1, True)
    with pytest.raises(VCSError, match="405"):
        client.merge(repo, 1, world.merge_request(PATH, 1).sha)
    with pytest.raises(VCSError, match="rebase"):
        client.merge(repo, 1, world.merge_request(PATH, 1).sha, method="rebase")


def test_auto_merge_waits_for_the_pipeline(world: GitLabEmulator, client: GitLabClient, repo: Repo) -> None:
    world.require_pipeline_success(PATH)
    mr = world.merge_request(PATH, 1)
    client.set_status(repo, mr.sha, CommitState.PENDING, "atlas/apply", "applying", number=1)
    client.merge(repo, 1, mr.sha, auto_merge=True)
    assert mr.state == "opened" and mr.merge_when_pipeline_succeeds
    client.set_status(repo, mr.sha, CommitState.SUCCESS, "atlas/apply", "applied", number=1)
    assert mr.state == "merged"


# Issues, permissions, teams, identity


def test_drift_issues_are_created_found_updated_and_closed(
    world: GitLabEmulator, client: GitLabClient, repo: Repo
) -> None:
    created = client.create_issue(repo, "Drift in vpc", "2 resources differ", ["atlas-drift"])
    client.create_issue(repo, "Drift in vpc (old)", "other", ["atlas-drift"])
    assert (created.number, created.state, created.labels) == (1, "open", ("atlas-drift",))
    assert created.html_url == f"{world.base_url}/{PATH}/-/issues/1"
    found = client.find_issue(repo, "Drift in vpc", "atlas-drift")
    assert found is not None and found.number == 1
    assert client.find_issue(repo, "Drift in vpc", "other-label") is None
    client.update_issue(repo, 1, "3 resources differ")
    client.close_issue(repo, 1)
    assert world.issues(PATH)[0] | {} == {
        "iid": 1,
        "title": "Drift in vpc",
        "description": "3 resources differ",
        "labels": ["atlas-drift"],
        "state": "closed",
        "author": "atlas-bot",
    }
    assert client.find_issue(repo, "Drift in vpc", "atlas-drift") is None


def test_permission_maps_gitlab_roles_including_inherited_ones(
    world: GitLabEmulator, client: GitLabClient, repo: Repo
) -> None:
    world.add_member("platform", "olga", "owner")
    world.add_member(PATH, "dev", "developer")
    world.add_member(PATH, "rep", "reporter")
    world.add_member("platform/network", "gus", "guest")
    assert client.permission(repo, "olga") is Permission.ADMIN
    assert client.permission(repo, "atlas-bot") is Permission.MAINTAIN
    assert client.permission(repo, "dev") is Permission.WRITE
    assert client.permission(repo, "rep") is Permission.TRIAGE
    assert client.permission(repo, "gus") is Permission.READ
    world.add_user("stranger")
    assert client.permission(repo, "stranger") is Permission.NONE
    assert client.permission(repo, "nobody-at-all") is Permission.NONE


def test_team_membership_is_membership_of_the_group(world: GitLabEmulator, client: GitLabClient) -> None:
    world.add_member("platform/sre", "alice", "developer")
    world.add_user("bob")
    assert client.is_team_member("platform", "sre", "alice") is True
    assert client.is_team_member("platform", "sre", "bob") is False
    assert client.is_team_member("platform", "no-such-team", "alice") is False


def test_the_bot_is_the_tokens_user(world: GitLabEmulator, client: GitLabClient) -> None:
    assert client.username == "atlas-bot"


# Failures


def test_a_bad_token_is_a_401_that_never_shows_the_token(world: GitLabEmulator) -> None:
    client = GitLabClient("glpat-not-a-real-token", world.base_url)
    with pytest.raises(VCSError) as raised:
        client.get_repo(PATH)
    assert "401" in str(raised.value) and "glpat-not-a-real-token" not in str(raised.value)


def test_a_rate_limited_request_is_retried_after_retry_after(
    world: GitLabEmulator, client: GitLabClient, repo: Repo
) -> None:
    world.fail_next("POST", r"/notes$", 429, body="Retry later\n", headers={"Retry-After": "0"}, times=2)
    client.post_comment(repo, 1, "after the limit")
    assert [r.status for r in world.requests if r.path.endswith("/notes")] == [429, 429, 201]
    assert world.notes(PATH, 1)[0]["body"] == "after the limit"


def test_a_500_on_a_write_is_not_retried_but_a_read_is(world: GitLabEmulator, client: GitLabClient, repo: Repo) -> None:
    world.fail_next("POST", r"/notes$", 500)
    with pytest.raises(VCSError, match="500"):
        client.post_comment(repo, 1, "maybe created")
    assert [r.status for r in world.requests if r.path.endswith("/notes")] == [500]
    world.fail_next("GET", r"/merge_requests/1$", 502, times=2)
    assert client.get_pull(repo, 1).number == 1


def test_a_note_in_a_project_atlas_cannot_see_is_a_404(world: GitLabEmulator, client: GitLabClient, repo: Repo) -> None:
    world.project(PATH).members.pop(world.bot.id)
    with pytest.raises(VCSError, match="404 Project Not Found"):
        client.post_comment(repo, 1, "hello")


# Git over HTTP with the token in a header


def _git(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ["PATH"], "HOME": str(cwd), "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0"}
    return subprocess.run(["git", *args], cwd=cwd, env={**base, **env}, capture_output=True, text=True, check=False)


def test_git_clones_with_the_token_as_a_header_and_keeps_it_off_disk(world: GitLabEmulator, tmp_path: Path) -> None:
    url = project_clone_url(world.base_url, PATH)
    assert url == f"{world.base_url}/{PATH}.git"
    auth = git_http_auth(world.token)
    assert world.token in auth.secrets and world.token not in auth.header
    done = _git(["clone", "--quiet", url, "copy"], tmp_path, auth.environment({"credential.helper": ""}))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "copy" / "main.tf").read_text() == "# root\n"
    stored = "".join(p.read_text(errors="replace") for p in (tmp_path / "copy" / ".git").glob("config"))
    assert world.token not in stored and auth.secrets[1] not in stored and "oauth2" not in stored
    refused = _git(["clone", "--quiet", url, "again"], tmp_path, git_http_auth("glpat-wrong").environment())
    assert refused.returncode != 0 and "glpat-wrong" not in refused.stderr


def test_clone_urls_refuse_paths_that_are_not_projects() -> None:
    with pytest.raises(ValueError, match="group"):
        project_clone_url("https://gitlab.example.com", "lonely")
    with pytest.raises(ValueError, match="group"):
        project_clone_url("https://gitlab.example.com", "group/../etc")


def test_a_plan_comment_reads_as_gitlab_renders_it_alerts_as_bold_labels_and_collapsed_output_kept(
    world: GitLabEmulator, client: GitLabClient, repo: Repo
) -> None:
    plan = ("  # terraform_data.old will be destroyed\n  - resource \"terraform_data\" \"old\" {}\n"
            "> [!WARNING]\n\nPlan: 0 to add, 0 to change, 1 to destroy.\n")
    destroying = ProjectResult(project=Project(dir="vpc"), command=CommandName.PLAN, status=ProjectStatus.SUCCEEDED,
                               output=plan, summary=PlanSummary(destroy=1))
    body = render_plan_comment([destroying])
    assert "> [!WARNING]\n> This plan will **destroy** 1 resource." in body

    client.post_comment(repo, 1, body)
    client.comment_on_issue(repo, client.create_issue(repo, "Drift", "> [!NOTE]\n> body").number, "> [!TIP]\n> x")

    [note] = [n["body"] for n in world.notes(PATH, 1)]
    assert "> :warning: **Warning**\n> This plan will **destroy** 1 resource." in note
    assert "<details><summary>Show Output</summary>\n\n```diff\n" in note and "\n```\n\n</details>" in note
    assert "> [!WARNING]\n" in note.split("```diff", 1)[1].split("\n```", 1)[0], "the plan's own text is untouched"
    [issue] = world.issues(PATH)
    assert issue["description"] == "> :information_source: **Note**\n> body"
    assert world.issue_notes(PATH, 1)[-1]["body"] == "> :bulb: **Tip**\n> x"


def test_gitlab_markdown_leaves_every_fenced_block_and_other_text_alone() -> None:
    text = "~~~\n> [!NOTE]\n~~~\n````md\n```\n> [!CAUTION]\n```\n````\n> [!caution]\nplain [!NOTE]"
    assert gitlab_markdown(text) == (
        "~~~\n> [!NOTE]\n~~~\n````md\n```\n> [!CAUTION]\n```\n````\n> :octagonal_sign: **Caution**\nplain [!NOTE]")
