"""atlas's GitHub client against the emulator: every VCSClient method, pacing, retries, errors."""

from __future__ import annotations

import time

import pytest

from atlas.github.client import GitHubClient
from atlas.github.ratelimit import WriteBudget
from atlas.models import PullRequest, Repo
from atlas.vcs import ChangedFile, CommitState, FileStatus, Permission, VCSClient, VCSError
from tests.emulator import EmulatedPull, GitHubEmulator

SECONDARY_LIMIT = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."


def make_client(emulator: GitHubEmulator, **options: object) -> GitHubClient:
    settings: dict[str, object] = {
        "write_budget": WriteBudget(),
        "backoff_base": 0.01,
        "max_rate_limit_wait": 5,
    }
    settings.update(options)
    return GitHubClient(emulator.token, emulator.api_url, **settings)  # type: ignore[arg-type]


@pytest.fixture
def client(github_emulator: GitHubEmulator) -> GitHubClient:
    made = make_client(github_emulator)
    # mypy checks here that GitHubClient implements the whole protocol.
    _: VCSClient = made
    return made


@pytest.fixture
def pull(github_emulator: GitHubEmulator) -> EmulatedPull:
    github_emulator.create_repo("acme/infra", files={"envs/prod/main.tf": "# prod\n", "README.md": "hi\n"})
    return github_emulator.open_pull(
        "acme/infra",
        "add-staging",
        {"envs/staging/main.tf": "# staging\n"},
        title="Add staging",
        author="alice",
    )


@pytest.fixture
def repo(pull: EmulatedPull) -> Repo:
    return Repo(full_name="acme/infra", clone_url=pull.repo.clone_url, html_url=pull.repo.html_url)


def model(client: GitHubClient, repo: Repo, number: int = 1) -> PullRequest:
    return client.get_pull(repo, number)


# Reading


def test_get_pull_describes_the_pull_request(client: GitHubClient, repo: Repo, pull: EmulatedPull) -> None:
    got = client.get_pull(repo, 1)

    assert got.repo == Repo(
        full_name="acme/infra", clone_url=pull.repo.clone_url, html_url=pull.repo.html_url, private=True
    )
    assert (got.number, got.head_sha, got.head_ref, got.base_ref) == (1, pull.head_sha, "add-staging", "main")
    assert got.base_sha == pull.base_sha
    assert (got.author, got.title, got.is_draft, got.is_fork) == ("alice", "Add staging", False, False)
    assert got.html_url == pull.html_url
    assert got.head_clone_url == pull.repo.clone_url


def test_get_pull_knows_forks(client: GitHubClient, github_emulator: GitHubEmulator, repo: Repo) -> None:
    github_emulator.open_pull("acme/infra", "patch", {"a.tf": "a\n"}, author="mallory", from_fork=True, draft=True)

    got = client.get_pull(repo, 2)

    assert got.is_fork and got.is_draft
    assert got.head_clone_url == github_emulator.repo("mallory/infra").clone_url


def test_changed_files_reads_every_page(client: GitHubClient, github_emulator: GitHubEmulator, repo: Repo) -> None:
    changes: dict[str, str | bytes | None] = {f"modules/m{i:03}/main.tf": "x\n" for i in range(250)}
    changes["envs/prod/main.tf"] = None
    github_emulator.open_pull("acme/infra", "big", changes)

    files = client.changed_files(model(client, repo, 2))

    assert len(files) == 251
    assert ChangedFile(filename="envs/prod/main.tf", status=FileStatus.REMOVED) in files
    pages = [r.path for r in github_emulator.requests if "/files" in r.path]
    assert len(pages) == 3 and pages[0].endswith("per_page=100")


def test_changed_files_reports_renames(client: GitHubClient, github_emulator: GitHubEmulator, repo: Repo) -> None:
    github_emulator.push_to_branch("acme/infra", "main", {"old.tf": "resource x {}\n" * 10})
    github_emulator.open_pull("acme/infra", "rename", {"old.tf": None, "new.tf": "resource x {}\n" * 10})

    files = client.changed_files(model(client, repo, 2))

    assert files == [ChangedFile(filename="new.tf", status=FileStatus.RENAMED, previous_filename="old.tf")]


def test_permission_reads_the_role(client: GitHubClient, github_emulator: GitHubEmulator, repo: Repo) -> None:
    github_emulator.set_permission("acme/infra", "bob", "write")
    github_emulator.set_permission("acme/infra", "carol", "maintain")
    github_emulator.set_permission("acme/infra", "dave", "triage")

    assert client.permission(repo, "bob") is Permission.WRITE
    assert client.permission(repo, "carol") is Permission.MAINTAIN
    assert client.permission(repo, "dave") is Permission.TRIAGE
    assert client.permission(repo, "stranger") is Permission.NONE


