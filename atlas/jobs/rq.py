"""The job queue on Redis and rq: webhooks queue jobs anywhere, `atlas worker` processes run them anywhere.

The rule is the embedded queue's: jobs of one pull request (one `Job.serial_key`) run one after
another in the order they were queued, jobs of different pull requests in parallel, here across
any number of worker processes and hosts. rq knows nothing of per-key order, so atlas keeps the
order itself and uses rq only to wake a worker up.

How a job runs
--------------
- `RQQueue.enqueue(job)` records the job as queued in the state store, then, in one MULTI, appends
  its id to the pull request's FIFO (`{prefix}queue:{serial_key}`, a Redis list, with the job's
  JSON in `{prefix}queued`) and puts an rq job `run_queued(job_json)` on the rq queue. For a webhook,
  `enqueue_delivery` takes the delivery's claim in that same MULTI (watched, so two web processes
  given one delivery queue it once): a delivery is acknowledged only with its job queued.
- A worker that picks that rq job up tries to take the pull request's serialisation lock
  `{prefix}pr:{serial_key}` (SET NX with a 15 s expiry). If another worker holds it, the rq job ends
  at once: the holder runs the job, because it drains the FIFO until it is empty. So an rq job never
  waits for a lock, and a busy pull request never holds up a worker that others need.
- Holding the lock, the worker pops the FIFO's head and runs it, then the next, and so on. Popping
  from an empty FIFO releases the lock in the same Lua step (`atlas.jobs.drain`), so a job appended at
  that moment is either popped by the holder or finds the lock free when its own rq job runs.

Heartbeats and abandoned jobs
-----------------------------
While it drains, a heartbeat thread extends the serialisation lock (15 s) and the running job's
heartbeat key `{prefix}alive:{job_id}` (10 s) every 2 s. rq's own liveness checks take minutes; a
worker killed mid-job (SIGKILL, a lost host) simply stops beating, and within 10 s its heartbeat key
expires. The `Reaper` (a thread in every worker process; the web process may run one too) finds
jobs recorded as running without a heartbeat, moves each from the running set to the reporting set
in one atomic step (so one reaper reports it), marks it interrupted, frees the serialisation lock if
the dead worker still held it, calls `on_abandoned(job)`, clears the job from the reporting set and
wakes the pull request's FIFO so its next job runs. A reaper killed between the move and the end of
its report (reapers run in workers, which die too) leaves its claim behind; a claim older than
`REPORT_CLAIM_SECONDS` is taken over by the next sweep, so a job is never left unreported.
The project locks that job took are settled by `on_abandoned` before the FIFO wakes
(`atlas.commands.interrupted`). The reaper also wakes FIFOs that hold jobs but have
no lock and no recent wake-up (a worker that died between two jobs, a lock that expired).

Stopping
--------
SIGTERM makes `atlas worker` finish the job it is running (rq's warm shutdown). The drain stops
after that job, releases the lock and wakes the FIFO, so another worker runs the rest.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from redis.client import Pipeline
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, WatchError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Queue, Worker

from atlas.jobs.queue import QueueUnavailable
from atlas.models import Job, JobStatus, utcnow
from atlas.stores.jobs import JobStore
from atlas.stores.redis.backend import RedisBackend, text, watch
from atlas.stores.redis.state import DELIVERY_TTL_SECONDS

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
"""The description of a job whose worker died."""

CANCEL_REQUEST_SECONDS = 60
"""How long a cancel request waits for a worker's heartbeat to see it (heartbeats come every 2 s)."""

REPORT_CLAIM_SECONDS = 30.0
"""How long a reaper's claim to report an abandoned job holds; an older one's reaper died, and another takes it."""

AbandonedHook = Callable[[Job], None]
"""Told about each job whose worker died, after it is recorded as interrupted (comment, status)."""


# Move a running job whose heartbeat expired from the running set to the reporting set (the claim
# ARGV[2]), freeing its pull request's lock if the dead worker still held it; 1 for the one reaper that did.
# KEYS: running, running-owner, alive key, pr lock, reporting; ARGV: job id, claim
_REAP = """
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
local token = redis.call('HGET', KEYS[2], ARGV[1])
if not token then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
if redis.call('GET', KEYS[4]) == token then redis.call('DEL', KEYS[4]) end
redis.call('HSET', KEYS[5], ARGV[1], ARGV[2])
return 1
"""

