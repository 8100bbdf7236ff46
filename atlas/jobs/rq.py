"""The job queue on Redis and rq: webhooks queue jobs anywhere, `atlas worker` processes run them anywhere.

The rule is the embedded queue's: jobs of one pull request (one `Job.serial_key`) run one after
another in the order they were queued, jobs of different pull requests in parallel, here across
any number of worker processes and hosts. rq knows nothing of per-key order, so atlas keeps the
order itself and uses rq only to wake a worker up.

How a job runs
--------------
- `RQQueue.enqueue(job)` records the job as queued in the state store, then, in one MULTI, appends
  its id to the pull request's FIFO (`{prefix}queue:{serial_key}`, a Redis list, with the job's
  JSON in `{prefix}queued`) and puts an rq job `run_queued(job_json)` on the rq queue.
- A worker that picks that rq job up tries to take the pull request's serialisation lock
  `{prefix}pr:{serial_key}` (SET NX with a 15 s expiry). If another worker holds it, the rq job ends
  at once: the holder runs the job, because it drains the FIFO until it is empty. So an rq job never
  waits for a lock, and a busy pull request never holds up a worker that others need.
- Holding the lock, the worker pops the FIFO's head and runs it, then the next, and so on. Popping
  from an empty FIFO releases the lock in the same Lua step (`_CLAIM_NEXT`), so a job appended at
  that moment is either popped by the holder or finds the lock free when its own rq job runs.

Heartbeats and abandoned jobs
-----------------------------
While it drains, a heartbeat thread extends the serialisation lock (15 s) and the running job's
heartbeat key `{prefix}alive:{job_id}` (10 s) every 2 s. rq's own liveness checks take minutes; a
worker killed mid-job (SIGKILL, a lost host) simply stops beating, and within 10 s its heartbeat key
expires. The `Reaper` (a thread in every worker process; the web process may run one too) finds
jobs recorded as running without a heartbeat, takes each out of the running set in one atomic step
(so one reaper reports it), marks it interrupted, frees the serialisation lock if the dead worker
still held it, calls `on_abandoned(job)` and wakes the pull request's FIFO so its next job runs.
The project locks that job took are settled by `on_abandoned` before the FIFO wakes
(`atlas.commands.interrupted`). The reaper also wakes FIFOs that hold jobs but have
no lock and no recent wake-up (a worker that died between two jobs, a lock that expired).

Stopping
--------
SIGTERM makes `atlas worker` finish the job it is running (rq's warm shutdown). The drain stops
after that job, releases the lock and wakes the FIFO, so another worker runs the rest.

Over 500 lines on purpose: the per-pull-request FIFOs, the drain that runs them and the reaper that
reports dead workers share one set of Redis keys and must be read together.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from redis.client import Pipeline
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Queue, Worker

from atlas.jobs.queue import JobExecutor, QueueUnavailable
from atlas.logs import job_context
from atlas.models import Job, JobStatus, new_id, utcnow
from atlas.stores.redis_state import DEFAULT_PREFIX, connect, redis_location, text
from atlas.stores.state import StateStore

log = logging.getLogger(__name__)

PULL_LOCK_TTL_MS = 15_000
"""How long a pull request's serialisation lock outlives the last heartbeat of the worker holding it."""

JOB_HEARTBEAT_TTL_MS = 10_000
"""How long a running job's heartbeat key outlives its worker's last beat; then the reaper reports it."""

HEARTBEAT_SECONDS = 2.0
"""How often a draining worker extends its lock and its job's heartbeat."""

REAP_SECONDS = 2.0
"""How often a reaper looks for abandoned jobs and forgotten FIFOs."""

WAKE_MS = 30_000
"""How long after a wake-up a FIFO with jobs and no lock counts as forgotten, and is woken again."""

ABANDONED = "interrupted: the worker running it stopped (no heartbeat)"

CANCEL_REQUEST_SECONDS = 60
"""How long a cancel request waits for a worker's heartbeat to see it (heartbeats come every 2 s)."""
"""The description of a job whose worker died."""

AbandonedHook = Callable[[Job], None]
"""Told about each job whose worker died, after it is recorded as interrupted (comment, status)."""


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

# Take a running job whose heartbeat expired out of the running set, freeing its pull request's
# lock if the dead worker still held it; 1 for the one reaper that did.
# KEYS: running, running-owner, alive key, pr lock; ARGV: job id
_REAP = """
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
local token = redis.call('HGET', KEYS[2], ARGV[1])
if not token then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
if redis.call('GET', KEYS[4]) == token then redis.call('DEL', KEYS[4]) end
return 1
"""


