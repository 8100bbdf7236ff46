"""Project locks end to end: two pull requests never plan or apply over each other."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.atlas_plugin import RunningAtlas
from tests.commands_world import (
    DEVELOPER,
    REPO,
    app_change,
    bot_comments,
    comment,
    db_change,
    last_bot_comment,
    lock_holders,
    open_and_plan,
    statuses,
)
from tests.emulator import EmulatedRepo, GitHubEmulator, webhook_payload

Start = Callable[..., RunningAtlas]


@pytest.fixture(autouse=True)
def repo(fixture_repo: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator) -> EmulatedRepo:
    created = fixture_repo("multi-project")
    github_emulator.set_permission(REPO, DEVELOPER, "write")
    return created


def test_second_pull_request_is_told_who_holds_the_lock_and_its_other_projects_plan(
    start_atlas: Start, github_emulator: GitHubEmulator,
) -> None:
    atlas = start_atlas()
    first = open_and_plan(atlas, github_emulator, "first", app_change(3))
    second = open_and_plan(atlas, github_emulator, "second", {**app_change(5), **db_change("staging")})

    said = last_bot_comment(github_emulator, second)
    assert f"locked by pull request [#{first.number}]" in said
    assert f"/pull/{first.number}" in said
    assert "dir: `db`" in said and "Plan: 1 to add" in said  # db was not locked: it planned
    assert lock_holders(atlas) == {"app/default": first.number, "db/default": second.number}
    assert statuses(github_emulator, second.head_sha, "atlas/plan")[-1] == (
        "pending", f"waiting for the lock held by #{first.number}; 1/2 projects planned")


def test_apply_of_a_project_locked_by_another_pull_request_is_refused(
    start_atlas: Start, github_emulator: GitHubEmulator,
) -> None:
    atlas = start_atlas()
    first = open_and_plan(atlas, github_emulator, "first", app_change(3))
    second = open_and_plan(atlas, github_emulator, "second", app_change(5))
    comment(atlas, second, "atlas apply -d app")
    atlas.wait_idle()
    assert "no plan" in last_bot_comment(github_emulator, second)
    assert lock_holders(atlas) == {"app/default": first.number}


def test_closing_the_holder_plans_the_waiting_pull_request_by_itself(
    start_atlas: Start, github_emulator: GitHubEmulator,
) -> None:
    atlas = start_atlas()
    first = open_and_plan(atlas, github_emulator, "first", app_change(3))
    second = open_and_plan(atlas, github_emulator, "second", app_change(5))
    third = open_and_plan(atlas, github_emulator, "third", app_change(6))

    atlas.deliver("pull_request", webhook_payload("pull_request", first, "closed"))
    atlas.wait_idle()

    assert "deleted its locks" in last_bot_comment(github_emulator, first)
    said = bot_comments(github_emulator, second)
    assert any("was released, and this pull request now holds it" in c for c in said)
    assert "replicas = 5" in said[-1] and "Plan: 1 to add" in said[-1]
    assert lock_holders(atlas) == {"app/default": second.number}
    assert statuses(github_emulator, second.head_sha, "atlas/plan")[-1] == ("success", "1/1 projects planned")
    # The third waits behind the second, first come first served.
    assert statuses(github_emulator, third.head_sha, "atlas/plan")[-1][0] == "pending"


def test_unlock_releases_locks_and_plans_and_the_next_pull_request_gets_the_lock(
    start_atlas: Start, github_emulator: GitHubEmulator,
) -> None:
    atlas = start_atlas()
    first = open_and_plan(atlas, github_emulator, "first", app_change(3))
    second = open_and_plan(atlas, github_emulator, "second", app_change(5))

    comment(atlas, first, "atlas unlock")
    atlas.wait_idle()

    said = last_bot_comment(github_emulator, first)
    assert "Deleted the locks and plans" in said and "dir: `app`" in said
    assert atlas.app.config["ATLAS_STATE"].plans(REPO, first.number) == []
    assert lock_holders(atlas) == {"app/default": second.number}
    assert "replicas = 5" in last_bot_comment(github_emulator, second)

    comment(atlas, first, "atlas apply")
    atlas.wait_idle()
    assert "no plan to apply" in last_bot_comment(github_emulator, first)


def test_unlock_takes_the_pull_request_out_of_the_waiting_queue(
    start_atlas: Start, github_emulator: GitHubEmulator,
) -> None:
    atlas = start_atlas()
    first = open_and_plan(atlas, github_emulator, "first", app_change(3))
    second = open_and_plan(atlas, github_emulator, "second", app_change(5))
    comment(atlas, second, "atlas unlock")
    atlas.wait_idle()
    assert "no longer waits" in last_bot_comment(github_emulator, second)

    atlas.deliver("pull_request", webhook_payload("pull_request", first, "closed"))
    atlas.wait_idle()
    assert lock_holders(atlas) == {}
    assert "Ran Plan" not in last_bot_comment(github_emulator, second)


def test_locks_and_plans_survive_a_server_restart(
    start_atlas: Start, github_emulator: GitHubEmulator, tmp_path: Path,
) -> None:
    data_dir = tmp_path / "shared-data"
    atlas = start_atlas(data_dir=data_dir)
    first = open_and_plan(atlas, github_emulator, "first", app_change(3))
    atlas.stop()

    restarted = start_atlas(data_dir=data_dir)
    second = open_and_plan(restarted, github_emulator, "second", app_change(5))
    assert f"locked by pull request [#{first.number}]" in last_bot_comment(github_emulator, second)
    comment(restarted, first, "atlas apply")
    restarted.wait_idle()
    assert "Apply complete!" in last_bot_comment(github_emulator, first)


def test_operator_unlock_from_the_cli_hands_the_lock_to_the_waiting_pull_request(
    start_atlas: Start, github_emulator: GitHubEmulator, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A lock released by another process (the admin CLI) is noticed by the server's sweep."""
    from atlas import app as app_module

    monkeypatch.setattr(app_module, "HANDOFF_SWEEP_SECONDS", 0.2)
    atlas = start_atlas()
    first = open_and_plan(atlas, github_emulator, "first", app_change(3))
    second = open_and_plan(atlas, github_emulator, "second", app_change(5))
    [lock] = atlas.app.config["ATLAS_CONTEXT"].locks.all()

    env = {k: v for k, v in os.environ.items() if not k.startswith("ATLAS_")}
    result = subprocess.run(
        [sys.executable, "-m", "atlas", "locks", "unlock", lock.id, "--data-dir", str(atlas.settings.data_dir)],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and "replicas = 5" not in last_bot_comment(github_emulator, second):
        time.sleep(0.1)
    atlas.wait_idle()
    assert "replicas = 5" in last_bot_comment(github_emulator, second)
    assert lock_holders(atlas) == {"app/default": second.number}
    assert f"#{first.number}" in result.stdout
    [unlocked] = atlas.app.config["ATLAS_STATE"].audit_entries(action="unlock")
    assert (unlocked.trigger, unlocked.pull_number, unlocked.outcome) == ("cli", first.number, "released")
    assert atlas.app.config["ATLAS_STATE"].plans(REPO, first.number) == [], "the plan went with the lock"


def slow_terraform(directory: Path) -> Path:
    """A terraform on PATH whose `plan` first sleeps, so a test can cancel it while it runs."""
    real = shutil.which("terraform")
    assert real is not None
    script = directory / "terraform"
    script.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = plan ]; then echo "slow plan starting"; sleep 60; fi\n'
        f'exec {real} "$@"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def test_cancel_interrupts_the_running_plan_and_drops_queued_commands(
    start_atlas: Start, github_emulator: GitHubEmulator, tmp_path: Path,
) -> None:
    atlas = start_atlas(terraform_bin=str(slow_terraform(tmp_path)))
    pull = github_emulator.open_pull(REPO, "slow", app_change(3), author=DEVELOPER)
    atlas.pull_event(pull)
    comment(atlas, pull, "atlas plan -d app")  # queued behind the running autoplan
    jobs_dir = atlas.settings.data_dir / "jobs"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(
        "slow plan starting" in log.read_text() for log in jobs_dir.glob("*.log")
    ):
        time.sleep(0.05)

    started = time.monotonic()
    comment(atlas, pull, "atlas cancel")
    atlas.wait_idle(timeout=60)
    assert time.monotonic() - started < 30, "cancel did not interrupt the 60 s plan"

    cancel_reply = next(c for c in bot_comments(github_emulator, pull) if c.startswith("Cancelled:"))
    assert "the running `autoplan`" in cancel_reply
    assert "the queued `plan`" in cancel_reply
    assert statuses(github_emulator, pull.head_sha, "atlas/plan")[-1] == ("failure", "plan cancelled")
    assert not any(c.startswith("Ran Plan") for c in bot_comments(github_emulator, pull))


def test_concurrent_pull_requests_racing_for_one_project_one_wins(
    start_atlas: Start, github_emulator: GitHubEmulator,
) -> None:
    atlas = start_atlas(parallel_pool_size=4)
    pulls = [github_emulator.open_pull(REPO, f"race-{i}", app_change(10 + i), author=DEVELOPER) for i in range(4)]
    threads = [threading.Thread(target=atlas.pull_event, args=(p,)) for p in pulls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    atlas.wait_idle()
    [winner] = set(lock_holders(atlas).values())
    for pull in pulls:
        said = last_bot_comment(github_emulator, pull)
        if pull.number == winner:
            assert "Plan: 1 to add" in said
        else:
            assert f"locked by pull request [#{winner}]" in said
