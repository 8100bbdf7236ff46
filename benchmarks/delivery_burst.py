"""Acknowledgement latency of a burst: 500 deliveries at once to `atlas server` with 2 web workers on Redis.

450 distinct `opened` deliveries over 10 pull requests and 50 redeliveries of some of them, all sent
at the same moment (one thread each, released together), as GitHub does after an outage or for a
busy organisation; each is answered once its job is queued in Redis (202) or its redelivery is told
apart (200). No worker runs: the jobs stay in Redis. The same burst is checked for lost and
duplicated jobs by tests/test_delivery_burst_e2e.py. Usage:

    python benchmarks/delivery_burst.py [--distinct 450] [--redeliveries 50] [--repeat 3]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.world import FIXTURES, WEBHOOK_SECRET, World, describe_ms, world
from tests.delivery_burst import plan_burst, send_burst
from tests.emulator import webhook_payload
from tests.scale_world import RedisProcess

PULLS = 10


def one_burst(w: World, distinct: int, redeliveries: int, seed: int) -> str:
    app = (FIXTURES / "multi-project/app/main.tf").read_text()
    payloads = [webhook_payload("pull_request", w.emulator.open_pull(
        "acme/infra", f"burst-{uuid.uuid4().hex[:8]}", {"app/main.tf": app.replace("replicas = 2", "replicas = 3")}),
        "opened") for _ in range(PULLS)]
    burst = send_burst(w.atlas_url, plan_burst(payloads, distinct, redeliveries, seed=seed), secret=WEBHOOK_SECRET)
    statuses = ", ".join(f"{count}x{status}" for status, count in sorted(burst.statuses().items()))
    lost = sum(1 for jobs in burst.queued().values() if len(jobs) != 1)
    return f"  {describe_ms(burst.latencies())} answers: {statuses}; deliveries not queued exactly once: {lost}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--distinct", type=int, default=450)
    parser.add_argument("--redeliveries", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="atlas-bench-burst-"))
    redis = RedisProcess(root / "redis", append_only=True).start()
    try:
        extra = ("--redis-url", redis.url(), "--web-workers", "2", "--max-connections-per-client", "1000")
        with world(extra_args=extra) as w:
            print(f"{args.distinct + args.redeliveries} deliveries at once, Redis, 2 web workers:", flush=True)
            for run in range(args.repeat):
                print(one_burst(w, args.distinct, args.redeliveries, seed=run), flush=True)
    finally:
        redis.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
