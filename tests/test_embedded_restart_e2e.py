"""The embedded default (no Redis) across a crash: a real `atlas server` killed mid-plan and started again.

What was running is reported on the pull request, and what was queued runs: no command is lost silently.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.scale_world import ScaleWorld

pytest_plugins = ["tests.scale_world"]

REPO = "acme/infra"
Eventually = Callable[..., Any]


def test_a_server_killed_mid_plan_reports_the_running_command_and_runs_the_queued_one_after_restart(
    embedded_world: ScaleWorld, eventually: Eventually,
) -> None:
    world = embedded_world
    world.create_repo(REPO)
    slow = world.slow_terraform()
    data_dir = world.root / "atlas-data"
    server = world.start_server(data_dir=data_dir, terraform_bin=slow.binary)
    pull = world.open_pull(REPO, "both", ("app", "db"))
    assert server.pull_event(pull).status_code == 202
    eventually(slow.started_by, 60, "the autoplan's slow terraform plan starting")
    eventually(lambda: any("slow plan starting" in log.read_text() for log in (data_dir / "jobs").glob("*.log")),
               10, "the job log showing the slow plan")
    assert server.comment(pull, "atlas plan -d db").status_code == 202  # queued behind the running autoplan

    server.kill()  # the whole server at once, as when its host or container dies
    slow.end_leftover()  # its terraform had a process group of its own, and would have died with the host
    world.start_server(data_dir=data_dir, terraform_bin=slow.binary)

    told = world.wait_for_comment(pull, "**atlas's `autoplan` run was interrupted**", timeout=60)
    assert "The atlas server restarted while this command was running" in told
    assert "comment `atlas plan` to run it again" in told
    planned = world.wait_for_comment(pull, "Ran Plan", timeout=60)
    assert planned.startswith("Ran Plan for dir: `db` workspace: `default`")
    assert "Plan: 0 to add, 0 to change, 0 to destroy." not in planned
    plan_statuses = world.statuses(pull, "atlas/plan")
    assert ("failure", "interrupted: comment `atlas plan` to retry") in plan_statuses
    eventually(lambda: world.latest_state(pull, "atlas/plan") == "success", 10, "atlas/plan succeeding")
