"""Draining a pull request's FIFO in an `atlas worker` process: the serialisation lock, heartbeats, one job at a time.

See `atlas.jobs.rq` for the whole protocol; this is the worker's side of it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from redis.exceptions import RedisError

from atlas.jobs.queue import JobExecutor
from atlas.jobs.rq import HEARTBEAT_SECONDS, JOB_HEARTBEAT_TTL_MS, PULL_LOCK_TTL_MS, RQQueue
from atlas.logs import job_context
from atlas.models import Job, JobStatus, new_id
from atlas.stores.jobs import JobStore
from atlas.stores.redis.backend import text

log = logging.getLogger(__name__)

# Pop the next job of a pull request's FIFO for the holder of its lock, recording it as running with
# a fresh heartbeat; on an empty FIFO release the lock instead, in the same step.
# KEYS: fifo, pr lock, queued, queued-pulls, running, running-owner
# ARGV: token, serial key, alive-key prefix, heartbeat ttl ms
_CLAIM_NEXT = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return {'lost'} end
while true do
  local id = redis.call('LPOP', KEYS[1])
  if not id then
    redis.call('DEL', KEYS[2])
    redis.call('SREM', KEYS[4], ARGV[2])
    return {'empty'}
  end
  local body = redis.call('HGET', KEYS[3], id)
  redis.call('HDEL', KEYS[3], id)
  if body then
    if redis.call('LLEN', KEYS[1]) == 0 then redis.call('SREM', KEYS[4], ARGV[2]) end
    redis.call('HSET', KEYS[5], id, body)
    redis.call('HSET', KEYS[6], id, ARGV[1])
    redis.call('SET', ARGV[3] .. id, ARGV[1], 'PX', ARGV[4])
    return {'job', body}
  end
end
"""

