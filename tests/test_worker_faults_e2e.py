"""Faults that production brings to `atlas worker`, with real processes, Redis and terraform.

A worker process is SIGKILLed in the middle of a job, as the OOM killer or a node eviction does,
and the tests look at what is left: no process of the job (in the sandbox and without it), the
locks that only the dead job held released or kept by the pull request, and the pull request told
which.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

from tests.redis_plugin import free_port

if TYPE_CHECKING:
    from tests.scale_world import ScaleWorld

pytest_plugins = ["tests.scale_world"]

REPO = "acme/infra"
INTERRUPTED = "**atlas's `autoplan` run was interrupted**"
Eventually = Callable[..., Any]


def group_members(group: int) -> list[int]:
    """The live (not zombie) processes of a process group, from the host's /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state, _parent, pgrp = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue
        if int(pgrp) == group and state not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Whether a process runs (a zombie, dead but not yet collected by its parent, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


@pytest.mark.parametrize("sandbox", ["required", "off"])
def test_a_worker_process_killed_mid_plan_leaves_no_process_of_its_job_a_second_later(
    scale_world: ScaleWorld, eventually: Eventually, sandbox: str,
) -> None:
    world = scale_world
    world.create_repo(REPO)
    slow = world.slow_terraform()
    server = world.start_server(wait=False, sandbox=sandbox)
    worker = world.start_worker(terraform_bin=slow.binary, sandbox=sandbox)
    server.wait_healthy()
    pull = world.open_pull(REPO, "more-replicas")
    assert server.pull_event(pull).status_code == 202
    running_it = eventually(slow.started_by, 60, "the slow plan starting")
    assert running_it in worker.worker_pids()
    script = slow.running()
    assert script is not None
    group = os.getpgid(script)
    # The script and the `sleep` it started: a child and a grandchild of the worker process.
    eventually(lambda: len(group_members(group)) >= 2, 10, "the slow plan's sleep starting")

    os.kill(running_it, signal.SIGKILL)  # the worker process only, not its process group
    killed_at = time.monotonic()

    eventually(lambda: not group_members(group), 1.0, "every process of the killed job ending")
    assert time.monotonic() - killed_at < 1.5
    told = world.wait_for_comment(pull, INTERRUPTED, timeout=30)
    assert "The atlas worker running this command stopped" in told
    assert not group_members(group)



def test_killing_atlas_worker_itself_ends_its_worker_processes_and_their_sandboxed_terraform(
    scale_world: ScaleWorld, eventually: Eventually,
) -> None:
    world = scale_world
    world.create_repo(REPO)
    slow = world.slow_terraform()
    server = world.start_server()
    workers = [world.start_worker(terraform_bin=slow.binary) for _ in range(2)]
    pull = world.open_pull(REPO, "more-replicas")
    assert server.pull_event(pull).status_code == 202
    running_it = eventually(slow.started_by, 60, "the slow plan starting")
    [owner] = [worker for worker in workers if running_it in worker.worker_pids()]
    script = slow.running()
    assert script is not None
    group = os.getpgid(script)

    os.kill(owner.pid, signal.SIGKILL)  # the supervising parent only, not its worker processes
    owner.stopped = True

    eventually(lambda: not alive(running_it), 1.0, "the worker process ending with atlas worker")
    eventually(lambda: not group_members(group), 1.0, "the sandboxed plan ending with its worker process")
    # The other worker's reaper reports it.
    told = world.wait_for_comment(pull, INTERRUPTED, timeout=30)
    assert "The atlas worker running this command stopped" in told


def test_locks_only_the_killed_job_held_are_released_unless_the_pull_request_has_their_plan(
    scale_world: ScaleWorld, eventually: Eventually,
) -> None:
    world = scale_world
    world.create_repo(REPO)
    slow = world.slow_terraform(only_in="db")
    server = world.start_server()
    worker = world.start_worker(terraform_bin=slow.binary)
    pull = world.open_pull(REPO, "both", projects=("app", "db"))
    assert server.pull_event(pull).status_code == 202
    running_it = eventually(slow.started_by, 90, "the slow plan of db starting")
    # app was planned (and its plan recorded) before db's plan began; the job took both locks.
    locks = world.locks_of(pull)
    assert [lock.project.dir for lock in locks] == ["app", "db"]
    [job_id] = {lock.job_id for lock in locks}
    assert job_id

    os.kill(running_it, signal.SIGKILL)

    told = world.wait_for_comment(pull, INTERRUPTED, timeout=30)
    assert "Released the lock of `db` (workspace `default`)" in told, told
    assert "Kept the lock of `app` (workspace `default`)" in told, told
    assert [(lock.project.dir, lock.job_id) for lock in world.locks_of(pull)] == [("app", "")]
    assert worker.worker_pids() != [running_it], "a new worker process replaced the killed one"


def test_each_worker_process_serves_its_own_metrics_with_the_jobs_it_ran(
    scale_world: ScaleWorld, eventually: Eventually,
) -> None:
    world = scale_world
    world.create_repo(REPO)
    port = free_port()
    server = world.start_server()
    world.start_worker(concurrency=2, extra_args=("--metrics-port", str(port)))
    pull = world.open_pull(REPO, "more-replicas")
    assert server.pull_event(pull).status_code == 202
    world.wait_for_comment(pull, "Ran Plan")

    def scraped() -> str | None:
        said = "".join(requests.get(f"http://127.0.0.1:{port + slot}/metrics", timeout=10).text for slot in (0, 1))
        return said if 'atlas_jobs_total{command="autoplan",outcome="succeeded"} 1.0' in said else None

    metrics = eventually(scraped, 20, "a worker process's /metrics counting the plan it ran")
    assert 'atlas_terraform_duration_seconds_count{command="plan"} 1.0' in metrics
