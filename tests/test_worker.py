"""`atlas worker` as an operator runs it: its settings, its start-up log, replacing dead processes, stopping."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from atlas.jobs.rq import RQQueue
from atlas.models import Job, JobStatus
from atlas.stores.redis.backend import RedisBackend
from atlas.stores.redis.state import RedisStateStore
from tests.redis_backends import backend_of

if TYPE_CHECKING:
    from redis import Redis

    from tests.redis_plugin import JobEvents, WorkerProcess

pytest_plugins = ["tests.redis_plugin"]

REPO_ROOT = Path(__file__).resolve().parents[1]

StartWorker = Callable[..., "WorkerProcess"]
MakeJob = Callable[..., Job]
Eventually = Callable[..., Any]


def run_atlas_worker(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`atlas worker ...` itself, with no ATLAS_* variables but those given."""
    clean = {key: value for key, value in os.environ.items() if not key.startswith("ATLAS_")}
    clean.update(PYTHONPATH=str(REPO_ROOT), HOME=str(tmp_path / "home"), COLUMNS="100", **env)
    return subprocess.run(
        [sys.executable, "-m", "atlas", "worker", *args],
        cwd=tmp_path, env=clean, capture_output=True, text=True, timeout=60,
    )


@pytest.fixture
def state(redis_client: Redis) -> RedisStateStore:
    return RedisStateStore(backend_of(redis_client))


@pytest.fixture
def queue(redis_url: str, state: RedisStateStore) -> RQQueue:
    return RQQueue(RedisBackend(redis_url), state)


def status_of(state: RedisStateStore, job: Job) -> JobStatus | None:
    record = state.get_job(job.id)
    return record.status if record else None


# --- settings -----------------------------------------------------------------------------------


def test_help_lists_the_concurrency_and_every_server_setting(tmp_path: Path) -> None:
    result = run_atlas_worker(tmp_path, "--help")

    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "--concurrency N Worker processes to start; each runs one job at a time. (default: 1)" in text
    for flag in ("--gh-token TOKEN", "--data-dir DIR", "--config FILE", "--terraform-bin PATH", "--log-format"):
        assert flag in text
    assert "[env: ATLAS_GH_TOKEN]" in text


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        ((), {"ATLAS_GH_TOKEN": "t"},
         "atlas: error: --redis-url (ATLAS_REDIS_URL) is required: workers take their jobs from Redis\n"),
        ((), {"ATLAS_REDIS_URL": "redis://127.0.0.1:1/0"},
         "atlas: error: GitHub credentials are required (workers read pull requests and comment): give a token "
         "(--gh-token, ATLAS_GH_TOKEN, or --gh-token-file) or a GitHub App (--gh-app-id with --gh-app-key-file or "
         "--gh-app-key); or, to serve GitLab, a GitLab token (--gitlab-token, ATLAS_GITLAB_TOKEN, or "
         "--gitlab-token-file)\n"),
        (("--concurrency", "0"), {"ATLAS_GH_TOKEN": "t", "ATLAS_REDIS_URL": "redis://127.0.0.1:1/0"},
         "atlas: error: --concurrency must be at least 1, got 0\n"),
    ],
    ids=["no-redis-url", "no-token", "no-workers"],
)
def test_a_missing_or_wrong_setting_is_one_line_and_exit_status_2(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str], expected: str
) -> None:
    result = run_atlas_worker(tmp_path, *args, **env)

    assert (result.returncode, result.stderr, result.stdout) == (2, expected, "")


def test_an_unreachable_redis_is_reported_without_its_password(tmp_path: Path) -> None:
    from tests.redis_plugin import free_port

    port = free_port()
    result = run_atlas_worker(
        tmp_path, "--data-dir", str(tmp_path / "data"),
        ATLAS_GH_TOKEN="t", ATLAS_REDIS_URL=f"redis://:hunter2-redis-password@127.0.0.1:{port}/0",
    )

    assert result.returncode == 1
    assert f"cannot reach Redis at redis://127.0.0.1:{port}/0" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout


