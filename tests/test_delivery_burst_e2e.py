"""Load: 500 deliveries at once to an `atlas server` with 2 web workers on Redis, 50 of them redeliveries.

Every distinct delivery is acknowledged with 202 and queued as exactly one job, every redelivery
is answered 200 and queued as none (whichever of the two copies arrives first), and each queued job
runs exactly once on the workers (`atlas worker` with the recording executor, so that the test is
about delivery and queueing, not terraform). The acknowledgement latencies of the same burst are
measured by benchmarks/delivery_burst.py.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from atlas.models import JobStatus
from atlas.stores.redis.backend import RedisBackend
from atlas.stores.redis.state import RedisStateStore
from tests.delivery_burst import plan_burst, send_burst
from tests.emulator import webhook_payload

if TYPE_CHECKING:
    from tests.redis_plugin import JobEvents, WorkerProcess
    from tests.scale_world import ScaleWorld

pytest_plugins = ["tests.scale_world", "tests.redis_plugin"]

DISTINCT, REDELIVERIES, PULLS = 450, 50, 10


def test_500_deliveries_at_once_are_each_queued_once_and_each_job_runs_once(
    scale_world: ScaleWorld, start_worker: Callable[..., WorkerProcess], job_events: JobEvents,
    eventually: Callable[..., Any], redis_url: str,
) -> None:
    world = scale_world
    world.create_repo("acme/infra")
    payloads = [webhook_payload("pull_request", world.open_pull("acme/infra", f"change-{i}"), "opened")
                for i in range(PULLS)]
    # GitHub delivers from many addresses; here every connection comes from 127.0.0.1.
    server = world.start_server(extra_args=("--max-connections-per-client", "1000"))

    burst = send_burst(server.url, plan_burst(payloads, DISTINCT, REDELIVERIES))

    assert burst.statuses() == Counter({202: DISTINCT, 200: REDELIVERIES}), [
        (a.status, a.text[:200]) for a in burst.answers if a.status not in (200, 202)][:5]
    queued = burst.queued()
    assert all(len(jobs) == 1 for jobs in queued.values()), "a delivery was lost or queued twice"
    job_ids = {jobs[0] for jobs in queued.values()}

    for _ in range(2):
        start_worker(concurrency=2).wait_for_log("listening on queue")
    eventually(lambda: len(job_events.of("end")) >= DISTINCT, 240, f"{DISTINCT} jobs running")
    started = Counter(entry["job"] for entry in job_events.of("start"))
    assert set(started) == job_ids and set(started.values()) == {1}, "every job ran, and ran once"
    state = RedisStateStore(RedisBackend(redis_url))
    records = [state.get_job(job_id) for job_id in job_ids]
    assert {record.status for record in records if record is not None} == {JobStatus.SUCCEEDED}
    assert None not in records
