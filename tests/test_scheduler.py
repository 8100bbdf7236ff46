"""The drift scheduler: which slots are due, and each slot run exactly once by however many processes share a store.

The cross-process test runs this file as a program (`python -m tests.test_scheduler scheduler ...`):
two real processes, each a `Scheduler` claiming slots in the same Redis, on one shared clock that
runs thirty times faster than real time, recording every claim and every slot run in Redis.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from redis import Redis

from atlas.drift.jobs import drift_job, unfinished_check
from atlas.drift.scheduler import Scheduler, Slot, due_slots, latest_firing
from atlas.models import CommandName, Job, JobStatus
from atlas.stores.redis.backend import RedisBackend, connect, text
from atlas.stores.redis.state import RedisStateStore
from atlas.stores.sqlite.state import SQLiteStateStore
from tests.redis_plugin import eventually

REPO_ROOT = Path(__file__).resolve().parents[1]

START = datetime(2030, 1, 1, 0, 0, 30, tzinfo=UTC)
"""Virtual time at which the schedulers start: half a minute past a firing of every schedule below."""

TABLE = {"acme/infra": ["* * * * *"], "acme/network": ["*/2 * * * *", "*/3 * * * *"]}

CLAIMS_KEY = "test:claims"
RUNS_KEY = "test:runs"
READY_KEY = "test:ready"
BEGIN_KEY = "test:begin"

SPEED = 30.0
"""Virtual seconds per real second: a process would have to stall 2 s to miss a minute's slot."""


def expected_slots(since: datetime, until: datetime) -> set[str]:
    """Every firing of every schedule of TABLE after `since` and at or before `until`, as slot keys."""
    keys: set[str] = set()
    moment = since
    while moment < until:
        moment = min(moment + timedelta(seconds=30), until)
        keys |= {slot.key for slot in due_slots(TABLE, moment - timedelta(seconds=30), moment)}
    return keys


def test_the_latest_firing_includes_the_moment_itself() -> None:
    assert latest_firing("*/5 * * * *", datetime(2030, 1, 1, 10, 5, tzinfo=UTC)) == datetime(2030, 1, 1, 10, 5,
                                                                                              tzinfo=UTC)
    assert latest_firing("*/5 * * * *", datetime(2030, 1, 1, 10, 9, 59, tzinfo=UTC)) == datetime(
        2030, 1, 1, 10, 5, tzinfo=UTC)
    assert latest_firing("@daily", datetime(2030, 1, 2, 3, 0, tzinfo=UTC)) == datetime(2030, 1, 2, tzinfo=UTC)


def test_a_window_holds_the_latest_firing_of_each_schedule_once() -> None:
    since = datetime(2030, 1, 1, 10, 0, 30, tzinfo=UTC)
    slots = due_slots(TABLE, since, since + timedelta(minutes=7))
    assert [(slot.repo, slot.schedule, slot.at.strftime("%H:%M")) for slot in slots] == [
        ("acme/infra", "* * * * *", "10:07"),
        ("acme/network", "*/2 * * * *", "10:06"),
        ("acme/network", "*/3 * * * *", "10:06"),
    ]
    assert due_slots(TABLE, since, since + timedelta(seconds=20)) == []
    assert due_slots({"acme/infra": ["not a schedule"]}, since, since + timedelta(hours=1)) == []


def test_slot_keys_name_the_repository_schedule_and_time() -> None:
    slot = Slot("acme/infra", "0 * * * *", datetime(2030, 1, 1, 10, tzinfo=UTC))
    assert slot.key == "drift:acme/infra:0 * * * *:2030-01-01T10:00:00+00:00"


def test_schedulers_sharing_a_sqlite_store_run_each_slot_once(tmp_path: Path) -> None:
    runs: list[tuple[str, str]] = []
    lock = threading.Lock()
    now = [START]

    def scheduler(name: str) -> Scheduler:
        store = SQLiteStateStore(tmp_path / "atlas.db")

        def run(slot: Slot) -> None:
            with lock:
                runs.append((slot.key, name))

        return Scheduler(lambda known: TABLE, run, store.claim_slot, clock=lambda: now[0], since=START)

    first, second = scheduler("first"), scheduler("second")
    step = 0
    while now[0] < START + timedelta(minutes=12):
        now[0] += timedelta(seconds=20)
        step += 1
        # Minutes are crossed every third step, so the first to tick after a firing alternates.
        for each in (first, second) if step % 2 else (second, first):
            each.tick()
    for each in (first, second):
        each.stop()

    keys = [key for key, _ in runs]
    assert sorted(keys) == sorted(set(keys)), f"slots run twice: {[k for k, n in Counter(keys).items() if n > 1]}"
    assert set(keys) == expected_slots(START, now[0])
    assert {name for _, name in runs} == {"first", "second"}, "both schedulers won some slots"


