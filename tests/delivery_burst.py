"""A burst of webhook deliveries sent at once, some of them redeliveries: what each got back, and how fast.

Shared by the load test (tests/test_delivery_burst_e2e.py), which checks that none is lost and none
runs twice, and the benchmark (benchmarks/delivery_burst.py), which prints the acknowledgement
latencies.
"""

from __future__ import annotations

import random
import re
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import requests

from tests.atlas_plugin import WEBHOOK_SECRET
from tests.emulator import deliver

_QUEUED_AS = re.compile(r"as job ([0-9a-f]{16})")


@dataclass(frozen=True)
class Delivery:
    event: str
    payload: dict[str, Any]
    delivery_id: str


@dataclass
class Answer:
    delivery_id: str
    status: int
    text: str
    seconds: float

    @property
    def job_id(self) -> str | None:
        found = _QUEUED_AS.search(self.text)
        return found.group(1) if self.status == 202 and found else None


@dataclass
class Burst:
    distinct: list[Delivery]
    sent: list[Delivery]
    answers: list[Answer] = field(default_factory=list)

    def statuses(self) -> Counter[int]:
        return Counter(answer.status for answer in self.answers)

    def queued(self) -> dict[str, list[str]]:
        """Delivery id → the ids of the jobs its deliveries were queued as (one, for a delivery not lost)."""
        jobs: dict[str, list[str]] = {d.delivery_id: [] for d in self.distinct}
        for answer in self.answers:
            if answer.job_id is not None:
                jobs[answer.delivery_id].append(answer.job_id)
        return jobs

    def latencies(self) -> list[float]:
        return [answer.seconds for answer in self.answers]


def plan_burst(payloads: list[dict[str, Any]], distinct: int, redeliveries: int, seed: int = 7) -> Burst:
    """`distinct` deliveries of the payloads (in turn), and `redeliveries` of some of them again, shuffled."""
    chosen = random.Random(seed)
    deliveries = [Delivery("pull_request", payloads[i % len(payloads)], str(uuid.uuid4())) for i in range(distinct)]
    sent = deliveries + chosen.sample(deliveries, redeliveries)
    chosen.shuffle(sent)
    return Burst(distinct=deliveries, sent=sent)


def send_burst(url: str, burst: Burst, *, secret: str = WEBHOOK_SECRET, timeout: float = 60) -> Burst:
    """Send every delivery of the burst at once, each from a thread of its own released together."""
    start = threading.Barrier(len(burst.sent))
    lock = threading.Lock()

    def send(delivery: Delivery) -> None:
        start.wait()
        began = time.perf_counter()
        try:
            response = deliver(f"{url}/events", delivery.event, delivery.payload, secret=secret,
                               delivery_id=delivery.delivery_id, timeout=timeout)
            answer = Answer(delivery.delivery_id, response.status_code, response.text, time.perf_counter() - began)
        except requests.RequestException as error:
            answer = Answer(delivery.delivery_id, 0, repr(error), time.perf_counter() - began)
        with lock:
            burst.answers.append(answer)

    threads = [threading.Thread(target=send, args=(delivery,), daemon=True) for delivery in burst.sent]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout + 30)
    return burst
