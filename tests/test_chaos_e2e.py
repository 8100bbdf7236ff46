"""Chaos: 40 pull requests planned by 3 workers while a worker is SIGKILLed every 3 seconds and restarted.

Every pull request ends with a final status (planned, or failed with a comment saying it was
interrupted and can be re-run), no lock is left to a dead job, no pull request gets two plan
comments for one head, and no terraform outlives its worker (tests/chaos_run.py). Its figures are
printed by benchmarks/chaos.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.chaos_run import run_chaos

if TYPE_CHECKING:
    from tests.scale_world import ScaleWorld

pytest_plugins = ["tests.scale_world"]


def test_forty_pull_requests_all_end_well_while_workers_are_killed_every_three_seconds(
    scale_world: ScaleWorld,
) -> None:
    run = run_chaos(scale_world, pulls=40, workers=3, kill_every=3.0)

    assert run.kills >= 3, f"the run was over before the chaos: {run.summary()}"
    assert not run.problems, "\n".join([run.summary(), *run.problems[:10]])
    assert run.planned + run.interrupted == 40
