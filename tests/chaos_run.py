"""Chaos on loopback: pull requests planned by `atlas worker`s while one of them is SIGKILLed every few seconds.

Each pull request has a repository of its own (so no lock makes one wait for another), all are
opened at once, and every `kill_every` seconds one live worker's own process (not its tree, as the
OOM killer does) is SIGKILLed and a new worker started. The run ends when every pull request has a
final `atlas/plan` status. What it finds, `ChaosRun.problems`, is what must never happen: a pull
request without a final status, one failed without saying it was interrupted, two plan comments for
one head, a lock left to a job that no longer runs, a terraform still running a second after its
worker died. Shared by tests/test_chaos_e2e.py and benchmarks/chaos.py.
"""

from __future__ import annotations

import os
import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from atlas.models import JobStatus
from atlas.stores.redis.backend import connect
from atlas.stores.redis.locks import RedisLockStore
from atlas.stores.redis.state import RedisStateStore
from tests.emulator import EmulatedPull
from tests.redis_backends import backend_of
from tests.scale_world import AtlasWorkerProcess, ScaleWorld

INTERRUPTED = "**atlas's `autoplan` run was interrupted**"
FINAL = ("success", "failure")


@dataclass
class ChaosRun:
    pulls: int
    workers: int
    kills: int = 0
    planned: int = 0
    interrupted: int = 0
    seconds_to_last_final: float = 0.0
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.pulls} pull requests, {self.workers} workers, {self.kills} workers SIGKILLed: "
                f"{self.planned} planned, {self.interrupted} interrupted and told so; last final status after "
                f"{self.seconds_to_last_final:.1f} s; problems: {len(self.problems)}")


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (Linux /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            parents[int(entry.name)] = int(fields[1])
    found: set[int] = set()
    frontier = [pid]
    while frontier:
        current = frontier.pop()
        children = [child for child, parent in parents.items() if parent == current]
        found.update(children)
        frontier.extend(children)
    return found


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except (FileNotFoundError, ProcessLookupError):
        return ""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def run_chaos(world: ScaleWorld, *, pulls: int = 40, workers: int = 3, kill_every: float = 3.0,
              timeout: float = 240, seed: int = 1) -> ChaosRun:
    chosen = random.Random(seed)
    run = ChaosRun(pulls=pulls, workers=workers)
    opened: list[EmulatedPull] = []
    for index in range(pulls):
        name = f"acme/chaos-{index:02d}"
        world.create_repo(name)
        opened.append(world.open_pull(name, "more-replicas"))
    server = world.start_server()
    live: list[AtlasWorkerProcess] = [world.start_worker() for _ in range(workers)]
    started = time.monotonic()
    for pull in opened:
        answer = server.pull_event(pull)
        if answer.status_code != 202:
            run.problems.append(f"{pull.repo.full_name}#{pull.number}: delivery answered {answer.status_code}")
    watched: list[tuple[float, set[int]]] = []
    next_kill = started + kill_every
    deadline = started + timeout
    while time.monotonic() < deadline:
        states = [world.latest_state(pull, "atlas/plan") for pull in opened]
        if all(state in FINAL for state in states):
            break
        now = time.monotonic()
        if now >= next_kill:
            victim = chosen.choice(live)
            terraforms = {pid for pid in descendants(victim.pid) if _command(pid) == "terraform"}
            # Only the worker's own process: its children must die with it.
            os.kill(victim.pid, signal.SIGKILL)
            victim.stopped = True
            victim.process.wait(10)
            run.kills += 1
            watched.append((time.monotonic() + 1.0, terraforms))
            live.remove(victim)
            live.append(world.start_worker(wait=False))
            next_kill = now + kill_every
        for due, pids in [entry for entry in watched if entry[0] <= time.monotonic()]:
            watched.remove((due, pids))
            outliving = sorted(pid for pid in pids if _alive(pid))
            if outliving:
                run.problems.append(f"terraform {outliving} still ran a second after its worker was killed")
        time.sleep(0.25)
    run.seconds_to_last_final = time.monotonic() - started
    _judge(world, opened, run)
    return run


def _judge(world: ScaleWorld, opened: list[EmulatedPull], run: ChaosRun) -> None:
    for pull in opened:
        where = f"{pull.repo.full_name}#{pull.number}"
        state = world.latest_state(pull, "atlas/plan")
        said = world.bot_comments(pull)
        plans = [body for body in said if body.startswith("Ran Plan")]
        told = [body for body in said if body.startswith(INTERRUPTED)]
        if len(plans) > 1:
            run.problems.append(f"{where}: {len(plans)} plan comments for one head")
        if state == "success" and plans:
            run.planned += 1
        elif state == "failure" and told and "to run it again" in told[-1]:
            run.interrupted += 1
        else:
            run.problems.append(f"{where}: no final status that says what happened ({state!r}; atlas said "
                                f"{[body[:80] for body in said]!r})")
    assert world.redis_url is not None
    client = connect(world.redis_url)
    try:
        backend = backend_of(client)
        state = RedisStateStore(backend)
        for lock in RedisLockStore(backend).all():
            # A lock names the job that took it; once that job ended well, its pull request holds it.
            record = state.get_job(lock.job_id) if lock.job_id else None
            if lock.job_id and (record is None or record.status is not JobStatus.SUCCEEDED):
                run.problems.append(f"the lock of {lock.repo} {lock.project.label} is left to job {lock.job_id}, "
                                    f"{record.status if record else 'unknown'}")
    finally:
        client.close()
