"""The GitLab emulator answers as GitLab documents it: python-gitlab, raw HTTP and git against it."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import gitlab
import pytest
import requests

from tests.gitlab_emulator import MERGE_REQUEST_HOOK, NOTE_HOOK, GitLabEmulator, deliver, merge_request_hook, note_hook
from tests.gitlab_emulator.responses import example

PATH = "platform/network/core"
ENCODED = "platform%2Fnetwork%2Fcore"


@pytest.fixture
def world(gitlab_emulator: GitLabEmulator) -> GitLabEmulator:
    gitlab_emulator.create_project(PATH, {"main.tf": "# root\n"})
    gitlab_emulator.open_merge_request(PATH, "feature", {f"m{i}.tf": f"{i}\n" for i in range(5)}, author="alice")
    return gitlab_emulator


@pytest.fixture
def gl(world: GitLabEmulator) -> gitlab.Gitlab:
    return gitlab.Gitlab(world.base_url, private_token=world.token)


def _get(world: GitLabEmulator, path: str, **headers: str) -> requests.Response:
    return requests.get(f"{world.api_url}{path}", headers={"PRIVATE-TOKEN": world.token, **headers}, timeout=10)


def test_every_api_request_needs_a_valid_token(world: GitLabEmulator) -> None:
    assert requests.get(f"{world.api_url}/user", timeout=10).json() == {"message": "401 Unauthorized"}
    bad = requests.get(f"{world.api_url}/user", headers={"PRIVATE-TOKEN": "nope"}, timeout=10)
    assert bad.status_code == 401
    bearer = requests.get(f"{world.api_url}/user", headers={"Authorization": f"Bearer {world.token}"}, timeout=10)
    assert bearer.json()["username"] == "atlas-bot"


def test_the_current_user_has_the_documented_shape(gl: gitlab.Gitlab) -> None:
    gl.auth()
    assert gl.user is not None and gl.user.username == "atlas-bot"
    assert set(example("api/user")) <= set(gl.user.asdict())


def test_projects_are_found_by_id_or_encoded_path_but_not_by_a_literal_path(world: GitLabEmulator) -> None:
    project_id = world.project(PATH).id
    by_path = _get(world, f"/projects/{ENCODED}").json()
    assert by_path["id"] == project_id and by_path["path_with_namespace"] == PATH
    assert by_path["namespace"]["full_path"] == "platform/network"
    assert set(example("api/project")) <= set(by_path)
    assert _get(world, f"/projects/{project_id}").json()["id"] == project_id
    literal = _get(world, f"/projects/{PATH}")
    assert literal.status_code == 404
    assert _get(world, "/projects/nope%2Fnothing").json() == {"message": "404 Project Not Found"}


def test_a_private_project_is_a_404_for_non_members(world: GitLabEmulator) -> None:
    world.add_token("glpat-outsider", "outsider")
    assert _get(world, f"/projects/{ENCODED}", **{"PRIVATE-TOKEN": "glpat-outsider"}).status_code == 404


def test_merge_requests_have_the_documented_shape(world: GitLabEmulator, gl: gitlab.Gitlab) -> None:
    mr = gl.projects.get(PATH, lazy=True).mergerequests.get(1)
    assert set(example("api/merge_request")) <= set(mr.asdict())
    assert (mr.iid, mr.state, mr.detailed_merge_status, mr.source_branch) == (1, "opened", "mergeable", "feature")
    assert mr.sha == world.merge_request(PATH, 1).sha and mr.head_pipeline is None
    assert mr.references["full"] == f"{PATH}!1"


def test_diffs_are_paginated_the_way_gitlab_does(world: GitLabEmulator) -> None:
    first = _get(world, f"/projects/{ENCODED}/merge_requests/1/diffs?per_page=2")
    assert [d["new_path"] for d in first.json()] == ["m0.tf", "m1.tf"]
    assert set(example("api/merge_request_diffs")[0]) == set(first.json()[0])
    assert first.json()[0]["new_file"] is True
    headers = first.headers
    assert (headers["X-Page"], headers["X-Next-Page"], headers["X-Total"], headers["X-Total-Pages"]) == (
        "1",
        "2",
        "5",
        "3",
    )
    project_id = world.project(PATH).id
    assert f'/projects/{project_id}/merge_requests/1/diffs?page=2&per_page=2>; rel="next"' in headers["Link"]
    last = _get(world, f"/projects/{ENCODED}/merge_requests/1/diffs?per_page=2&page=3")
    assert [d["new_path"] for d in last.json()] == ["m4.tf"] and last.headers["X-Next-Page"] == ""


def test_python_gitlab_reads_every_page(world: GitLabEmulator, gl: gitlab.Gitlab) -> None:
    found = gl.http_list(f"/projects/{ENCODED}/merge_requests/1/diffs", per_page=2, get_all=True)
    assert len(list(found)) == 5


def test_notes_are_created_listed_and_updated_and_limited(world: GitLabEmulator, gl: gitlab.Gitlab) -> None:
    mr = gl.projects.get(PATH, lazy=True).mergerequests.get(1, lazy=True)
    note = mr.notes.create({"body": "first"})
    assert set(example("api/note")) <= set(note.asdict())
    assert (note.noteable_type, note.noteable_iid, note.author["username"]) == ("MergeRequest", 1, "atlas-bot")
    note.body = "edited"
    note.save()
    world.add_note(PATH, 1, "second", "bob")
    assert [n.body for n in mr.notes.list(get_all=True)] == ["second", "edited"]
    with pytest.raises(gitlab.GitlabCreateError) as too_long:
        mr.notes.create({"body": "x" * 1_000_001})
    assert too_long.value.response_code == 400 and "too long" in str(too_long.value.error_message)


def test_only_the_author_edits_a_note(world: GitLabEmulator, gl: gitlab.Gitlab) -> None:
    theirs = world.add_note(PATH, 1, "bob's", "bob")
    mr = gl.projects.get(PATH, lazy=True).mergerequests.get(1, lazy=True)
    with pytest.raises(gitlab.GitlabUpdateError) as refused:
        mr.notes.update(theirs.id, {"body": "mine now"})
    assert refused.value.response_code == 403


def test_award_emoji_on_merge_requests_and_notes(world: GitLabEmulator, gl: gitlab.Gitlab) -> None:
    mr = gl.projects.get(PATH, lazy=True).mergerequests.get(1, lazy=True)
    award = mr.awardemojis.create({"name": "thumbsup"})
    assert set(example("api/award_emoji")) <= set(award.asdict()) and award.awardable_type == "MergeRequest"
    note = mr.notes.create({"body": "atlas plan"})
    on_note = note.awardemojis.create({"name": "eyes"})
    assert (on_note.awardable_type, on_note.awardable_id) == ("Note", note.id)
    with pytest.raises(gitlab.GitlabCreateError) as twice:
        note.awardemojis.create({"name": "eyes"})
    assert twice.value.response_code == 404 and "already been taken" in str(twice.value.error_message)
    assert [a.name for a in note.awardemojis.list()] == ["eyes"]


def test_commit_statuses_are_created_and_listed(world: GitLabEmulator, gl: gitlab.Gitlab) -> None:
    sha = world.merge_request(PATH, 1).sha
    project = gl.projects.get(PATH, lazy=True)
    commit = project.commits.get(sha, lazy=True)
    status = commit.statuses.create({"state": "running", "name": "atlas/plan", "description": "planning"})
    assert set(example("api/commit_status")) <= set(status.asdict())
    with pytest.raises(gitlab.GitlabCreateError) as again:
        commit.statuses.create({"state": "running", "name": "atlas/plan"})
    assert "Cannot transition status via :run from :running" in str(again.value.error_message)
    commit.statuses.create({"state": "success", "name": "atlas/plan"})
    assert [(s.name, s.status) for s in commit.statuses.list()] == [("atlas/plan", "success")]
    every = _get(world, f"/projects/{ENCODED}/repository/commits/{sha}/statuses?all=true").json()
    assert [s["status"] for s in every] == ["running", "success"]
    mr = project.mergerequests.get(1)
    assert mr.head_pipeline["status"] == "success" and mr.head_pipeline["source"] == "external"


def test_approvals_and_approval_state(world: GitLabEmulator, gl: gitlab.Gitlab) -> None:
    world.add_approval_rule(PATH, "Platform", 1, eligible=("bob",))
    world.approve(PATH, 1, "carol")
    mr = gl.projects.get(PATH, lazy=True).mergerequests.get(1, lazy=True)
    approvals = mr.approvals.get()
    assert set(example("api/merge_request_approvals")) <= set(approvals.asdict())
    assert (approvals.approvals_required, approvals.approvals_left, approvals.approved) == (1, 1, False)
    assert [a["user"]["username"] for a in approvals.approved_by] == ["carol"]
    world.approve(PATH, 1, "bob")
    state = mr.approval_state.get()
    (rule,) = state.rules
    assert set(example("api/merge_request_approval_state")["rules"][0]) <= set(rule)
    assert rule["approved"] is True and [u["username"] for u in rule["approved_by"]] == ["bob"]
    assert gl.projects.get(PATH, lazy=True).mergerequests.get(1).detailed_merge_status == "mergeable"


def test_merge_answers_gitlabs_refusals_and_merges(world: GitLabEmulator, gl: gitlab.Gitlab) -> None:
    project = gl.projects.get(PATH, lazy=True)
    mr = project.mergerequests.get(1)
    with pytest.raises(gitlab.GitlabMRClosedError) as moved:
        mr.merge(sha="0" * 40)
    assert moved.value.response_code == 409
    world.push_to_branch(PATH, "main", {"m0.tf": "conflict\n"})
    with pytest.raises(gitlab.GitlabMRClosedError) as conflict:
        project.mergerequests.get(1).merge()
    assert conflict.value.response_code == 422
    assert project.mergerequests.get(1).detailed_merge_status == "conflict"
    world.open_merge_request(PATH, "clean", {"other.tf": "\n"})
    clean = project.mergerequests.get(2)
    clean.merge(should_remove_source_branch=True, squash=True)
    assert clean.state == "merged" and clean.squash_commit_sha and clean.merge_commit_sha
    assert world.branch_sha(PATH, "clean") is None
    assert world.project(PATH).git.git("cat-file", "-e", "refs/heads/main:other.tf", check=False).returncode == 0


def test_issues_are_created_listed_and_updated(world: GitLabEmulator, gl: gitlab.Gitlab) -> None:
    project = gl.projects.get(PATH, lazy=True)
    issue = project.issues.create({"title": "Drift in vpc", "description": "differs", "labels": "atlas-drift,infra"})
    assert set(example("api/issue")) <= set(issue.asdict())
    assert (issue.iid, issue.state, issue.labels) == (1, "opened", ["atlas-drift", "infra"])
    project.issues.create({"title": "Unrelated"})
    assert [i.iid for i in project.issues.list(labels="atlas-drift", state="opened")] == [1]
    issue.state_event = "close"
    issue.save()
    assert world.issues(PATH)[0]["state"] == "closed"
    assert project.issues.list(labels="atlas-drift", state="opened") == []


def test_members_are_inherited_from_parent_groups(world: GitLabEmulator) -> None:
    world.add_member("platform", "olga", "maintainer")
    olga = world.user("olga")
    member = _get(world, f"/projects/{ENCODED}/members/all/{olga.id}").json()
    assert member["access_level"] == 40 and set(example("api/member")) <= set(member)
    assert _get(world, f"/groups/platform%2Fnetwork/members/all/{olga.id}").json()["access_level"] == 40
    assert _get(world, f"/projects/{ENCODED}/members/all/{world.user('nobody').id}").status_code == 404


def test_injected_failures_answer_in_place_of_the_endpoint(world: GitLabEmulator) -> None:
    world.fail_next("GET", rf"/projects/{ENCODED}$", 503, headers={"Retry-After": "1"})
    failed = _get(world, f"/projects/{ENCODED}")
    assert failed.status_code == 503 and failed.headers["Retry-After"] == "1"
    assert _get(world, f"/projects/{ENCODED}").status_code == 200


# Webhooks


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Receiver.received.append((dict(self.headers.items()), json.loads(body)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Any:
    _Receiver.received = []
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/events", _Receiver.received
    server.shutdown()
    server.server_close()


def test_deliveries_carry_gitlabs_headers(world: GitLabEmulator, receiver: Any) -> None:
    url, received = receiver
    payload = merge_request_hook(world, PATH, 1, "open")
    deliver(url, MERGE_REQUEST_HOOK, payload, secret="s3cret", event_uuid="0b5e3c36-1111-4d2b-9f55-fb7d8e2d0a4c")
    deliver(url, MERGE_REQUEST_HOOK, payload, secret="s3cret", event_uuid="0b5e3c36-1111-4d2b-9f55-fb7d8e2d0a4c")
    (first, body), (again, _) = received
    assert first["X-Gitlab-Event"] == "Merge Request Hook" and first["X-Gitlab-Token"] == "s3cret"
    assert first["X-Gitlab-Event-UUID"] == again["X-Gitlab-Event-UUID"]
    assert body["object_attributes"]["iid"] == 1
    deliver(url, NOTE_HOOK, note_hook(world, PATH, 1, world.add_note(PATH, 1, "atlas plan", "bob")))
    assert "X-Gitlab-Token" not in received[-1][0]
    assert received[-1][0]["X-Gitlab-Event-UUID"] != first["X-Gitlab-Event-UUID"]


def test_hook_payloads_keep_the_documented_shape(world: GitLabEmulator) -> None:
    documented = example("webhooks/merge_request")
    payload = merge_request_hook(world, PATH, 1, "update", oldrev="a" * 40)
    assert set(documented) <= set(payload)
    assert set(documented["object_attributes"]) <= set(payload["object_attributes"])
    assert payload["object_attributes"]["oldrev"] == "a" * 40
    assert payload["object_attributes"]["last_commit"]["id"] == world.merge_request(PATH, 1).sha
    assert payload["project"]["path_with_namespace"] == PATH
    note = note_hook(world, PATH, 1, world.add_note(PATH, 1, "hi", "bob"))
    documented_note = example("webhooks/note.merge_request")
    assert set(documented_note) <= set(note)
    assert set(documented_note["merge_request"]) <= set(note["merge_request"])
    assert "oldrev" not in merge_request_hook(world, PATH, 1, "update")["object_attributes"]
    with pytest.raises(ValueError, match="no merge request action"):
        merge_request_hook(world, PATH, 1, "synchronize")


# Git over smart HTTP


def _git(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(cwd),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@e",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@e",
    }
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)


def test_git_checks_the_oauth2_token_and_pushes_move_merge_requests(world: GitLabEmulator, tmp_path: Path) -> None:
    host = world.base_url.removeprefix("http://")
    assert _git(["clone", "--quiet", f"{world.base_url}/{PATH}.git", "anon"], tmp_path).returncode != 0
    wrong_user = _git(["clone", "--quiet", f"http://x-access-token:{world.token}@{host}/{PATH}.git", "w"], tmp_path)
    assert wrong_user.returncode != 0
    url = f"http://oauth2:{world.token}@{host}/{PATH}.git"
    assert _git(["clone", "--quiet", "--branch", "feature", url, "copy"], tmp_path).returncode == 0
    copy = tmp_path / "copy"
    (copy / "new.tf").write_text("# new\n")
    assert _git(["add", "new.tf"], copy).returncode == 0
    assert _git(["commit", "--quiet", "-m", "more"], copy).returncode == 0
    pushed = _git(["push", "--quiet", "origin", "feature"], copy)
    assert pushed.returncode == 0, pushed.stderr
    head = _git(["rev-parse", "HEAD"], copy).stdout.strip()
    mr = world.merge_request(PATH, 1)
    assert mr.sha == head and mr.previous_sha is not None
    assert world.project(PATH).git.resolve("refs/merge-requests/1/head") == head


def test_public_projects_clone_without_a_token(world: GitLabEmulator, tmp_path: Path) -> None:
    world.create_project("oss/tools", {"README.md": "hi\n"}, visibility="public")
    assert _git(["clone", "--quiet", f"{world.base_url}/oss/tools.git", "t"], tmp_path).returncode == 0