# Take over a stale claim to report a job: 1 if the claim was still ARGV[2] and is now ARGV[3].
# KEYS: reporting; ARGV: job id, stale claim, new claim
_TAKE_OVER = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
"""


class QueueKeys:
    """The Redis keys of the queue, built by the backend below its prefix."""

    def __init__(self, backend: RedisBackend) -> None:
        self._key = backend.key

    @property
    def rq_queue_name(self) -> str:
        """The rq queue's name (rq keeps it as `rq:queue:{name}`)."""
        return self._key("jobs")

    def fifo(self, serial_key: str) -> str:
        return self._key("queue", serial_key)

    def pull_lock(self, serial_key: str) -> str:
        return self._key("pr", serial_key)

    def wake(self, serial_key: str) -> str:
        return self._key("wake", serial_key)

    def alive(self, job_id: str) -> str:
        return f"{self.alive_prefix}{job_id}"

    def cancel(self, pull_key: str) -> str:
        return self._key("cancel", pull_key)

    @property
    def alive_prefix(self) -> str:
        return self._key("alive", "")

    @property
    def queued(self) -> str:
        return self._key("queued")

    @property
    def queued_pulls(self) -> str:
        return self._key("queued-pulls")

    @property
    def running(self) -> str:
        return self._key("running")

    @property
    def running_owner(self) -> str:
        return self._key("running-owner")

    @property
    def reporting(self) -> str:
        """Abandoned jobs a reaper is reporting: job id → its claim (when, and the job)."""
        return self._key("reporting")


