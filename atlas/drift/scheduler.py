"""Scheduled drift checks: every server process runs a `Scheduler`, and each scheduled slot runs exactly once.

A slot is one firing of one repository's cron schedule (UTC), such as `acme/infra` on `0 * * * *`
at 10:00. Every process computes the same slots from the same schedules; before running one it
claims the slot's key in the state store (`StateStore.claim_slot`: a row in SQLite, `SET NX PX` in
Redis), so with any number of processes sharing the store exactly one runs it. A slot that fired
while no process was running is not run late: scheduling starts when the process does.

Which repositories run on which schedules (`atlas.drift.targets.scheduled_repos`) is read again every few
minutes, so a changed repos.yaml entry or repo config takes effect without a restart.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from croniter import croniter

from atlas.commands.context import CommandContext
from atlas.config.settings import Settings
from atlas.drift.check import check_repo
from atlas.drift.targets import SCHEDULE_USER, scheduled_repos
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
    """Finds due slots on every tick, claims each in the store, and runs those it claimed on a small pool.

    `discover(table)` answers which repositories run on which schedules, given the last answer.
    """

    def __init__(
        self,
        discover: Callable[[ScheduleTable], ScheduleTable],
        run_slot: Callable[[Slot], object],
        claim: Callable[[str, float], bool],
        *,
        clock: Callable[[], datetime] = utcnow,
        tick_seconds: float = TICK_SECONDS,
        refresh_seconds: float = REFRESH_SECONDS,
        workers: int = 2,
        since: datetime | None = None,
    ) -> None:
        self._discover = discover
        self._run_slot = run_slot
        self._claim = claim
        self.clock = clock
        self.tick_seconds = tick_seconds
        self.refresh_seconds = refresh_seconds
        self.since = since or clock()
        self.table: ScheduleTable = {}
        self._refreshed_at: datetime | None = None
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="atlas-drift-slot")
        self._running: dict[tuple[str, str], Future[None]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self, now: datetime | None = None) -> list[Slot]:
        """Start every due slot this process claims; the slots it started."""
        now = now or self.clock()
        if self._refreshed_at is None or (now - self._refreshed_at).total_seconds() >= self.refresh_seconds:
            self.refresh(now)
        started: list[Slot] = []
        for slot in due_slots(self.table, self.since, now):
            with self._lock:
                busy = self._running.get((slot.repo, slot.schedule))
                if busy is not None and not busy.done():
                    log.warning("drift checks of %s on %r still run; skipping the slot at %s",
                                slot.repo, slot.schedule, slot.at.isoformat())
                    continue
                if not self._claim(slot.key, SLOT_CLAIM_SECONDS):
                    continue
                self._running[(slot.repo, slot.schedule)] = self._pool.submit(self._run, slot)
            started.append(slot)
        self.since = max(self.since, now)
        return started

    def refresh(self, now: datetime | None = None) -> None:
        """Read again which repositories run on which schedules (the old table stays if that fails)."""
        try:
            self.table = self._discover(self.table)
        except Exception:
            log.exception("could not read the drift schedules; keeping the previous ones")
        self._refreshed_at = now or self.clock()

    def _run(self, slot: Slot) -> None:
        log.info("running the drift checks of %s scheduled %r at %s", slot.repo, slot.schedule, slot.at.isoformat())
        try:
            self._run_slot(slot)
        except Exception:
            log.exception("the drift checks of %s at %s failed", slot.repo, slot.at.isoformat())

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait for the slots started so far to finish; False if some still run after `timeout`."""
        with self._lock:
            running = list(self._running.values())
        for future in running:
            try:
                future.result(timeout=timeout)
            except TimeoutError:
                return False
        return True

    def start(self) -> Scheduler:
        """Tick in a daemon thread until `stop()`."""
        self._thread = threading.Thread(target=self._loop, name="atlas-drift-scheduler", daemon=True)
        self._thread.start()
        return self

    def stop(self, wait: bool = False) -> None:
        self._stop.set()
        if self._thread is not None and wait:
            self._thread.join()
        self._pool.shutdown(wait=wait)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("the drift scheduler's tick failed; trying again")
            self._stop.wait(self.tick_seconds)


def start_scheduler(
    ctx: CommandContext,
    settings: Settings,
    *,
    clock: Callable[[], datetime] = utcnow,
    tick_seconds: float = TICK_SECONDS,
) -> Scheduler:
    """The drift scheduler of a server process, started; idle while no repos.yaml entry enables drift."""

    def run_slot(slot: Slot) -> None:
        check_repo(ctx, slot.repo, schedule=slot.schedule, trigger="schedule", user=SCHEDULE_USER)

    return Scheduler(
        lambda known: scheduled_repos(ctx, known),
        run_slot,
        ctx.state.claim_slot,
        clock=clock,
        tick_seconds=tick_seconds,
        workers=max(1, min(4, settings.parallel_pool_size)),
    ).start()