@dataclass(frozen=True)
class QueueKeys:
    """The Redis keys of the queue, below one prefix."""

    prefix: str = DEFAULT_PREFIX

    @property
    def rq_queue_name(self) -> str:
        """The rq queue's name (rq keeps it as `rq:queue:{name}`)."""
        return f"{self.prefix}jobs"

    def fifo(self, serial_key: str) -> str:
        return f"{self.prefix}queue:{serial_key}"

    def pull_lock(self, serial_key: str) -> str:
        return f"{self.prefix}pr:{serial_key}"

    def wake(self, serial_key: str) -> str:
        return f"{self.prefix}wake:{serial_key}"

    def alive(self, job_id: str) -> str:
        return f"{self.alive_prefix}{job_id}"

    def cancel(self, pull_key: str) -> str:
        return f"{self.prefix}cancel:{pull_key}"

    @property
    def alive_prefix(self) -> str:
        return f"{self.prefix}alive:"

    @property
    def queued(self) -> str:
        return f"{self.prefix}queued"

    @property
    def queued_pulls(self) -> str:
        return f"{self.prefix}queued-pulls"

    @property
    def running(self) -> str:
        return f"{self.prefix}running"

    @property
    def running_owner(self) -> str:
        return f"{self.prefix}running-owner"


class RQQueue:
    """`JobQueue` on Redis: jobs wait in Redis and run in `atlas worker` processes, serial per pull request."""

    def __init__(self, redis_url: str, state: StateStore, *, prefix: str = DEFAULT_PREFIX) -> None:
        self.keys = QueueKeys(prefix)
        self.location = redis_location(redis_url)
        self.redis = connect(redis_url)
        # rq stores pickles, which a client decoding replies would mangle.
        self._rq_redis = connect(redis_url, decode_responses=False)
        self.rq_queue = Queue(self.keys.rq_queue_name, connection=self._rq_redis)
        self._state = state
        self._reap = self.redis.register_script(_REAP)
        self._closed = False

    def enqueue(self, job: Job) -> None:
        if self._closed:
            raise QueueUnavailable("the job queue is shutting down")
        body = job.model_dump_json()
        try:
            self._state.save_job(job, JobStatus.QUEUED)
            with self._rq_redis.pipeline(transaction=True) as pipe:
                pipe.multi()  # before rq queues its commands, or it refuses to start the MULTI itself
                pipe.rpush(self.keys.fifo(job.serial_key), job.id)
                pipe.hset(self.keys.queued, job.id, body)
                pipe.sadd(self.keys.queued_pulls, job.serial_key)
                pipe.set(self.keys.wake(job.serial_key), job.id, px=WAKE_MS)
                self._enqueue_wake_up(body, job, pipeline=pipe)
                pipe.execute()
        except RedisError as error:
            raise self._unavailable(error) from error

    def request_cancel(self, pull_key: str) -> None:
        """Ask whichever worker runs this pull request's job to interrupt it (seen at its next heartbeat)."""
        try:
            self.redis.set(self.keys.cancel(pull_key), utcnow().isoformat(), ex=CANCEL_REQUEST_SECONDS)
        except RedisError as error:
            raise QueueUnavailable(f"Redis at {self.location} is unreachable: {error}") from None

    def cancel_requested(self, job: Job) -> bool:
        """Whether `atlas cancel` was asked for this job's pull request after the job was queued."""
        asked = self.redis.get(self.keys.cancel(job.pull.key))
        return asked is not None and datetime.fromisoformat(str(asked)) >= job.created_at

    def depth(self) -> int:
        try:
            return int(self.redis.hlen(self.keys.queued))
        except RedisError as error:
            raise self._unavailable(error) from error

    def running(self) -> list[str]:
        try:
            return sorted(text(job_id) or "" for job_id in self.redis.hkeys(self.keys.running))
        except RedisError as error:
            raise self._unavailable(error) from error

    def workers(self) -> int:
        """rq workers listening on atlas's queue now (each `atlas worker` process is one)."""
        try:
            return int(Worker.count(connection=self._rq_redis, queue=self.rq_queue))
        except RedisError as error:
            raise self._unavailable(error) from error

    def _unavailable(self, error: RedisError) -> QueueUnavailable:
        if isinstance(error, RedisConnectionError | RedisTimeoutError):
            return QueueUnavailable(f"Redis at {self.location} is unreachable ({error})")
        return QueueUnavailable(f"Redis at {self.location} failed: {error}")

    def shutdown(self, wait: bool = True) -> None:
        """Refuse further jobs; the jobs already queued stay in Redis for the workers."""
        self._closed = True

    # What reapers do

    def reap_abandoned(self) -> list[Job]:
        """Jobs recorded as running whose heartbeat expired, each recorded as interrupted; the caller reports
        them, then wakes their FIFOs (`wake`)."""
        entries = self.redis.hgetall(self.keys.running).items()
        running = {text(job_id) or "": text(body) or "" for job_id, body in entries}
        if not running:
            return []
        with self.redis.pipeline(transaction=False) as pipe:
            for job_id in running:
                pipe.exists(self.keys.alive(job_id))
            alive = pipe.execute()
        abandoned: list[Job] = []
        for (job_id, body), beating in zip(running.items(), alive, strict=True):
            if beating:
                continue
            job = Job.model_validate_json(body)
            keys = [self.keys.running, self.keys.running_owner, self.keys.alive(job_id),
                    self.keys.pull_lock(job.serial_key)]
            if not self._reap(keys=keys, args=[job_id]):
                continue  # it finished meanwhile, or another reaper took it
            record = self._state.get_job(job_id)
            # A job that recorded its end just before its worker died was not interrupted.
            if record is None or not record.status.finished:
                self._state.set_job_status(job_id, JobStatus.INTERRUPTED, ABANDONED)
                # Woken by the caller once reported, so that the next job cannot take the locks
                # being settled from under the report.
                abandoned.append(job)
            else:
                self.wake(job.serial_key)
        return abandoned

    def wake_forgotten(self) -> list[str]:
        """Wake the FIFOs that hold jobs but have no lock and no recent wake-up; their serial keys."""
        serial_keys = sorted(text(key) or "" for key in self.redis.smembers(self.keys.queued_pulls))
        if not serial_keys:
            return []
        with self.redis.pipeline(transaction=False) as pipe:
            for serial_key in serial_keys:
                pipe.exists(self.keys.pull_lock(serial_key))
            locked = pipe.execute()
        woken = []
        for serial_key, is_locked in zip(serial_keys, locked, strict=True):
            if is_locked or not self.redis.set(self.keys.wake(serial_key), "reaper", nx=True, px=WAKE_MS):
                continue
            if self.wake(serial_key):
                woken.append(serial_key)
        return woken

    def wake(self, serial_key: str) -> bool:
        """Put an rq job on the queue for the FIFO's first job, if it has one; whether it had."""
        head = text(self.redis.lindex(self.keys.fifo(serial_key), 0))
        body = text(self.redis.hget(self.keys.queued, head)) if head else None
        if body is None:
            return False
        self._enqueue_wake_up(body, Job.model_validate_json(body))
        return True

    def _enqueue_wake_up(self, body: str, job: Job, pipeline: Pipeline | None = None) -> None:
        self.rq_queue.enqueue_call(
            run_queued,
            args=(body,),
            # TerraformRunner bounds each terraform run; a drain may run several jobs.
            timeout=-1,
            result_ttl=0,
            failure_ttl=24 * 3600,
            description=f"atlas {job.command} for {job.pull.key} (job {job.id})",
            pipeline=pipeline,
        )


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
        state: StateStore,
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
                    self.queue.wake(job.serial_key)
                except RedisError as error:
                    log.warning("could not wake the queue of %s: %s (the next sweep does)", job.pull.key, error)
        return abandoned

    def stop(self) -> None:
        self._stopped.set()
        if self.is_alive():
            self.join()


_runner: SerialRunner | None = None


def install_runner(runner: SerialRunner | None) -> None:
    """Make `runner` run this process's rq jobs; `atlas worker` does so once in each worker process."""
    global _runner
    _runner = runner


def run_queued(job_json: str) -> str:
    """rq's job function: run the job's pull request's FIFO, unless another worker already is."""
    if _runner is None:
        raise RuntimeError("no atlas runner in this process; run atlas jobs with `atlas worker`, not `rq worker`")
    job = Job.model_validate_json(job_json)
    ran = _runner.drain(job.serial_key)
    return f"ran {ran} job(s) of {job.serial_key}"
