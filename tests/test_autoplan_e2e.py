"""A signed pull_request webhook becomes a plan comment and a commit status, through real parts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.atlas_plugin import FIXTURES, RunningAtlas, assert_golden, normalise
from tests.emulator import EmulatedRepo, GitHubEmulator, webhook_payload

APP_CHANGE = {
    "app/main.tf": (FIXTURES / "multi-project/app/main.tf").read_text().replace("replicas = 2", "replicas = 3")
}


def plan_statuses(emulator: GitHubEmulator, repo: str, sha: str) -> list[tuple[str, str]]:
    return [(s["state"], s["description"]) for s in emulator.statuses(repo, sha) if s["context"] == "atlas/plan"]


def comment_bodies(emulator: GitHubEmulator, repo: str, number: int) -> list[str]:
    return [c["body"] for c in emulator.comments(repo, number)]


def test_opened_pull_request_gets_plan_comment_and_status_for_the_touched_project_only(
    start_atlas: Callable[..., RunningAtlas],
    fixture_repo: Callable[..., EmulatedRepo],
    github_emulator: GitHubEmulator,
    state_dir: Path,
) -> None:
    atlas = start_atlas()
    fixture_repo("multi-project")
    pull = github_emulator.open_pull("acme/infra", "more-replicas", APP_CHANGE)

    response = atlas.pull_event(pull, "opened")
    assert response.status_code == 202, response.text
    assert "queued autoplan" in response.text
    atlas.wait_idle()

    [body] = comment_bodies(github_emulator, "acme/infra", pull.number)
    assert "Ran Plan for dir: `app` workspace: `default`" in body
    assert "Plan: 1 to add, 0 to change, 0 to destroy." in body
    assert "`db`" not in body
    assert "atlas apply -d app" in body
    assert "```diff" in body
    assert plan_statuses(github_emulator, "acme/infra", pull.head_sha) == [
        ("pending", "Planning…"),
        ("success", "1/1 projects planned"),
    ]
    assert_golden(
        normalise(body, data_dir=atlas.settings.data_dir, extra={str(state_dir): "<STATE_DIR>"}),
        FIXTURES / "multi-project/expected/plan-app.md",
    )


def test_module_change_plans_every_root_module_that_uses_it(
    start_atlas: Callable[..., RunningAtlas],
    fixture_repo: Callable[..., EmulatedRepo],
    github_emulator: GitHubEmulator,
    state_dir: Path,
) -> None:
    atlas = start_atlas()
    fixture_repo("multi-project")
    label = (FIXTURES / "multi-project/modules/label/main.tf").read_text()
    pull = github_emulator.open_pull(
        "acme/infra",
        "label-format",
        {
            "modules/label/main.tf": label.replace(
                '"${var.environment}-${var.name}"', '"${var.name}-${var.environment}"'
            ),
        },
    )

    assert atlas.pull_event(pull).status_code == 202
    atlas.wait_idle()

    [body] = comment_bodies(github_emulator, "acme/infra", pull.number)
    assert "Ran Plan for 2 projects" in body
    assert "dir: `app` workspace: `default`" in body
    assert "dir: `db` workspace: `default`" in body
    assert plan_statuses(github_emulator, "acme/infra", pull.head_sha)[-1] == ("success", "2/2 projects planned")
    assert_golden(
        normalise(body, data_dir=atlas.settings.data_dir, extra={str(state_dir): "<STATE_DIR>"}),
        FIXTURES / "multi-project/expected/plan-module-change.md",
    )


def test_failing_plan_gives_error_comment_and_failure_status(
    start_atlas: Callable[..., RunningAtlas],
    fixture_repo: Callable[..., EmulatedRepo],
    github_emulator: GitHubEmulator,
    state_dir: Path,
) -> None:
    atlas = start_atlas()
    fixture_repo("failing")
    broken = (FIXTURES / "failing/broken/main.tf").read_text()
    healthy = (FIXTURES / "failing/healthy/main.tf").read_text()
    pull = github_emulator.open_pull(
        "acme/infra",
        "break-it",
        {
            "broken/main.tf": broken.replace('"eighty"', '"eighty-one"'),
            "healthy/main.tf": healthy.replace('"healthy"', '"still healthy"'),
        },
    )

    assert atlas.pull_event(pull).status_code == 202
    atlas.wait_idle()

    [body] = comment_bodies(github_emulator, "acme/infra", pull.number)
    assert "**Plan Error**" in body
    assert "Error: Invalid function argument" in body
    assert "Traceback" not in body
    assert "Plan: 1 to add, 0 to change, 0 to destroy." in body  # the healthy project still planned
    assert plan_statuses(github_emulator, "acme/infra", pull.head_sha)[-1] == (
        "failure",
        "1/2 projects planned, 1 failed",
    )
    assert_golden(
        normalise(body, data_dir=atlas.settings.data_dir, extra={str(state_dir): "<STATE_DIR>"}),
        FIXTURES / "failing/expected/plan-error.md",
    )


def test_plan_longer_than_a_github_comment_comes_in_numbered_parts(
    start_atlas: Callable[..., RunningAtlas],
    fixture_repo: Callable[..., EmulatedRepo],
    github_emulator: GitHubEmulator,
) -> None:
    atlas = start_atlas()
    fixture_repo("long-plan")
    main_tf = (FIXTURES / "long-plan/main.tf").read_text()
    pull = github_emulator.open_pull("acme/infra", "more", {"main.tf": main_tf.replace("count = 240", "count = 250")})

    assert atlas.pull_event(pull).status_code == 202
    atlas.wait_idle()

    bodies = comment_bodies(github_emulator, "acme/infra", pull.number)
    assert len(bodies) >= 2
    assert all(len(b) <= 65536 for b in bodies)
    for number, body in enumerate(bodies, start=1):
        assert f"part {number} of {len(bodies)}" in body
        assert body.count("```") % 2 == 0, "every part closes the fences it opens"
    whole = "".join(bodies)
    assert "Plan: 250 to add, 0 to change, 0 to destroy." in whole
    for index in (0, 124, 249):
        assert f"terraform_data.server[{index}]" in whole, "no resource is cut from the plan"
    assert plan_statuses(github_emulator, "acme/infra", pull.head_sha)[-1] == ("success", "1/1 projects planned")


def test_pull_request_without_terraform_changes_gets_success_status_and_no_comment(
    start_atlas: Callable[..., RunningAtlas],
    fixture_repo: Callable[..., EmulatedRepo],
    github_emulator: GitHubEmulator,
) -> None:
    atlas = start_atlas()
    fixture_repo("multi-project")
    pull = github_emulator.open_pull("acme/infra", "docs", {"multi-project-notes.md": "notes\n"})

    assert atlas.pull_event(pull).status_code == 202
    atlas.wait_idle()

    assert comment_bodies(github_emulator, "acme/infra", pull.number) == []
    assert plan_statuses(github_emulator, "acme/infra", pull.head_sha)[-1] == (
        "success",
        "no Terraform projects changed",
    )


def test_push_to_the_pull_request_replans_at_the_new_head(
    start_atlas: Callable[..., RunningAtlas],
    fixture_repo: Callable[..., EmulatedRepo],
    github_emulator: GitHubEmulator,
) -> None:
    atlas = start_atlas()
    fixture_repo("multi-project")
    pull = github_emulator.open_pull("acme/infra", "more-replicas", APP_CHANGE)
    assert atlas.pull_event(pull).status_code == 202
    atlas.wait_idle()
    db = (FIXTURES / "multi-project/db/main.tf").read_text()
    new_head = github_emulator.push("acme/infra", pull.number, {"db/main.tf": db.replace('"production"', '"staging"')})

    assert atlas.pull_event(github_emulator.pull("acme/infra", pull.number), "synchronize").status_code == 202
    atlas.wait_idle()

    bodies = comment_bodies(github_emulator, "acme/infra", pull.number)
    assert len(bodies) == 2
    assert "Ran Plan for 2 projects" in bodies[1]
    assert plan_statuses(github_emulator, "acme/infra", new_head)[-1] == ("success", "2/2 projects planned")


def test_redelivered_delivery_runs_once(
    start_atlas: Callable[..., RunningAtlas],
    fixture_repo: Callable[..., EmulatedRepo],
    github_emulator: GitHubEmulator,
) -> None:
    atlas = start_atlas()
    fixture_repo("multi-project")
    pull = github_emulator.open_pull("acme/infra", "more-replicas", APP_CHANGE)

    first = atlas.pull_event(pull, delivery_id="72d3162e-cc78-11e3-81ab-4c9367dc0958")
    again = atlas.pull_event(pull, delivery_id="72d3162e-cc78-11e3-81ab-4c9367dc0958")
    atlas.wait_idle()

    assert first.status_code == 202
    assert again.status_code == 200
    assert "already accepted" in again.text
    assert len(comment_bodies(github_emulator, "acme/infra", pull.number)) == 1


def test_closing_the_pull_request_deletes_its_working_copies_and_plans(
    start_atlas: Callable[..., RunningAtlas],
    fixture_repo: Callable[..., EmulatedRepo],
    github_emulator: GitHubEmulator,
) -> None:
    atlas = start_atlas()
    fixture_repo("multi-project")
    pull = github_emulator.open_pull("acme/infra", "more-replicas", APP_CHANGE)
    atlas.pull_event(pull)
    atlas.wait_idle()
    data_dir = atlas.settings.data_dir
    assert list((data_dir / "repos").rglob("main.tf"))
    assert list((data_dir / "plans").rglob("*.tfplan"))

    assert atlas.pull_event(pull, "closed").status_code == 202
    atlas.wait_idle()

    assert not list((data_dir / "repos").rglob("main.tf"))
    assert not list((data_dir / "plans").rglob("*.tfplan"))
    assert atlas.app.config["ATLAS_STATE"].plans("acme/infra", pull.number) == []


def test_token_is_nowhere_on_disk_or_in_logs_after_a_run(
    start_atlas: Callable[..., RunningAtlas],
    fixture_repo: Callable[..., EmulatedRepo],
    github_emulator: GitHubEmulator,
) -> None:
    atlas = start_atlas()
    fixture_repo("multi-project")
    pull = github_emulator.open_pull("acme/infra", "more-replicas", APP_CHANGE)
    atlas.pull_event(pull)
    atlas.wait_idle()
    token = github_emulator.token.encode()
    secret = atlas.settings.gh_webhook_secret.get_secret_value().encode()  # type: ignore[union-attr]

    leaks = []
    for path in atlas.settings.data_dir.rglob("*"):
        if path.is_file() and not path.is_symlink():
            content = path.read_bytes()
            if token in content or secret in content:
                leaks.append(str(path))
    assert leaks == []
    assert github_emulator.token not in atlas.log_text()
    assert "x-access-token" not in atlas.log_text()
    assert list(atlas.settings.data_dir.rglob(".mirrors/*/*.git/config")), "the working copy exists and was searched"
    assert all(github_emulator.token not in c["body"] for c in github_emulator.comments("acme/infra", pull.number))


def test_one_autoplan_checks_out_once_and_writes_one_plan_header(
    start_atlas: Callable[..., RunningAtlas],
    fixture_repo: Callable[..., EmulatedRepo],
    github_emulator: GitHubEmulator,
) -> None:
    atlas = start_atlas()
    fixture_repo("multi-project")
    pull = github_emulator.open_pull("acme/infra", "more-replicas", APP_CHANGE)

    atlas.pull_event(pull, "opened")
    atlas.wait_idle()

    [job_log] = sorted((atlas.settings.data_dir / "jobs").glob("*.log"))
    lines = job_log.read_text().splitlines()
    # A new work tree is checked out at the head by `git worktree add` itself, clean.
    assert sum(line.startswith(("$ git checkout", "$ git worktree add")) for line in lines) == 1, lines
    assert sum(line.startswith("$ git clean") for line in lines) <= 1, lines
    assert lines.count("=== plan app/default ===") == 1, lines


def test_disable_autoplan_plans_only_on_a_comment(
    start_atlas: Callable[..., RunningAtlas],
    fixture_repo: Callable[..., EmulatedRepo],
    github_emulator: GitHubEmulator,
) -> None:
    atlas = start_atlas(disable_autoplan=True)
    fixture_repo("multi-project")
    github_emulator.set_permission("acme/infra", "alice", "write")
    pull = github_emulator.open_pull("acme/infra", "more-replicas", APP_CHANGE, author="alice")

    response = atlas.pull_event(pull, "opened")
    assert response.status_code == 200 and "--disable-autoplan" in response.text
    atlas.wait_idle()
    assert comment_bodies(github_emulator, "acme/infra", pull.number) == []
    assert plan_statuses(github_emulator, "acme/infra", pull.head_sha) == []

    payload = webhook_payload("issue_comment", pull, "created", body="atlas plan", commenter="alice")
    assert atlas.deliver("issue_comment", payload).status_code == 202
    atlas.wait_idle()
    assert "Plan: 1 to add" in comment_bodies(github_emulator, "acme/infra", pull.number)[-1]
