"""Webhook acknowledgement latency: signed pull_request deliveries to `atlas server` (gunicorn).

Each delivery is a real `opened` event with its own delivery id, so atlas verifies, parses,
de-duplicates and queues a job for every one, as it would for GitHub; the jobs then run in the
background while later deliveries are being answered. Usage:

    python benchmarks/webhook_ack.py [--deliveries 400] [--concurrency 1 50 200]
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.world import FIXTURES, WEBHOOK_SECRET, describe_ms, world
from tests.emulator import deliver, webhook_payload


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deliveries", type=int, default=400, help="deliveries per concurrency level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 50, 200],
                        help="concurrent deliveries, one run per level")
    args = parser.parse_args()
    with world() as w:
        app = (FIXTURES / "multi-project/app/main.tf").read_text()
        pull = w.emulator.open_pull("acme/infra", "bench", {"app/main.tf": app.replace("replicas = 2", "replicas = 3")})
        payload = webhook_payload("pull_request", pull, "opened")
        url = f"{w.atlas_url}/events"

        def one() -> float:
            started = time.perf_counter()
            response = deliver(url, "pull_request", payload, secret=WEBHOOK_SECRET, delivery_id=str(uuid.uuid4()),
                               timeout=60)
            elapsed = time.perf_counter() - started
            if response.status_code != 202:
                raise RuntimeError(f"unexpected {response.status_code}: {response.text}")
            return elapsed

        for _ in range(20):  # warm up connections and the app
            one()
        for concurrency in args.concurrency:
            with ThreadPoolExecutor(concurrency) as pool:
                started = time.perf_counter()
                latencies = list(pool.map(lambda _: one(), range(args.deliveries)))
                wall = time.perf_counter() - started
            print(f"concurrency={concurrency:<3} {describe_ms(latencies)} "
                  f"throughput={args.deliveries / wall:.0f} deliveries/s")


if __name__ == "__main__":
    main()