def test_is_team_member(client: GitHubClient, github_emulator: GitHubEmulator) -> None:
    github_emulator.add_team("acme", "platform", members=["bob"])
    github_emulator.set_team_membership("acme", "platform", "erin", state="pending")

    assert client.is_team_member("acme", "platform", "bob")
    assert not client.is_team_member("acme", "platform", "erin")
    assert not client.is_team_member("acme", "platform", "mallory")
    assert not client.is_team_member("acme", "no-such-team", "bob")


def test_approvals_count_each_reviewers_latest_decision(
    client: GitHubClient, github_emulator: GitHubEmulator, repo: Repo
) -> None:
    github_emulator.add_review("acme/infra", 1, "bob", "APPROVED")
    github_emulator.add_review("acme/infra", 1, "bob", "COMMENTED")
    github_emulator.add_review("acme/infra", 1, "carol", "APPROVED")
    github_emulator.add_review("acme/infra", 1, "carol", "CHANGES_REQUESTED")
    github_emulator.add_review("acme/infra", 1, "dave", "CHANGES_REQUESTED")
    github_emulator.add_review("acme/infra", 1, "dave", "APPROVED")

    assert client.approvals(repo, 1) == ["bob", "dave"]


def test_is_mergeable_follows_github(client: GitHubClient, github_emulator: GitHubEmulator, repo: Repo) -> None:
    conflicting = github_emulator.open_pull("acme/infra", "conflict", {"README.md": "theirs\n"})
    github_emulator.push_to_branch("acme/infra", "main", {"README.md": "ours\n"})

    assert client.is_mergeable(repo, 1)
    assert not client.is_mergeable(repo, conflicting.number)


def test_is_mergeable_ignores_only_the_named_failing_contexts(
    client: GitHubClient, github_emulator: GitHubEmulator, repo: Repo, pull: EmulatedPull
) -> None:
    github_emulator.set_branch_protection("acme/infra", required_contexts=["atlas/apply", "ci/test"])
    github_emulator.create_status(pull.repo, pull.head_sha, "success", "ci/test", None, None, "ci")
    github_emulator.create_status(pull.repo, pull.head_sha, "pending", "atlas/apply", None, None, "atlas-bot")

    assert client.is_mergeable(repo, 1, ignore_contexts=("atlas/apply",))
    assert not client.is_mergeable(repo, 1)

    github_emulator.create_status(pull.repo, pull.head_sha, "failure", "ci/test", None, None, "ci")
    assert not client.is_mergeable(repo, 1, ignore_contexts=("atlas/apply",))


def test_is_mergeable_when_only_optional_statuses_fail(
    client: GitHubClient, github_emulator: GitHubEmulator, repo: Repo, pull: EmulatedPull
) -> None:
    github_emulator.create_status(pull.repo, pull.head_sha, "failure", "ci/optional", None, None, "ci")

    assert client.is_mergeable(repo, 1)


def test_is_mergeable_is_false_when_blocked_by_reviews(
    client: GitHubClient, github_emulator: GitHubEmulator, repo: Repo
) -> None:
    github_emulator.set_branch_protection("acme/infra", required_approvals=1)

    assert not client.is_mergeable(repo, 1, ignore_contexts=("atlas/apply",))
    github_emulator.add_review("acme/infra", 1, "bob", "APPROVED")
    assert client.is_mergeable(repo, 1)


def test_is_mergeable_waits_while_github_computes(github_emulator: GitHubEmulator, repo: Repo) -> None:
    client = make_client(github_emulator, mergeable_poll_interval=0.01)
    github_emulator.set_mergeable("acme/infra", 1, None)

    assert not client.is_mergeable(repo, 1)
    assert len([r for r in github_emulator.requests if r.path.endswith("/pulls/1")]) == 4


def test_list_comments(client: GitHubClient, github_emulator: GitHubEmulator, repo: Repo) -> None:
    github_emulator.add_comment("acme/infra", 1, "atlas plan", "alice")
    posted = client.post_comment(repo, 1, "Ran Plan for 1 project")

    listed = client.list_comments(repo, 1)

    assert [(login, body) for _, login, body in listed] == [
        ("alice", "atlas plan"),
        ("atlas-bot", "Ran Plan for 1 project"),
    ]
    assert listed[1][0] == posted


# Writing


def test_post_comment(client: GitHubClient, github_emulator: GitHubEmulator, repo: Repo) -> None:
    posted = client.post_comment(repo, 1, "Ran Plan")

    [comment] = github_emulator.comments("acme/infra", 1)
    assert (comment["id"], comment["body"], comment["user"]) == (posted.id, "Ran Plan", "atlas-bot")
    assert posted.node_id == comment["node_id"]
    assert posted.html_url == f"{github_emulator.base_url}/acme/infra/pull/1#issuecomment-{posted.id}"


