"""`/metrics` of `atlas server` under gunicorn with several web processes: any of them answers for all.

A real `atlas server --web-workers 2` on a real Redis: deliveries spread over both web processes,
and every scrape, whichever process answers it, counts every delivery.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import requests
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from atlas.startup import MULTIPROCESS_METRICS_DIR

if TYPE_CHECKING:
    from tests.scale_world import AtlasServerProcess, ScaleWorld

pytest_plugins = ["tests.scale_world"]

MAX_DELIVERIES = 400
"""Enough for the kernel to have handed connections to both web processes many times over."""


def pings_counted(server: AtlasServerProcess) -> float:
    """`atlas_deliveries_total{event="ping"}` as one scrape of `/metrics` says."""
    response = requests.get(f"{server.url}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    return sum(sample.value for family in text_string_to_metric_families(response.text)
               for sample in family.samples
               if sample.name == "atlas_deliveries_total" and sample.labels.get("event") == "ping")


def pings_by_process(directory: Path, scratch: Path) -> dict[str, float]:
    """Pings each web process counted, read from the file multiprocess mode keeps for it."""
    counted: dict[str, float] = {}
    for path in directory.glob("counter_*.db"):
        match = re.fullmatch(r"counter_(\d+)\.db", path.name)
        if match is None:
            continue
        alone = scratch / match.group(1)
        alone.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, alone / path.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(alone))
        counted[match.group(1)] = sum(
            sample.value for family in registry.collect() for sample in family.samples
            if sample.name == "atlas_deliveries_total" and sample.labels.get("event") == "ping")
    return counted


def test_metrics_sum_the_counters_of_every_web_process(scale_world: ScaleWorld) -> None:
    world = scale_world
    stale = world.root / "server-data" / MULTIPROCESS_METRICS_DIR
    stale.mkdir(parents=True)
    (stale / "counter_1.db").write_bytes(b"left by an earlier server")
    server = world.start_server(web_workers=2, data_dir=world.root / "server-data")
    directory = world.root / "server-data" / MULTIPROCESS_METRICS_DIR
    assert not (directory / "counter_1.db").exists(), "what an earlier server counted was not cleared"

    sent = 0
    by_process: dict[str, float] = {}
    while sum(1 for count in by_process.values() if count) < 2 and sent < MAX_DELIVERIES:
        # A new connection each time, so that either web process may take it.
        assert server.deliver("ping", {"zen": "Keep it logically awesome.", "hook_id": 1}).status_code == 200
        sent += 1
        by_process = pings_by_process(directory, world.root / "scratch" / str(sent))
    assert sum(1 for count in by_process.values() if count) == 2, f"one web process took all {sent} deliveries"
    assert sum(by_process.values()) == sent

    # Every scrape, whichever web process answers it, counts every delivery.
    assert [pings_counted(server) for _ in range(6)] == [float(sent)] * 6