# --- running ------------------------------------------------------------------------------------


def test_a_worker_configured_by_file_logs_its_start_runs_jobs_and_stops_on_sigterm(
    tmp_path: Path, start_worker: StartWorker, queue: RQQueue, state: RedisStateStore, recorded_job: MakeJob,
    eventually: Eventually,
) -> None:
    config = tmp_path / "atlas.yaml"
    config.write_text(f"log-format: json\ndata-dir: {tmp_path / 'from-config'}\nparallel-pool-size: 3\n")
    worker = start_worker("--config", str(config), concurrency=2, own_data_dir=False)
    worker.wait_for_log("listening on queue", count=2)
    job = recorded_job(1)

    queue.enqueue(job)
    eventually(lambda: status_of(state, job) is JobStatus.SUCCEEDED, 30, "the job running")
    worker.terminate()

    assert worker.wait(30) == 0
    lines = [json.loads(line) for line in worker.log_text().splitlines() if line.startswith("{")]
    start = next(line for line in lines if line["message"].endswith("starting worker"))
    assert (start["data_dir"], start["parallel_pool_size"]) == (str(tmp_path / "from-config"), 3)
    assert any("starting 2 worker process(es) on Redis at redis://127.0.0.1:" in line["message"] for line in lines)
    assert lines[-1]["message"] == "atlas worker stopped"
    assert "Traceback" not in worker.log_text()


def test_worker_processes_are_not_dumpable(
    start_worker: StartWorker, queue: RQQueue, recorded_job: MakeJob, job_events: JobEvents, eventually: Eventually,
) -> None:
    """Same-user processes (a sandbox-less terraform) cannot read a worker's environment or memory."""
    worker = start_worker()
    worker.wait_for_log("listening on queue")

    queue.enqueue(recorded_job(1))

    [started] = eventually(lambda: job_events.of("start"), 30, "the job starting")
    assert started["pid"] != worker.pid, "recorded in the forked worker process that ran the job"
    assert started["dumpable"] == 0


def test_sigterm_lets_the_running_job_finish_and_leaves_the_rest_to_another_worker(
    start_worker: StartWorker, queue: RQQueue, state: RedisStateStore, recorded_job: MakeJob, job_events: JobEvents,
    eventually: Eventually,
) -> None:
    first = start_worker()
    running, waiting = recorded_job(1, sleep=2), recorded_job(1)
    queue.enqueue(running)
    queue.enqueue(waiting)
    eventually(lambda: job_events.of("start"), 30, "the first job starting")

    first.terminate()

    assert first.wait(30) == 0
    assert status_of(state, running) is JobStatus.SUCCEEDED, "the running job finished"
    assert status_of(state, waiting) is JobStatus.QUEUED, "the stopping worker took no new job"
    start_worker()
    eventually(lambda: status_of(state, waiting) is JobStatus.SUCCEEDED, 30, "another worker running the rest")
    assert [entry["job"] for entry in job_events.of("start")] == [running.id, waiting.id]


def test_a_worker_process_that_dies_is_replaced(
    start_worker: StartWorker, queue: RQQueue, state: RedisStateStore, recorded_job: MakeJob, eventually: Eventually,
) -> None:
    worker = start_worker(concurrency=1)
    worker.wait_for_log("listening on queue")
    [child] = [int(pid) for pid in Path(f"/proc/{worker.pid}/task/{worker.pid}/children").read_text().split()]

    os.kill(child, signal.SIGKILL)

    worker.wait_for_log("listening on queue", count=2)
    assert f"worker process {child} exited unexpectedly (killed by SIGKILL); starting another" in worker.log_text()
    job = recorded_job(1)
    queue.enqueue(job)
    eventually(lambda: status_of(state, job) is JobStatus.SUCCEEDED, 30, "the replacement running a job")
