"""The GitHub emulator behaves like GitHub where atlas can tell: git access, pagination, limits."""

from __future__ import annotations

import base64
import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from github import Auth, Github, GithubException
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from tests.emulator import GitHubEmulator, deliver, sign, webhook_payload


def auth_header(token: str) -> str:
    return "Authorization: Basic " + base64.b64encode(f"x-access-token:{token}".encode()).decode()


def git(*args: str, cwd: Path | None = None, header: str | None = None) -> subprocess.CompletedProcess[str]:
    config = ["-c", f"http.extraHeader={header}"] if header else []
    return subprocess.run(
        ["git", *config, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={"GIT_TERMINAL_PROMPT": "0", "PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(cwd or "/tmp")},
        timeout=60,
    )


def pygithub(emulator: GitHubEmulator, token: str | None = None) -> Github:
    return Github(
        base_url=emulator.api_url,
        auth=Auth.Token(token or emulator.token),
        retry=None,
        seconds_between_requests=None,
        seconds_between_writes=None,
    )


def api(emulator: GitHubEmulator, method: str, path: str, **kwargs: Any) -> requests.Response:
    headers = {"Authorization": f"token {emulator.token}", **kwargs.pop("headers", {})}
    return requests.request(method, f"{emulator.api_url}{path}", headers=headers, timeout=10, **kwargs)


@pytest.fixture
def world(github_emulator: GitHubEmulator, tmp_path: Path) -> GitHubEmulator:
    source = tmp_path / "source"
    (source / "envs" / "prod").mkdir(parents=True)
    (source / "envs" / "prod" / "main.tf").write_text('backend "local" { path = "__STATE_DIR__/prod.tfstate" }\n')
    github_emulator.create_repo(
        "acme/infra",
        source_dir=source,
        files={"README.md": "infra\n"},
        substitutions={"__STATE_DIR__": "/tmp/state"},
    )
    return github_emulator


def test_clone_with_token_gets_the_committed_files(world: GitHubEmulator, tmp_path: Path) -> None:
    pull = world.open_pull("acme/infra", "add-dev", {"envs/dev/main.tf": "# dev\n"})
    clone = tmp_path / "clone"

    cloned = git("clone", world.repo("acme/infra").clone_url, str(clone), header=auth_header(world.token))
    fetched = git("fetch", "origin", "refs/pull/1/head", cwd=clone, header=auth_header(world.token))

    assert cloned.returncode == 0, cloned.stderr
    assert fetched.returncode == 0, fetched.stderr
    assert (clone / "envs/prod/main.tf").read_text() == 'backend "local" { path = "/tmp/state/prod.tfstate" }\n'
    assert git("rev-parse", "FETCH_HEAD", cwd=clone).stdout.strip() == pull.head_sha
    # The token went in a header, so nothing on disk holds it.
    assert world.token not in (clone / ".git" / "config").read_text()


def test_git_without_the_right_token_gets_401(world: GitHubEmulator, tmp_path: Path) -> None:
    url = world.repo("acme/infra").clone_url

    anonymous = git("clone", url, str(tmp_path / "a"))
    wrong_token = git("clone", url, str(tmp_path / "b"), header=auth_header("ghp_not-a-token"))
    wrong_user = requests.get(f"{url}/info/refs?service=git-upload-pack", auth=("octocat", world.token), timeout=10)

    assert anonymous.returncode != 0 and not (tmp_path / "a" / "README.md").exists()
    assert wrong_token.returncode != 0
    assert wrong_user.status_code == 401
    assert wrong_user.headers["WWW-Authenticate"] == 'Basic realm="GitHub"'
    assert [r.status for r in world.requests] == [401, 401, 401]


def test_push_over_http_moves_the_pull_request_and_large_fetches_work(world: GitHubEmulator, tmp_path: Path) -> None:
    # Enough pull requests that fetching all their heads makes git gzip its request.
    for number in range(40):
        world.open_pull("acme/infra", f"branch-{number}", {f"f{number}.tf": "x\n"})
    clone = tmp_path / "clone"
    header = auth_header(world.token)
    assert git("clone", world.repo("acme/infra").clone_url, str(clone), header=header).returncode == 0
    fetch = git("fetch", "origin", "+refs/pull/*/head:refs/remotes/pr/*", cwd=clone, header=header)
    assert fetch.returncode == 0, fetch.stderr
    git("checkout", "-q", "-b", "branch-0", "pr/1", cwd=clone)
    (clone / "more.tf").write_text("y\n")
    git("add", "more.tf", cwd=clone)
    git("-c", "user.name=T", "-c", "user.email=t@example.com", "commit", "-qm", "more", cwd=clone)

    pushed = git("push", "origin", "branch-0", cwd=clone, header=header)

    assert pushed.returncode == 0, pushed.stderr
    assert world.pull("acme/infra", 1).head_sha == git("rev-parse", "HEAD", cwd=clone).stdout.strip()


def test_pull_files_are_paginated_with_real_link_headers(world: GitHubEmulator) -> None:
    changes: dict[str, str | bytes | None] = {f"modules/m{i:03}/main.tf": f"# {i}\n" for i in range(150)}
    world.open_pull("acme/infra", "many", changes)

    first = api(world, "GET", "/repos/acme/infra/pulls/1/files", params={"per_page": 100})
    files = list(pygithub(world).get_repo("acme/infra").get_pull(1).get_files())

    assert len(first.json()) == 100
    links = requests.utils.parse_header_links(first.headers["Link"])
    assert {link["rel"] for link in links} == {"next", "last"}
    assert all(link["url"].startswith(world.api_url + "/repositories/") for link in links)
    assert sorted(f.filename for f in files) == sorted(changes)
    # PyGithub asked 30 per page by default and followed the links GitHub-style.
    pages = [r for r in world.requests if "/files" in r.path]
    assert len(pages) == 1 + 5


def test_changed_file_statuses_follow_git(world: GitHubEmulator) -> None:
    world.push_to_branch("acme/infra", "main", {"old/name.tf": "resource x {}\n" * 20})
    world.open_pull(
        "acme/infra",
        "moves",
        {"old/name.tf": None, "new/name.tf": "resource x {}\n" * 20, "README.md": None, "added.tf": "a\n"},
    )

    body = api(world, "GET", "/repos/acme/infra/pulls/1/files").json()

    statuses = {f["filename"]: (f["status"], f.get("previous_filename")) for f in body}
    assert statuses == {
        "new/name.tf": ("renamed", "old/name.tf"),
        "README.md": ("removed", None),
        "added.tf": ("added", None),
    }


def test_comment_over_65536_characters_gets_githubs_422(world: GitHubEmulator) -> None:
    world.open_pull("acme/infra", "feature", {"a.tf": "a\n"})

    answer = api(world, "POST", "/repos/acme/infra/issues/1/comments", json={"body": "x" * 65537})
    at_limit = api(world, "POST", "/repos/acme/infra/issues/1/comments", json={"body": "x" * 65536})

    assert answer.status_code == 422
    assert answer.json()["errors"][0]["message"] == "Body is too long (maximum is 65536 characters)"
    assert at_limit.status_code == 201
    assert at_limit.headers["Location"] == at_limit.json()["url"]
    assert [len(c["body"]) for c in world.comments("acme/infra", 1)] == [65536]


def test_api_needs_a_valid_token(world: GitHubEmulator) -> None:
    with pytest.raises(GithubException) as raised:
        pygithub(world, token="ghp_wrong").get_repo("acme/infra")

    assert raised.value.status == 401
    assert raised.value.data["message"] == "Bad credentials"


def test_merge_really_merges_and_refuses_like_github(world: GitHubEmulator, tmp_path: Path) -> None:
    pull = world.open_pull("acme/infra", "feature", {"feature.tf": "f\n"})
    stale = world.open_pull("acme/infra", "stale", {"stale.tf": "s\n"})
    world.push("acme/infra", stale.number, {"stale.tf": "s2\n"})
    conflict = world.open_pull("acme/infra", "conflict", {"README.md": "theirs\n"})
    world.push_to_branch("acme/infra", "main", {"README.md": "ours\n"})
    repo = pygithub(world).get_repo("acme/infra")

    merged = repo.get_pull(pull.number).merge(sha=pull.head_sha)
    with pytest.raises(GithubException) as moved:
        repo.get_pull(stale.number).merge(sha=stale.previous_head_sha or "")
    with pytest.raises(GithubException) as conflicting:
        repo.get_pull(conflict.number).merge()

    assert merged.merged
    main = world.repo("acme/infra").git
    assert main.resolve("refs/heads/main") == merged.sha == world.pull("acme/infra", 1).merge_commit_sha
    assert main.out("show", "main:feature.tf") == "f"
    assert repo.get_pull(pull.number).is_merged()
    assert (moved.value.status, moved.value.data["message"]) == (
        409,
        "Head branch was modified. Review and try the merge again.",
    )
    assert (conflicting.value.status, conflicting.value.data["message"]) == (
        405,
        "Pull Request is not mergeable",
    )
    assert repo.get_pull(conflict.number).mergeable_state == "dirty"


def test_combined_status_keeps_the_latest_per_context(world: GitHubEmulator) -> None:
    pull = world.open_pull("acme/infra", "feature", {"a.tf": "a\n"})
    commit = pygithub(world).get_repo("acme/infra").get_commit(pull.head_sha)
    commit.create_status("pending", context="atlas/plan", description="planning")
    commit.create_status("success", context="atlas/plan", description="planned")
    commit.create_status("failure", context="ci/lint", description="lint")

    combined = commit.get_combined_status()

    assert combined.state == "failure"
    assert {s.context: s.state for s in combined.statuses} == {"atlas/plan": "success", "ci/lint": "failure"}
    assert [s["state"] for s in world.statuses("acme/infra", pull.head_sha)] == [
        "pending",
        "success",
        "failure",
    ]


def test_injected_failures_answer_then_stop(world: GitHubEmulator) -> None:
    world.fail_next("GET", r"/repos/acme/infra$", 502, times=2)

    codes = [api(world, "GET", "/repos/acme/infra").status_code for _ in range(3)]

    assert codes == [502, 502, 200]


def test_webhook_payloads_describe_the_emulated_world(world: GitHubEmulator) -> None:
    world.add_org("acme")
    pull = world.open_pull("acme/infra", "from-fork", {"a.tf": "a\n"}, author="mallory", from_fork=True)

    opened = webhook_payload("pull_request", pull, "opened")
    comment = webhook_payload("issue_comment", pull, "created", body="atlas plan -d envs/prod", commenter="alice")
    closed = webhook_payload("pull_request", pull, "closed", merged=False)

    pr = opened["pull_request"]
    assert (opened["action"], opened["number"], pr["head"]["sha"]) == ("opened", 1, pull.head_sha)
    assert pr["head"]["repo"]["full_name"] == "mallory/infra" and pr["head"]["repo"]["fork"] is True
    assert pr["base"]["repo"]["clone_url"] == world.repo("acme/infra").clone_url
    assert opened["repository"]["html_url"] == f"{world.base_url}/acme/infra"
    assert comment["comment"]["body"] == "atlas plan -d envs/prod"
    assert comment["sender"]["login"] == comment["comment"]["user"]["login"] == "alice"
    assert comment["issue"]["pull_request"]["url"] == pull.url
    assert world.comments("acme/infra", 1)[0]["id"] == comment["comment"]["id"]
    assert closed["pull_request"]["state"] == "closed" and closed["pull_request"]["merged"] is False
    assert "api.github.com" not in json.dumps([opened, comment, closed])


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[Request]]]:
    received: list[Request] = []

    @Request.application
    def app(request: Request) -> Response:
        request.get_data()
        received.append(request)
        return Response("ok")

    server = make_server("127.0.0.1", 0, app)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/events", received
    server.shutdown()


def test_deliver_signs_the_exact_bytes_it_sends(receiver: tuple[str, list[Request]]) -> None:
    url, received = receiver

    deliver(url, "ping", {"zen": "Keep it logically awesome."}, secret="s3cret", delivery_id="abc")
    deliver(url, "ping", {"zen": "form"}, secret="s3cret", form_encoded=True)

    as_json, as_form = received
    assert as_json.headers["X-Hub-Signature-256"] == sign(as_json.get_data(), "s3cret")
    assert as_json.headers["X-GitHub-Event"] == "ping"
    assert as_json.headers["X-GitHub-Delivery"] == "abc"
    assert as_json.headers["User-Agent"].startswith("GitHub-Hookshot/")
    assert as_form.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert as_form.headers["X-Hub-Signature-256"] == sign(as_form.get_data(), "s3cret")
    assert json.loads(as_form.form["payload"]) == {"zen": "form"}


def test_sign_matches_githubs_documented_vector() -> None:
    assert sign(b"Hello, World!", "It's a Secret to Everybody") == (
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    )