def test_a_slot_whose_previous_check_is_still_queued_or_running_is_skipped(tmp_path: Path) -> None:
    store = SQLiteStateStore(tmp_path / "atlas.db")
    queued: list[Job] = []

    def submit(slot: Slot) -> None:
        job = drift_job(slot.repo, slot.schedule, slot.at)
        store.save_job(job, JobStatus.QUEUED)
        queued.append(job)

    scheduler = Scheduler(lambda known: {"acme/infra": ["* * * * *"]}, submit, store.claim_slot, since=START,
                          busy=lambda slot: unfinished_check(store, slot.repo, slot.schedule) is not None)
    assert len(scheduler.tick(START + timedelta(minutes=1))) == 1
    assert scheduler.tick(START + timedelta(minutes=2)) == [], "the 00:01 checks still wait for a worker"
    store.set_job_status(queued[0].id, JobStatus.RUNNING)
    assert scheduler.tick(START + timedelta(minutes=3)) == [], "the 00:01 checks still run"
    store.set_job_status(queued[0].id, JobStatus.SUCCEEDED)
    assert len(scheduler.tick(START + timedelta(minutes=4))) == 1
    scheduler.stop()
    fired = [job.drift.fired_at.strftime("%H:%M") if job.drift else "" for job in queued]
    assert [(job.command, job.serial_key) for job in queued] == [(CommandName.DRIFT, "drift:acme/infra")] * 2
    assert fired == ["00:01", "00:04"]
    assert store.claim_slot(Slot("acme/infra", "* * * * *", START + timedelta(minutes=2)).key, 60), \
        "a skipped slot is not claimed"


def test_two_processes_in_redis_mode_run_each_slot_once(redis_url: str, redis_client: Redis, tmp_path: Path) -> None:
    minutes = 6
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ATLAS_")}, "PYTHONPATH": str(REPO_ROOT)}
    processes = []
    for name in ("one", "two"):
        log = (tmp_path / f"{name}.log").open("wb")
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "tests.test_scheduler", "scheduler", "--redis-url", redis_url, "--name", name,
             "--minutes", str(minutes)],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        ))
    eventually(lambda: redis_client.llen(READY_KEY) == 2, 60, "both scheduler processes starting")
    # One start for both clocks, once both are up: neither starts late and sees slots collapse into one.
    redis_client.set(BEGIN_KEY, repr(time.time() + 0.2))
    for process, name in zip(processes, ("one", "two"), strict=True):
        assert process.wait(60) == 0, (tmp_path / f"{name}.log").read_text()

    runs = [json.loads(text(entry) or "{}") for entry in redis_client.lrange(RUNS_KEY, 0, -1)]
    claims = [json.loads(text(entry) or "{}") for entry in redis_client.lrange(CLAIMS_KEY, 0, -1)]
    keys = [run["slot"] for run in runs]
    assert sorted(keys) == sorted(set(keys)), f"slots run twice: {[k for k, n in Counter(keys).items() if n > 1]}"
    assert set(keys) == expected_slots(START, START + timedelta(minutes=minutes))
    tried_by: dict[str, set[str]] = {}
    for claim in claims:
        tried_by.setdefault(claim["slot"], set()).add(claim["process"])
    assert all(tried_by[key] == {"one", "two"} for key in keys), "both processes tried every slot"
    assert all(sum(1 for c in claims if c["slot"] == key and c["won"]) == 1 for key in keys)


def run_scheduler_process(argv: list[str]) -> int:
    """One scheduler process of the Redis test: ticks on the shared virtual clock until the window ends."""
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["scheduler"])
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--minutes", type=int, required=True)
    args = parser.parse_args(argv)
    end = START + timedelta(minutes=args.minutes)
    store = RedisStateStore(RedisBackend(args.redis_url))
    events = connect(args.redis_url)

    def claim(key: str, ttl: float) -> bool:
        won = store.claim_slot(key, ttl)
        events.rpush(CLAIMS_KEY, json.dumps({"slot": key, "process": args.name, "won": won}))
        return won

    def run(slot: Slot) -> None:
        events.rpush(RUNS_KEY, json.dumps({"slot": slot.key, "process": args.name}))

    events.rpush(READY_KEY, args.name)
    begin = float(eventually(lambda: text(events.get(BEGIN_KEY)), 60, "the test saying when to begin"))

    def clock() -> datetime:
        return min(START + timedelta(seconds=(time.time() - begin) * SPEED), end)

    scheduler = Scheduler(lambda known: TABLE, run, claim, clock=clock, since=START)
    time.sleep(max(begin - time.time(), 0))
    while True:
        now = clock()
        scheduler.tick(now)
        if now >= end:
            break
        time.sleep(0.02)
    scheduler.stop(wait=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "scheduler":
        sys.exit(run_scheduler_process(sys.argv[1:]))
    pytest.fail("run this file with pytest")
