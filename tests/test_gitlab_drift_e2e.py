"""Drift on GitLab: a GitLab project's scheduled checks, and drift reported as a GitLab issue.

The same drift flow as on GitHub (tests/test_drift_e2e.py): repos.yaml names the project by its
GitLab host and nested path, the server's scheduler queues the check, and drift opens one issue on
GitLab, commented on while it lasts and closed when the project is back in sync, with `atlas/drift`
on the default branch's head commit.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from atlas.commands.context import CommandContext
from atlas.drift.check import check_repo
from atlas.drift.jobs import unfinished_check
from atlas.drift.scheduler import Scheduler
from atlas.models import DriftStatus
from tests.atlas_plugin import RunningAtlas
from tests.gitlab_emulator import GitLabEmulator
from tests.gitlab_world import PATH
from tests.live_copy import LiveCopy
from tests.redis_plugin import eventually
from tests.test_drift_e2e import NEVER, schedule_new_year

KEY = f"gitlab:{PATH}"


def drift_statuses(emulator: GitLabEmulator) -> list[tuple[str, str]]:
    head = emulator.branch_sha(PATH, "main")
    assert head
    return [(s["status"], s["description"]) for s in emulator.statuses(PATH, head) if s["name"] == "atlas/drift"]


def test_a_gitlab_projects_scheduled_check_reports_drift_in_a_gitlab_issue_until_it_is_back_in_sync(
    gitlab_atlas: Callable[..., RunningAtlas], gitlab_emulator: GitLabEmulator, gitlab_project: Callable[..., str],
    state_dir: Path, tmp_path: Path,
) -> None:
    gitlab_project()
    live = LiveCopy.of("multi-project", state_dir, tmp_path / "live")
    for project in ("app", "db"):
        live.apply(project)
    repos_yaml = tmp_path / "repos.yaml"
    host = gitlab_emulator.base_url.split("://", 1)[1].split(":", 1)[0]
    repos_yaml.write_text(f'repos:\n- id: {host}/{PATH}\n  drift: {{enabled: true, schedule: "{NEVER}"}}\n')
    atlas = gitlab_atlas(github=False, repo_config=repos_yaml)
    ctx: CommandContext = atlas.app.config["ATLAS_CONTEXT"]
    live.apply("app", "-var", "environment=staging")

    scheduler: Scheduler = schedule_new_year(ctx)
    try:
        assert dict(scheduler.table) == {KEY: {NEVER}}
        eventually(lambda: len(ctx.state.drift_records(KEY)) == 2, 120, "the checks of the new year's slot")
        eventually(lambda: unfinished_check(ctx.state, KEY, NEVER) is None, 60, "the drift job's end")
    finally:
        scheduler.stop()

    assert {r.project.dir: r.status for r in ctx.state.drift_records(KEY)} == {
        "app": DriftStatus.DRIFTED, "db": DriftStatus.IN_SYNC}
    [issue] = gitlab_emulator.issues(PATH)
    assert issue["title"] == f"atlas drift: {PATH} app (default)"
    assert issue["labels"] == ["atlas-drift"] and issue["state"] == "opened"
    assert "`terraform_data.service`" in issue["description"] and "<details><summary>Plan</summary>" in (
        issue["description"])
    assert drift_statuses(gitlab_emulator)[-1] == ("failed", "1 of 2 projects drifted")

    check_repo(ctx, KEY, trigger="cli", user="operator")
    [same] = gitlab_emulator.issues(PATH)
    assert same["iid"] == issue["iid"], "a later check updates the issue instead of opening another"
    assert "**still drifted**" in gitlab_emulator.issue_notes(PATH, issue["iid"])[-1]["body"]

    live.apply("app")
    back = check_repo(ctx, KEY, trigger="cli", user="operator")
    assert not back.failed and not back.drift_found
    [closed] = gitlab_emulator.issues(PATH)
    assert closed["state"] == "closed"
    last = gitlab_emulator.issue_notes(PATH, issue["iid"])[-1]
    assert "**Back in sync**" in last["body"] and last["author"] == gitlab_emulator.bot.username
    assert drift_statuses(gitlab_emulator)[-1] == ("success", "2 projects in sync")
