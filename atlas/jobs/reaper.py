"""The reaper: reports jobs whose worker died and wakes FIFOs nobody drains (see `atlas.jobs.rq`)."""

from __future__ import annotations

import logging
import threading

from redis.exceptions import RedisError

from atlas.jobs.rq import REAP_SECONDS, AbandonedHook, RQQueue
from atlas.logs import job_context
from atlas.models import Job

log = logging.getLogger(__name__)


class Reaper(threading.Thread):
    """Reports jobs whose worker died and wakes forgotten FIFOs, every `interval` seconds until stopped."""

    def __init__(self, queue: RQQueue, on_abandoned: AbandonedHook, interval: float = REAP_SECONDS) -> None:
        super().__init__(name="atlas-reaper", daemon=True)
        self.queue = queue
        self.on_abandoned = on_abandoned
        self.interval = interval
        self._stopped = threading.Event()
        self._failing = False

    def run(self) -> None:
        while not self._stopped.wait(self.interval):
            self.sweep()

    def sweep(self) -> list[Job]:
        """One round; the jobs found abandoned."""
        try:
            abandoned = self.queue.reap_abandoned()
            self.queue.wake_forgotten()
        except RedisError as error:
            # Once per outage: it sweeps every few seconds.
            log.log(logging.DEBUG if self._failing else logging.WARNING,
                    "the reaper cannot reach Redis at %s: %s", self.queue.location, error)
            self._failing = True
            return []
        if self._failing:
            log.info("the reaper reaches Redis at %s again", self.queue.location)
            self._failing = False
        for job in abandoned:
            with job_context(repo=job.pull.repo.full_name, pr=job.pull.number, job_id=job.id):
                log.warning("job %s (%s on %s) was abandoned: its worker stopped", job.id, job.command, job.pull.key)
                try:
                    self.on_abandoned(job)
                except Exception:
                    log.exception("reporting abandoned job %s failed", job.id)
                try:
                    self.queue.reported(job.id)
                    self.queue.wake(job.serial_key)
                except RedisError as error:
                    log.warning("could not wake the queue of %s: %s (the next sweep does)", job.pull.key, error)
        return abandoned

    def stop(self) -> None:
        self._stopped.set()
        if self.is_alive():
            self.join()