def test_set_status(client: GitHubClient, github_emulator: GitHubEmulator, repo: Repo, pull: EmulatedPull) -> None:
    client.set_status(repo, pull.head_sha, CommitState.PENDING, "atlas/plan", "Planning…")
    client.set_status(
        repo,
        pull.head_sha,
        CommitState.SUCCESS,
        "atlas/plan",
        "x" * 200,
        target_url="https://atlas.example/1",
    )

    first, second = github_emulator.statuses("acme/infra", pull.head_sha)
    assert (first["state"], first["context"], first["description"]) == ("pending", "atlas/plan", "Planning…")
    assert first["target_url"] is None
    assert (second["state"], second["description"], second["target_url"]) == (
        "success",
        "x" * 139 + "…",
        "https://atlas.example/1",
    )
    assert second["creator"] == "atlas-bot"


def test_react_once_per_reaction(client: GitHubClient, github_emulator: GitHubEmulator, repo: Repo) -> None:
    comment = github_emulator.add_comment("acme/infra", 1, "atlas plan", "alice")

    client.react(repo, comment["id"], "eyes")
    client.react(repo, comment["id"], "eyes")

    assert github_emulator.comments("acme/infra", 1)[0]["reactions"] == [{"user": "atlas-bot", "content": "eyes"}]
    assert [r.status for r in github_emulator.requests if r.path.endswith("/reactions")] == [201, 200]


def test_merge(client: GitHubClient, github_emulator: GitHubEmulator, repo: Repo, pull: EmulatedPull) -> None:
    client.merge(repo, 1, pull.head_sha)

    merged = github_emulator.pull("acme/infra", 1)
    assert merged.merged and merged.state == "closed" and merged.merged_by == "atlas-bot"
    assert pull.repo.git.resolve("refs/heads/main") == merged.merge_commit_sha


def test_merge_refuses_a_moved_head(
    client: GitHubClient, github_emulator: GitHubEmulator, repo: Repo, pull: EmulatedPull
) -> None:
    planned = pull.head_sha
    github_emulator.push("acme/infra", 1, {"sneaky.tf": "resource x {}\n"})

    with pytest.raises(VCSError, match="409 Head branch was modified"):
        client.merge(repo, 1, planned)
    assert not github_emulator.pull("acme/infra", 1).merged


def test_hide_comment(client: GitHubClient, github_emulator: GitHubEmulator, repo: Repo) -> None:
    posted = client.post_comment(repo, 1, "old plan")

    client.hide_comment(posted.node_id)

    [comment] = github_emulator.comments("acme/infra", 1)
    assert comment["minimized"] and comment["classifier"] == "OUTDATED"
    assert github_emulator.requests[-1].path == "/api/graphql"
    with pytest.raises(VCSError, match="Could not resolve to a node"):
        client.hide_comment("IC_nope")


# Errors


def test_errors_carry_githubs_status_and_message_but_not_the_token(github_emulator: GitHubEmulator, repo: Repo) -> None:
    client = make_client(github_emulator)
    bad_token = "ghp_" + "0123456789abcdef" * 2
    stranger = GitHubClient(bad_token, github_emulator.api_url, write_budget=WriteBudget())

    with pytest.raises(VCSError) as too_long:
        client.post_comment(repo, 1, "x" * 70000)
    with pytest.raises(VCSError) as unauthorized:
        stranger.get_pull(repo, 1)
    with pytest.raises(VCSError) as missing:
        client.get_pull(repo, 99)

    assert "422 Validation Failed (Body is too long (maximum is 65536 characters))" in str(too_long.value)
    assert "401 Bad credentials" in str(unauthorized.value)
    assert "404 Not Found" in str(missing.value)
    for error in (too_long.value, unauthorized.value, missing.value):
        assert github_emulator.token not in str(error) and bad_token not in str(error)
    assert bad_token not in repr(stranger)


def test_unreachable_github_is_a_vcs_error(github_emulator: GitHubEmulator, repo: Repo) -> None:
    client = make_client(github_emulator, max_retries=1)
    github_emulator.stop()

    with pytest.raises(VCSError, match="ConnectionError"):
        client.get_pull(repo, 1)


# Pacing and retries


def test_a_burst_of_writes_is_not_slowed(client: GitHubClient, repo: Repo, pull: EmulatedPull) -> None:
    started = time.monotonic()
    for number in range(10):
        client.post_comment(repo, 1, f"comment {number}")
        client.set_status(repo, pull.head_sha, CommitState.PENDING, f"atlas/plan/{number}", "planning")
    elapsed = time.monotonic() - started

    # PyGithub's default pacing would have slept 20 s here.
    assert elapsed < 1.0


