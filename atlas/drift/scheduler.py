"""Scheduled drift checks: every server process runs a `Scheduler`, and each scheduled slot is queued exactly once.

A slot is one firing of one repository's cron schedule (UTC), such as `acme/infra` on `0 * * * *`
at 10:00. Every process computes the same slots from the same schedules; before queueing one it
claims the slot's key in the state store (`StateStore.claim_slot`: a row in SQLite, `SET NX PX` in
Redis), so with any number of processes sharing the store exactly one queues it. A slot that fired
while no process was running is not run late: scheduling starts when the process does.

The scheduler only schedules: a claimed slot becomes a drift job on the job queue
(`atlas.drift.jobs`), which an `atlas worker` runs in Redis mode and the embedded queue's threads
run otherwise, so the web process needs no terraform for it and never spends a request's thread on
it. A slot whose previous check of the same repository and schedule is still queued or running, in
any process, is skipped: that check plans what is there when it runs.

Which repositories run on which schedules (`atlas.drift.targets.scheduled_repos`) is read again every few
minutes, so a changed repos.yaml entry or repo config takes effect without a restart.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from croniter import croniter

from atlas.commands.context import CommandContext
from atlas.drift.jobs import drift_job, unfinished_check
from atlas.drift.targets import scheduled_repos
from atlas.models import utcnow

log = logging.getLogger(__name__)

TICK_SECONDS = 15.0
"""How often the scheduler looks for slots that fired: a check starts at most this late."""

REFRESH_SECONDS = 300.0
"""How often the scheduler reads again which repositories run on which schedules."""

SLOT_CLAIM_SECONDS = 24 * 3600.0
"""How long a claimed slot is remembered: far longer than any process can be late for it."""

ScheduleTable = Mapping[str, Collection[str]]
"""`owner/name` → the cron schedules its projects are checked on."""


@dataclass(frozen=True)
class Slot:
    """One firing of one repository's schedule."""

    repo: str
    schedule: str
    at: datetime

    @property
    def key(self) -> str:
        """The same in every process, so that one claim covers them all."""
        return f"drift:{self.repo}:{self.schedule}:{self.at.isoformat()}"


def latest_firing(schedule: str, now: datetime) -> datetime:
    """The latest time at or before `now` at which `schedule` fires."""
    # croniter's get_prev is strictly before its start; a microsecond later includes `now` itself.
    fired: datetime = croniter(schedule, now + timedelta(microseconds=1)).get_prev(datetime)
    return fired


def due_slots(table: ScheduleTable, since: datetime, now: datetime) -> list[Slot]:
    """The slots that fired after `since` and at or before `now`: the latest of each schedule of each repository.

    Several firings of one schedule in the window (a process that was stalled) make one slot: a
    check plans what is there now, so running it twice in a row would learn nothing more.
    """
    slots: list[Slot] = []
    for repo in sorted(table):
        for schedule in sorted(table[repo]):
            try:
                fired = latest_firing(schedule, now)
            except (ValueError, KeyError) as error:
                log.warning("drift schedule %r of %s is not a cron schedule: %s", schedule, repo, error)
                continue
            if since < fired <= now:
                slots.append(Slot(repo=repo, schedule=schedule, at=fired))
    return slots


class Scheduler:
    """Finds due slots on every tick, claims each in the store, and queues those it claimed.

    `discover(table)` answers which repositories run on which schedules, given the last answer;
    `busy(slot)` whether the previous check of the slot's repository and schedule has yet to finish;
    `submit(slot)` queues the slot's check.
    """

    def __init__(
        self,
        discover: Callable[[ScheduleTable], ScheduleTable],
        submit: Callable[[Slot], object],
        claim: Callable[[str, float], bool],
        *,
        busy: Callable[[Slot], bool] = lambda slot: False,
        clock: Callable[[], datetime] = utcnow,
        tick_seconds: float = TICK_SECONDS,
        refresh_seconds: float = REFRESH_SECONDS,
        since: datetime | None = None,
    ) -> None:
        self._discover = discover
        self._submit = submit
        self._claim = claim
        self._busy = busy
        self.clock = clock
        self.tick_seconds = tick_seconds
        self.refresh_seconds = refresh_seconds
        self.since = since or clock()
        self.table: ScheduleTable = {}
        self._refreshed_at: datetime | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self, now: datetime | None = None) -> list[Slot]:
        """Queue every due slot this process claims; the slots it queued."""
        now = now or self.clock()
        if self._refreshed_at is None or (now - self._refreshed_at).total_seconds() >= self.refresh_seconds:
            self.refresh(now)
        queued: list[Slot] = []
        for slot in due_slots(self.table, self.since, now):
            try:
                if self._busy(slot):
                    log.warning("drift checks of %s on %r are still queued or running; skipping the slot at %s",
                                slot.repo, slot.schedule, slot.at.isoformat())
                    continue
                if not self._claim(slot.key, SLOT_CLAIM_SECONDS):
                    continue
                log.info("queueing the drift checks of %s scheduled %r at %s", slot.repo, slot.schedule,
                         slot.at.isoformat())
                self._submit(slot)
            except Exception:
                log.exception("could not queue the drift checks of %s at %s", slot.repo, slot.at.isoformat())
                continue
            queued.append(slot)
        self.since = max(self.since, now)
        return queued

    def refresh(self, now: datetime | None = None) -> None:
        """Read again which repositories run on which schedules (the old table stays if that fails)."""
        try:
            self.table = self._discover(self.table)
        except Exception:
            log.exception("could not read the drift schedules; keeping the previous ones")
        self._refreshed_at = now or self.clock()

    def start(self) -> Scheduler:
        """Tick in a daemon thread until `stop()`."""
        self._thread = threading.Thread(target=self._loop, name="atlas-drift-scheduler", daemon=True)
        self._thread.start()
        return self

    def stop(self, wait: bool = False) -> None:
        self._stop.set()
        if self._thread is not None and wait:
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("the drift scheduler's tick failed; trying again")
            self._stop.wait(self.tick_seconds)


def start_scheduler(
    ctx: CommandContext,
    *,
    clock: Callable[[], datetime] = utcnow,
    tick_seconds: float = TICK_SECONDS,
) -> Scheduler:
    """The drift scheduler of a server process, started; idle while no repos.yaml entry enables drift.

    Each claimed slot is queued with the context's `submit`, the server's job queue.
    """
    submit = ctx.submit
    assert submit is not None, "a server's context queues its jobs"

    def queue_slot(slot: Slot) -> None:
        submit(drift_job(slot.repo, slot.schedule, slot.at))

    return Scheduler(
        lambda known: scheduled_repos(ctx, known),
        queue_slot,
        ctx.state.claim_slot,
        busy=lambda slot: unfinished_check(ctx.state, slot.repo, slot.schedule) is not None,
        clock=clock,
        tick_seconds=tick_seconds,
    ).start()
