"""What the command contexts bootstrap builds derive from settings, and what they can do."""

from __future__ import annotations

from pathlib import Path

from atlas.bootstrap import cli_context
from atlas.config.settings import Settings
from atlas.models import CommandName, JobStatus, Project, PullRequest, Repo
from atlas.runtime.lock_handoff import plan_for_new_holders

REPO = Repo(full_name="acme/infra", clone_url="http://git.invalid/acme/infra.git",
            html_url="http://git.invalid/acme/infra")
PULL = PullRequest(repo=REPO, number=3, head_sha="c" * 40, head_ref="x", base_ref="main", author="me")
WAITING = PullRequest(repo=REPO, number=4, head_sha="d" * 40, head_ref="y", base_ref="main", author="you")
APP = Project(dir="app")


def test_projects_whose_names_differ_only_in_punctuation_get_their_own_plan_files(tmp_path: Path) -> None:
    ctx = cli_context(Settings(data_dir=tmp_path, gh_token="x"))
    paths = {ctx.planfile(PULL, Project(dir=d, workspace=w)) for d, w in
             [("a/b", "default"), ("a_b", "default"), ("a-b", "default"), ("a/b", "prod")]}
    assert len(paths) == 4
    assert all(path.parent == ctx.plans_dir(PULL) and path.parent.is_dir() for path in paths)


def test_a_lock_released_from_the_cli_on_redis_queues_the_plan_of_the_pull_request_waiting_for_it(
    tmp_path: Path, redis_url: str,
) -> None:
    ctx = cli_context(Settings(data_dir=tmp_path, gh_token="x", redis_url=redis_url))
    ctx.locks.acquire(PULL, [APP], "me")
    assert ctx.locks.wait_for(WAITING, APP, "you") == 1
    [lock] = ctx.locks.for_pull(REPO.full_name, PULL.number)

    plan_for_new_holders(ctx, ctx.locks.release(lock.id))

    [queued] = ctx.state.jobs(statuses=(JobStatus.QUEUED,))
    assert (queued.job.command, queued.job.pull.number, queued.job.args.dir) == (CommandName.PLAN, 4, "app")
    assert ctx.locks.pending_handoffs() == [], "the handoff is planned, not left for another process"


def test_a_lock_released_from_the_cli_on_the_embedded_default_stays_pending_for_the_servers_sweep(
    tmp_path: Path,
) -> None:
    ctx = cli_context(Settings(data_dir=tmp_path, gh_token="x"))
    ctx.locks.acquire(PULL, [APP], "me")
    ctx.locks.wait_for(WAITING, APP, "you")
    [lock] = ctx.locks.for_pull(REPO.full_name, PULL.number)

    plan_for_new_holders(ctx, ctx.locks.release(lock.id))

    assert ctx.state.jobs(statuses=(JobStatus.QUEUED,)) == []
    assert [heir.pull_number for heir in ctx.locks.pending_handoffs()] == [4]