def test_write_budget_blocks_only_when_spent(github_emulator: GitHubEmulator, repo: Repo) -> None:
    client = make_client(github_emulator, write_budget=WriteBudget(limit=2, window=0.5))

    started = time.monotonic()
    client.post_comment(repo, 1, "one")
    client.post_comment(repo, 1, "two")
    after_two = time.monotonic() - started
    client.post_comment(repo, 1, "three")
    after_three = time.monotonic() - started

    assert after_two < 0.3
    assert 0.4 < after_three < 1.5
    assert len(github_emulator.comments("acme/infra", 1)) == 3


def test_write_budget_is_shared_per_token() -> None:
    assert WriteBudget.for_token("ghp_one") is WriteBudget.for_token("ghp_one")
    assert WriteBudget.for_token("ghp_one") is not WriteBudget.for_token("ghp_two")


def test_retry_after_is_honoured(client: GitHubClient, github_emulator: GitHubEmulator, repo: Repo) -> None:
    github_emulator.fail_next(
        "POST",
        r"/issues/1/comments$",
        403,
        body={"message": SECONDARY_LIMIT},
        headers={"Retry-After": "1"},
    )

    started = time.monotonic()
    client.post_comment(repo, 1, "after the wait")
    elapsed = time.monotonic() - started

    assert 0.9 < elapsed < 3
    assert [r.status for r in github_emulator.requests if r.path.endswith("/comments")] == [403, 201]
    assert len(github_emulator.comments("acme/infra", 1)) == 1


def test_primary_rate_limit_waits_for_the_reset(
    client: GitHubClient, github_emulator: GitHubEmulator, repo: Repo
) -> None:
    github_emulator.fail_next(
        "GET",
        r"/pulls/1$",
        403,
        body={"message": "API rate limit exceeded for user ID 1."},
        headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(time.time()))},
    )

    started = time.monotonic()
    client.get_pull(repo, 1)
    elapsed = time.monotonic() - started

    assert 0.5 < elapsed < 3
    assert [r.status for r in github_emulator.requests if r.path.endswith("/pulls/1")] == [403, 200]


def test_rate_limit_wait_is_capped(github_emulator: GitHubEmulator, repo: Repo) -> None:
    client = make_client(github_emulator, max_rate_limit_wait=0.2)
    github_emulator.fail_next("GET", r"/pulls/1$", 429, headers={"Retry-After": "3600"})

    started = time.monotonic()
    client.get_pull(repo, 1)

    assert time.monotonic() - started < 1.5


def test_a_forbidden_answer_is_not_retried(client: GitHubClient, github_emulator: GitHubEmulator, repo: Repo) -> None:
    github_emulator.fail_next("POST", r"/comments$", 403, body={"message": "Resource not accessible by integration"})

    with pytest.raises(VCSError, match="403 Resource not accessible by integration"):
        client.post_comment(repo, 1, "no")
    assert [r.status for r in github_emulator.requests if r.path.endswith("/comments")] == [403]


def test_bad_gateway_is_retried_for_writes(client: GitHubClient, github_emulator: GitHubEmulator, repo: Repo) -> None:
    github_emulator.fail_next("POST", r"/issues/1/comments$", 502, times=2)

    client.post_comment(repo, 1, "eventually")

    assert [r.status for r in github_emulator.requests if r.path.endswith("/comments")] == [502, 502, 201]
    assert [c["body"] for c in github_emulator.comments("acme/infra", 1)] == ["eventually"]


def test_server_error_on_a_write_is_not_retried(
    client: GitHubClient, github_emulator: GitHubEmulator, repo: Repo
) -> None:
    github_emulator.fail_next("POST", r"/issues/1/comments$", 500)

    with pytest.raises(VCSError, match="500"):
        client.post_comment(repo, 1, "maybe created")
    assert [r.status for r in github_emulator.requests if r.path.endswith("/comments")] == [500]


def test_server_errors_on_reads_are_retried_a_bounded_number_of_times(
    github_emulator: GitHubEmulator, repo: Repo
) -> None:
    client = make_client(github_emulator, max_retries=2)
    github_emulator.fail_next("GET", r"/pulls/1$", 500, times=100)

    started = time.monotonic()
    with pytest.raises(VCSError, match="GitHub reading pull request acme/infra#1 failed: 500"):
        client.get_pull(repo, 1)

    assert time.monotonic() - started < 1
    assert [r.status for r in github_emulator.requests if r.path.endswith("/pulls/1")] == [500, 500, 500]