# Extend the lock and the running job's heartbeat, if the lock is still this worker's.
# KEYS: pr lock[, alive key]; ARGV: token, lock ttl ms, heartbeat ttl ms
_BEAT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if KEYS[2] then redis.call('PEXPIRE', KEYS[2], ARGV[3]) end
return 1
"""

# Release a lock if it is still this worker's.  KEYS: pr lock; ARGV: token
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

class Heartbeat(threading.Thread):
    """Extends a draining worker's serialisation lock, and its running job's heartbeat, until stopped.

    If the lock was lost (this process stalled longer than the lock lives, and a reaper reported the
    job as abandoned), `on_lost` is called once with the running job, to stop it: another worker may
    already run the pull request's next job.
    """

    def __init__(
        self, queue: RQQueue, serial_key: str, token: str, on_lost: Callable[[Job], object] | None = None
    ) -> None:
        super().__init__(name=f"atlas-heartbeat-{serial_key}", daemon=True)
        self.queue = queue
        self.serial_key = serial_key
        self.token = token
        self.on_lost = on_lost
        self.job: Job | None = None
        self.lost = threading.Event()
        self.cancelled = threading.Event()
        self._stopped = threading.Event()
        self._beat = queue.redis.register_script(_BEAT)

    def run(self) -> None:
        while not self._stopped.wait(HEARTBEAT_SECONDS) and not self.lost.is_set():
            job = self.job
            keys = [self.queue.keys.pull_lock(self.serial_key)]
            if job is not None:
                keys.append(self.queue.keys.alive(job.id))
            try:
                beating = self._beat(keys=keys, args=[self.token, PULL_LOCK_TTL_MS, JOB_HEARTBEAT_TTL_MS])
            except RedisError as error:
                log.warning("could not extend the lock of %s: %s", self.serial_key, error)
                continue
            if job is not None and self.on_lost is not None and not self.cancelled.is_set():
                try:
                    if self.queue.cancel_requested(job):
                        self.cancelled.set()
                        log.info("interrupting job %s: atlas cancel was asked for %s", job.id, job.pull.key)
                        self.on_lost(job)
                except RedisError as error:
                    log.warning("could not read cancel requests for %s: %s", self.serial_key, error)
            if not beating:
                self.lost.set()
                log.error("lost the serialisation lock of %s: this process stalled for over %d s",
                          self.serial_key, PULL_LOCK_TTL_MS // 1000)
                if job is not None and self.on_lost is not None:
                    log.error("interrupting job %s, which was reported as abandoned", job.id)
                    self.on_lost(job)

    def stop(self) -> None:
        self._stopped.set()
        self.join()


class SerialRunner:
    """Runs the queued jobs of one pull request at a time in this worker process, under its serialisation lock.

    `stopping` is set when the process should take no further job; `interrupt` stops a running job
    whose lock this process lost (see `Heartbeat`).
    """

    def __init__(
        self,
        queue: RQQueue,
        execute: JobExecutor,
        state: JobStore,
        *,
        worker_name: str,
        stopping: threading.Event | None = None,
        interrupt: Callable[[Job], object] | None = None,
    ) -> None:
        self.queue = queue
        self.execute = execute
        self.state = state
        self.worker_name = worker_name
        self.stopping = stopping or threading.Event()
        self.interrupt = interrupt
        self._claim_next = queue.redis.register_script(_CLAIM_NEXT)
        self._release = queue.redis.register_script(_RELEASE)

    def drain(self, serial_key: str) -> int:
        """Run the FIFO's jobs until it is empty, unless another worker holds its lock; how many ran."""
        keys = self.queue.keys
        token = f"{self.worker_name}:{new_id()}"
        if not self.queue.redis.set(keys.pull_lock(serial_key), token, nx=True, px=PULL_LOCK_TTL_MS):
            log.debug("%s is being run by another worker", serial_key)
            return 0
        heartbeat = Heartbeat(self.queue, serial_key, token, self.interrupt)
        heartbeat.start()
        ran = 0
        try:
            while not heartbeat.lost.is_set():
                if self.stopping.is_set():
                    self._hand_back(serial_key, token)
                    break
                reply = self._claim_next(
                    keys=[keys.fifo(serial_key), keys.pull_lock(serial_key), keys.queued, keys.queued_pulls,
                          keys.running, keys.running_owner],
                    args=[token, serial_key, keys.alive_prefix, JOB_HEARTBEAT_TTL_MS],
                )
                outcome = text(reply[0])
                if outcome != "job":
                    if outcome == "lost":
                        log.error("the serialisation lock of %s expired; leaving its jobs to another worker",
                                  serial_key)
                    break
                job = Job.model_validate_json(text(reply[1]) or "")
                heartbeat.job = job
                self._run(job)
                # A BaseException (SystemExit in a cold shutdown) skips this: the job stays recorded as
                # running, its heartbeat expires, and a reaper reports it like any abandoned job.
                self._finish(job)
                heartbeat.job = None
                ran += 1
        finally:
            heartbeat.stop()
        return ran

    def _run(self, job: Job) -> None:
        try:
            self.execute(job)
        except Exception:  # the executor reports its own failures; this is the last guard
            with job_context(repo=job.pull.repo.full_name, pr=job.pull.number, job_id=job.id):
                log.exception("job %s raised", job.id)
            self.state.set_job_status(job.id, JobStatus.FAILED, "internal error")

    def _finish(self, job: Job) -> None:
        keys = self.queue.keys
        with self.queue.redis.pipeline(transaction=True) as pipe:
            pipe.hdel(keys.running, job.id)
            pipe.hdel(keys.running_owner, job.id)
            pipe.delete(keys.alive(job.id))
            pipe.execute()

    def _hand_back(self, serial_key: str, token: str) -> None:
        """Leave the rest of the FIFO to another worker: this one is stopping."""
        self._release(keys=[self.queue.keys.pull_lock(serial_key)], args=[token])
        if self.queue.wake(serial_key):
            log.info("stopping: left the queued jobs of %s to another worker", serial_key)
