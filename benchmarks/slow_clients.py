"""Webhook acknowledgement while slow clients hold connections open (slowloris).

Opens `--stalled` connections (silent, half headers, trickling bodies; reopened whenever the server
closes one), then sends `--deliveries` signed pull_request deliveries at once and reports how
many were answered 202 within `--deadline` seconds, and how fast. Usage:

    python benchmarks/slow_clients.py [--front atlas|gthread|gthread:256|waitress] [--stalled 200] [--deliveries 50]
        [--attackers 10]

`--front atlas` is `atlas server`; the others serve the same app with another HTTP server
(`benchmarks/fronts.py`). Attackers connect from 127.0.0.2 … (`--attackers` addresses, 0 = from
127.0.0.1 like the deliveries).
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.world import FIXTURES, WEBHOOK_SECRET, describe_ms, world
from tests.emulator import deliver, webhook_payload
from tests.stalling import StalledConnections


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--front", default="atlas", help="atlas, gthread, gthread:THREADS or waitress")
    parser.add_argument("--stalled", type=int, default=200)
    parser.add_argument("--deliveries", type=int, default=50)
    parser.add_argument("--attackers", type=int, default=10, help="source addresses of the stalled connections")
    parser.add_argument("--deadline", type=float, default=10.0, help="seconds a delivery may take")
    parser.add_argument("--hold", type=float, default=3.0, help="seconds the stalls are held before deliveries")
    args = parser.parse_args()
    front = None if args.front == "atlas" else args.front
    with world(front=front) as w:
        app = (FIXTURES / "multi-project/app/main.tf").read_text()
        pull = w.emulator.open_pull("acme/infra", "bench", {"app/main.tf": app.replace("replicas = 2", "replicas = 3")})
        payload = webhook_payload("pull_request", pull, "opened")
        url = f"{w.atlas_url}/events"
        port = int(w.atlas_url.rsplit(":", 1)[1])
        sources = tuple(f"127.0.0.{2 + i}" for i in range(args.attackers)) or ("127.0.0.1",)

        def one() -> float | None:
            started = time.perf_counter()
            try:
                response = deliver(url, "pull_request", payload, secret=WEBHOOK_SECRET,
                                   delivery_id=str(uuid.uuid4()), timeout=args.deadline)
            except requests.RequestException:
                return None
            elapsed = time.perf_counter() - started
            return elapsed if response.status_code == 202 else None

        with StalledConnections("127.0.0.1", port, args.stalled, sources=sources) as stalls:
            time.sleep(args.hold)
            held = stalls.open_now()
            with ThreadPoolExecutor(args.deliveries) as pool:
                results = list(pool.map(lambda _: one(), range(args.deliveries)))
            try:
                health = requests.get(f"{w.atlas_url}/healthz", timeout=args.deadline).status_code
            except requests.RequestException as error:
                health = type(error).__name__
        answered = [r for r in results if r is not None]
        print(f"front={args.front} stalled={args.stalled} (held open: {held}, reopened: {stalls.closed_by_server}) "
              f"from {len(sources)} address(es)")
        print(f"  deliveries answered 202 within {args.deadline:g} s: {len(answered)}/{args.deliveries}"
              + (f"; {describe_ms(answered)}" if answered else ""))
        print(f"  /healthz afterwards: {health}")


if __name__ == "__main__":
    main()
