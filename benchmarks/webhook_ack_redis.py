"""Webhook acknowledgement latency with Redis: `atlas server --redis-url ... --web-workers 2` (gunicorn).

Signed `opened` deliveries, each with its own delivery id, are sent one at a time (the unloaded
latency), then 100 at a time; for each one atlas
verifies the signature, parses the payload, claims the delivery id and queues the job in Redis
before it answers 202. No `atlas worker` runs, as if workers ran on other hosts: the jobs stay in
Redis. For comparison the same load goes to the embedded default (one web process, whose own
threads then run the queued plans on the same cores). Usage:

    python benchmarks/webhook_ack_redis.py [--deliveries 1000] [--concurrency 1,100] [--no-embedded]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.world import FIXTURES, WEBHOOK_SECRET, World, describe_ms, world
from tests.emulator import deliver, webhook_payload
from tests.scale_world import RedisProcess

WARM_UP = 20
"""Deliveries sent one at a time first, so connections and both web processes are warm."""


def measure(w: World, deliveries: int, levels: list[int]) -> str:
    """Send the deliveries `concurrency` at a time, for each level; lines of latency figures."""
    app = (FIXTURES / "multi-project/app/main.tf").read_text()
    pull = w.emulator.open_pull("acme/infra", f"bench-{uuid.uuid4().hex[:8]}",
                                {"app/main.tf": app.replace("replicas = 2", "replicas = 3")})
    payload = webhook_payload("pull_request", pull, "opened")
    url = f"{w.atlas_url}/events"

    def one(_: int) -> float:
        started = time.perf_counter()
        response = deliver(url, "pull_request", payload, secret=WEBHOOK_SECRET, delivery_id=str(uuid.uuid4()))
        elapsed = time.perf_counter() - started
        if response.status_code != 202:
            raise RuntimeError(f"unexpected {response.status_code}: {response.text}")
        return elapsed

    for index in range(WARM_UP):
        one(index)
    lines = []
    for concurrency in levels:
        with ThreadPoolExecutor(concurrency) as pool:
            started = time.perf_counter()
            latencies = list(pool.map(one, range(deliveries)))
            wall = time.perf_counter() - started
        lines.append(f"  concurrency={concurrency:<3} {describe_ms(latencies)} "
                     f"throughput={deliveries / wall:.0f} deliveries/s")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deliveries", type=int, default=1000)
    parser.add_argument("--concurrency", default="1,100", help="comma-separated levels, each sent --deliveries")
    parser.add_argument("--no-embedded", action="store_true", help="skip the embedded default for comparison")
    args = parser.parse_args()
    levels = [int(level) for level in args.concurrency.split(",")]

    root = Path(tempfile.mkdtemp(prefix="atlas-bench-redis-"))
    redis = RedisProcess(root / "redis").start()
    try:
        with world(extra_args=("--redis-url", redis.url(), "--web-workers", "2")) as w:
            print(f"redis, 2 web workers:\n{measure(w, args.deliveries, levels)}", flush=True)
    finally:
        redis.stop()
        shutil.rmtree(root, ignore_errors=True)
    if not args.no_embedded:
        with world() as w:
            print(f"embedded, 1 web worker:\n{measure(w, args.deliveries, levels)}", flush=True)


if __name__ == "__main__":
    main()
