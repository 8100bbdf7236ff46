"""A running job's page on a host that does not run it: output through a Redis stream, live.

A real `atlas server` and `atlas worker` with data directories of their own (as on two hosts), a
real redis-server, and terraform whose plan prints a line and then takes its time: the server's
job page streams that line while the plan still runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import requests

from atlas.stores.redis.backend import RedisBackend
from atlas.stores.redis.output import RedisLiveOutput

if TYPE_CHECKING:
    from tests.scale_world import ScaleWorld

pytest_plugins = ["tests.scale_world"]

REPO = "acme/infra"
Eventually = Callable[..., Any]


def test_a_job_on_another_worker_streams_its_output_while_it_runs(
    scale_world: ScaleWorld, eventually: Eventually,
) -> None:
    world = scale_world
    world.create_repo(REPO)
    slow = world.slow_terraform(seconds=30)
    server = world.start_server(wait=False, web_workers=1)
    worker = world.start_worker(terraform_bin=slow.binary)
    server.wait_healthy()
    pull = world.open_pull(REPO, "more-replicas")
    assert server.pull_event(pull).status_code == 202
    eventually(slow.started_by, 60, "the slow plan starting")

    def job_link() -> str | None:
        links = [s["target_url"] for s in world.emulator.statuses(REPO, pull.head_sha)
                 if s["context"] == "atlas/plan" and s["target_url"] and "/jobs/" in s["target_url"]]
        return links[0] if links else None

    job_id = eventually(job_link, 30, "a status linking the job page").rsplit("/", 1)[1]
    assert not (server.data_dir / "jobs" / f"{job_id}.log").exists(), "the server has the worker's log"

    seen: list[str] = []
    with requests.get(f"{server.url}/jobs/{job_id}/stream", stream=True, timeout=30) as stream:
        assert stream.status_code == 200
        for line in stream.iter_lines(decode_unicode=True):
            seen.append(line)
            if "slow plan starting" in line:
                break
    assert any("slow plan starting" in line for line in seen), seen
    assert slow.running() is not None, "the line came after the plan, not while it ran"
    page = requests.get(f"{server.url}/jobs/{job_id}", timeout=30)
    assert "slow plan starting" in page.text
    assert worker.ran("slow plan starting")


def test_the_stream_reads_from_any_byte_offset_and_on_from_where_it_stopped(redis_url: str) -> None:
    live = RedisLiveOutput(RedisBackend(redis_url))
    live.publish("job1", "one\n", 4)
    live.publish("job1", "two\nthree\n", 14)
    assert live.read("job1", 0) == (b"one\ntwo\nthree\n", live.read("job1", 0)[1])
    tail, after = live.read("job1", 8)
    assert tail == b"three\n"
    live.publish("job1", "four\n", 19)
    assert live.read("job1", 14, after)[0] == b"four\n"
    assert live.read("job1", 19, live.read("job1", 14, after)[1])[0] == b""
    assert live.read("unknown", 0)[0] == b""