class RQQueue:
    """`JobQueue` on Redis: jobs wait in Redis and run in `atlas worker` processes, serial per pull request."""

    def __init__(self, backend: RedisBackend, state: JobStore,
                 report_claim_seconds: float = REPORT_CLAIM_SECONDS) -> None:
        self.backend = backend
        self.report_claim_seconds = report_claim_seconds
        self.keys = QueueKeys(backend)
        self.location = backend.location
        self.redis = backend.redis
        # rq stores pickles, which a client decoding replies would mangle.
        self._rq_redis = backend.binary
        self.rq_queue = Queue(self.keys.rq_queue_name, connection=self._rq_redis)
        self._state = state
        self._reap = self.redis.register_script(_REAP)
        self._take_over = self.redis.register_script(_TAKE_OVER)
        self._closed = False

    def enqueue(self, job: Job) -> None:
        self._enqueue(job, None)

    def enqueue_delivery(self, job: Job, delivery_id: str, event: str) -> bool:
        """Claim the webhook delivery and queue its job in one Redis transaction: both or neither, so a
        delivery is never claimed without its job (whose redelivery would then be dropped) nor queued
        twice. False, with nothing queued, when the delivery was claimed before (a redelivery)."""
        return self._enqueue(job, (delivery_id, event))

    def _enqueue(self, job: Job, delivery: tuple[str, str] | None) -> bool:
        if self._closed:
            raise QueueUnavailable("the job queue is shutting down")
        body = job.model_dump_json()
        claim = self.backend.delivery_key(delivery[0]) if delivery else None
        saved = False
        try:
            with self._rq_redis.pipeline(transaction=True) as pipe:
                if claim is not None:
                    watch(pipe, claim)
                    if pipe.exists(claim):
                        return False
                self._state.save_job(job, JobStatus.QUEUED)
                saved = True
                pipe.multi()  # before rq queues its commands, or it refuses to start the MULTI itself
                if claim is not None and delivery is not None:
                    pipe.set(claim, delivery[1], ex=DELIVERY_TTL_SECONDS)
                pipe.rpush(self.keys.fifo(job.serial_key), job.id)
                pipe.hset(self.keys.queued, job.id, body)
                pipe.sadd(self.keys.queued_pulls, job.serial_key)
                pipe.set(self.keys.wake(job.serial_key), job.id, px=WAKE_MS)
                self._enqueue_wake_up(body, job, pipeline=pipe)
                pipe.execute()
            return True
        except WatchError as error:
            # Another web process claimed the same delivery between our look and our step, or (redis-py
            # says so too) the connection failed while watching: only the claim tells which.
            if claim is not None and self._claimed(claim):
                self._not_queued(job, "a redelivery of a delivery queued meanwhile", JobStatus.CANCELLED)
                return False
            self._not_queued(job, f"could not be queued: {error}", JobStatus.FAILED)
            raise QueueUnavailable(f"Redis at {self.location} is unreachable ({error})") from error
        except RedisError as error:
            if saved:
                self._not_queued(job, f"could not be queued: {error}", JobStatus.FAILED)
            raise self._unavailable(error) from error

    def _claimed(self, claim: str) -> bool:
        try:
            return bool(self.redis.exists(claim))
        except RedisError:
            return False

    def _not_queued(self, job: Job, why: str, status: JobStatus) -> None:
        """Its record was saved and the job was not queued: say so, so that no record waits as queued forever."""
        try:
            self._state.set_job_status(job.id, status, why)
        except RedisError as error:
            log.warning("job %s was not queued (%s), and its record still says queued: %s", job.id, why, error)

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
        """Jobs recorded as running whose heartbeat expired, each recorded as interrupted and claimed for
        reporting, and jobs whose reporter died before it finished; the caller reports them, clears each
        (`reported`), then wakes their FIFOs (`wake`)."""
        entries = self.redis.hgetall(self.keys.running).items()
        running = {text(job_id) or "": text(body) or "" for job_id, body in entries}
        abandoned = self._unreported()
        if not running:
            return abandoned
        with self.redis.pipeline(transaction=False) as pipe:
            for job_id in running:
                pipe.exists(self.keys.alive(job_id))
            alive = pipe.execute()
        for (job_id, body), beating in zip(running.items(), alive, strict=True):
            if beating:
                continue
            job = Job.model_validate_json(body)
            keys = [self.keys.running, self.keys.running_owner, self.keys.alive(job_id),
                    self.keys.pull_lock(job.serial_key), self.keys.reporting]
            if not self._reap(keys=keys, args=[job_id, _claim(body)]):
                continue  # it finished meanwhile, or another reaper took it
            record = self._state.get_job(job_id)
            # A job that recorded its end just before its worker died was not interrupted.
            if record is None or not record.status.finished:
                self._state.set_job_status(job_id, JobStatus.INTERRUPTED, ABANDONED)
                # Woken by the caller once reported, so that the next job cannot take the locks
                # being settled from under the report.
                abandoned.append(job)
            else:
                self.reported(job_id)
                self.wake(job.serial_key)
        return abandoned

    def _unreported(self) -> list[Job]:
        """The jobs whose reaper claimed them longer ago than `report_claim_seconds` (it died reporting),
        claimed anew by this reaper."""
        stale: list[Job] = []
        for job_id, claim in self.redis.hgetall(self.keys.reporting).items():
            held = json.loads(text(claim) or "{}")
            if time.time() - float(held.get("at", 0)) < self.report_claim_seconds:
                continue
            body = str(held.get("job", ""))
            if self._take_over(keys=[self.keys.reporting], args=[text(job_id) or "", text(claim) or "",
                                                                  _claim(body)]):
                log.warning("job %s was claimed for reporting %.0f s ago and not reported; reporting it",
                            text(job_id), time.time() - float(held.get("at", 0)))
                stale.append(Job.model_validate_json(body))
        return stale

    def reported(self, job_id: str) -> None:
        """The abandoned job was reported (or reporting it failed and was logged): no reaper reports it again."""
        self.redis.hdel(self.keys.reporting, job_id)

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
            RUN_QUEUED,
            args=(body,),
            # TerraformRunner bounds each terraform run; a drain may run several jobs.
            timeout=-1,
            result_ttl=0,
            failure_ttl=24 * 3600,
            description=f"atlas {job.command} for {job.pull.key} (job {job.id})",
            pipeline=pipeline,
        )


def _claim(body: str) -> str:
    """A reaper's claim to report the job `body`: the job and when it was claimed."""
    return json.dumps({"at": time.time(), "job": body})


class Drainer(Protocol):
    """What runs the queued jobs of one pull request in this process (`atlas.jobs.drain.SerialRunner`)."""

    def drain(self, serial_key: str) -> int: ...


RUN_QUEUED = f"{__name__}.run_queued"
"""The rq job function, by name: what every rq job atlas queues calls."""

_runner: Drainer | None = None


def install_runner(runner: Drainer | None) -> None:
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
