"""atlas on Redis end to end, with real processes: `atlas server` (gunicorn, 2 web workers), several
`atlas worker` processes with data directories of their own, a real redis-server and real terraform.

Each test does what an operator or a developer would, and looks at what they would see: comments
and statuses on the pull request, HTTP answers, `/healthz`, the server's log, the locks.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import requests

from tests.emulator import webhook_payload

if TYPE_CHECKING:
    from tests.scale_world import RedisProcess, ScaleWorld

pytest_plugins = ["tests.scale_world"]

REPO = "acme/infra"
INTERRUPTED = "**atlas's `autoplan` run was interrupted**"
Eventually = Callable[..., Any]
GITHUB_WRITES_PER_MINUTE = 80
"""GitHub's documented secondary rate limit on content-creating requests, per token."""
WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
WEBHOOK_PROBLEM = re.compile(r"\S+ (ERROR|WARNING) atlas\.http\.webhooks ")
"""A problem the webhook endpoint logged: while Redis is down, a delivery it refused."""


def test_a_plan_made_on_one_worker_is_applied_by_another(scale_world: ScaleWorld, eventually: Eventually) -> None:
    world = scale_world
    world.create_repo(REPO)
    server = world.start_server(wait=False)
    workers = [world.start_worker(wait=False), world.start_worker(wait=False)]
    for worker in workers:
        worker.wait_for_log("listening on queue")
    server.wait_healthy()
    pull = world.open_pull(REPO, "more-replicas")

    assert server.pull_event(pull).status_code == 202
    assert "Plan: 1 to add, 0 to change, 0 to destroy." in world.wait_for_comment(pull, "Ran Plan")
    [planner] = [worker for worker in workers if worker.job_logs()]
    [other] = [worker for worker in workers if worker is not planner]
    assert planner.terminate() == 0, planner.log_text()
    assert server.comment(pull, "atlas apply").status_code == 202

    applied = world.wait_for_comment(pull, "Ran Apply")
    assert "Apply complete! Resources: 1 added, 0 changed, 0 destroyed." in applied
    assert other.ran("Apply complete!"), "the worker that did not plan applied"
    state = json.loads((world.state_of(REPO) / "multi-project/app.tfstate").read_text())
    [resource] = state["resources"]
    assert (resource["type"], resource["instances"][0]["attributes"]["input"]["value"]["replicas"]) == (
        "terraform_data", 3)
    eventually(lambda: world.latest_state(pull, "atlas/apply") == "success", 10, "atlas/apply succeeding")


def test_a_worker_killed_mid_plan_is_reported_within_20_s_and_the_next_plan_works(
    scale_world: ScaleWorld, eventually: Eventually,
) -> None:
    world = scale_world
    world.create_repo(REPO)
    slow = world.slow_terraform()
    server = world.start_server(wait=False)
    workers = [world.start_worker(terraform_bin=slow.binary, wait=False) for _ in range(2)]
    for worker in workers:
        worker.wait_for_log("listening on queue")
    server.wait_healthy()
    pull = world.open_pull(REPO, "more-replicas")
    assert server.pull_event(pull).status_code == 202
    running_it = eventually(slow.started_by, 60, "the slow plan starting")
    [owner] = [worker for worker in workers if running_it in worker.worker_pids()]
    eventually(lambda: owner.ran("slow plan starting"), 10, "the job log showing the slow plan")

    # Only the worker process, as when it is OOM-killed; its sandboxed terraform dies with it (--die-with-parent).
    os.kill(running_it, signal.SIGKILL)
    killed_at = time.monotonic()

    told = world.wait_for_comment(pull, INTERRUPTED, timeout=20)
    assert time.monotonic() - killed_at < 20
    assert "The atlas worker running this command stopped" in told
    assert "comment `atlas plan` to run it again" in told
    eventually(lambda: world.latest_state(pull, "atlas/plan") == "failure", 5, "atlas/plan failing")
    assert world.statuses(pull, "atlas/plan")[-1] == ("failure", "interrupted: comment `atlas plan` to retry")
    # The plan took the lock and planned nothing: the lock is released, and the comment says so.
    assert world.locks_of(pull) == []
    assert "Released the lock of `app` (workspace `default`)" in told
    assert f"worker process {running_it} exited unexpectedly (killed by SIGKILL)" in owner.log_text()

    assert server.comment(pull, "atlas plan").status_code == 202

    assert "Plan: 1 to add, 0 to change, 0 to destroy." in world.wait_for_comment(pull, "Ran Plan")
    eventually(lambda: world.latest_state(pull, "atlas/plan") == "success", 10, "atlas/plan succeeding")
    assert len([body for body in world.bot_comments(pull) if body.startswith(INTERRUPTED)]) == 1


def test_jobs_queued_when_the_web_process_restarts_all_run(scale_world: ScaleWorld) -> None:
    world = scale_world
    pulls = []
    for name in ("acme/one", "acme/two", "acme/three"):
        world.create_repo(name)
        pulls.append(world.open_pull(name, "more-replicas"))
    server = world.start_server()
    for pull in pulls:
        assert server.pull_event(pull).status_code == 202

    assert server.terminate() == 0, server.log_text()
    restarted = world.start_server()
    assert requests.get(f"{restarted.url}/status", timeout=10).json()["queue_depth"] == 3
    world.start_worker(concurrency=2)

    for pull in pulls:
        assert "Plan: 1 to add, 0 to change, 0 to destroy." in world.wait_for_comment(pull, "Ran Plan")


def test_jobs_queued_before_redis_is_killed_survive_in_its_append_only_file_and_all_run(
    scale_world: ScaleWorld, persistent_redis: RedisProcess,
) -> None:
    world = scale_world
    world.redis_url = persistent_redis.url()
    pulls = []
    for name in ("acme/one", "acme/two", "acme/three"):
        world.create_repo(name)
        pulls.append(world.open_pull(name, "more-replicas"))
    server = world.start_server()
    for pull in pulls:
        assert server.pull_event(pull).status_code == 202
    # appendfsync everysec: what was acknowledged more than a second ago is on disk.
    time.sleep(1.5)
    persistent_redis.kill()
    persistent_redis.start()

    assert requests.get(f"{server.url}/status", timeout=10).json()["queue_depth"] == 3
    world.start_worker(concurrency=2)
    for pull in pulls:
        assert "Plan: 1 to add, 0 to change, 0 to destroy." in world.wait_for_comment(pull, "Ran Plan")


def test_with_redis_stopped_deliveries_get_503_and_the_server_says_why_until_it_is_back(
    scale_world: ScaleWorld, restartable_redis: RedisProcess, eventually: Eventually,
) -> None:
    world = scale_world
    world.create_repo(REPO)
    pull = world.open_pull(REPO, "more-replicas")
    server = world.start_server(redis_url=restartable_redis.url())
    payload = webhook_payload("pull_request", pull, "opened")
    answers: list[int | str] = []
    done = threading.Event()

    def keep_delivering() -> None:
        deadline = time.monotonic() + 90
        while not done.is_set() and time.monotonic() < deadline and len(answers) < 5000:
            try:
                answers.append(server.deliver("pull_request", payload, timeout=15).status_code)
            except requests.RequestException as error:
                answers.append(repr(error))

    senders = [threading.Thread(target=keep_delivering, daemon=True) for _ in range(4)]
    for sender in senders:
        sender.start()
    try:
        eventually(lambda: answers.count(202) >= 20, 30, "deliveries being queued")
        restartable_redis.stop()
        stopped_at = len(answers)
        eventually(lambda: answers[stopped_at:].count(503) >= 20, 30, "deliveries refused with 503")

        health = server.healthz()
        location = f"Redis at {restartable_redis.url()}"
        assert health.status_code == 503
        assert health.json()["status"] == "unavailable"
        assert f"{location} is unreachable" in health.json()["problem"]
        for page in ("/", "/status", "/pulls/acme/infra/1"):
            answer = requests.get(f"{server.url}{page}", timeout=15)
            assert answer.status_code == 503, (page, answer.status_code, answer.text[:300])
            assert f"{location} is unreachable" in answer.text, page
        outage_log = server.log_text()

        restartable_redis.start()
        started_at = len(answers)
        eventually(lambda: answers[started_at:].count(202) >= 20, 30, "deliveries queued again")
    finally:
        done.set()
        for sender in senders:
            sender.join(30)
    assert set(answers) <= {202, 503}, f"answers other than 202 and 503: {set(answers) - {202, 503}}"
    eventually(lambda: server.healthz().status_code == 200, 10, "/healthz answering 200 again")
    refusals = [line for line in outage_log.splitlines() if WEBHOOK_PROBLEM.match(line)]
    assert refusals, "the server logged no refused delivery"
    unexplained = [line for line in refusals if f"{location} is unreachable" not in line]
    assert not unexplained, (f"{len(unexplained)} of {len(refusals)} refusals are logged without saying that "
                             f"Redis is unreachable, e.g. {unexplained[0]!r}")


def test_status_counts_the_worker_processes_registered_in_redis(
    scale_world: ScaleWorld, eventually: Eventually,
) -> None:
    server = scale_world.start_server()
    assert requests.get(f"{server.url}/status", timeout=10).json()["workers"] == 0
    scale_world.start_worker(concurrency=2)
    scale_world.start_worker(concurrency=1)

    body = eventually(lambda: (b := requests.get(f"{server.url}/status", timeout=10).json())["workers"] == 3 and b,
                      30, "three registered workers")
    assert (body["queue"], body["workers_busy"], body["web_processes"]) == ("redis", 0, 2)


def test_worker_processes_together_keep_to_githubs_write_budget_of_the_token(
    scale_world: ScaleWorld, eventually: Eventually,
) -> None:
    """GitHub allows a token 80 content-creating requests a minute, however many processes send them."""
    world = scale_world
    world.create_repo(REPO)
    pulls = [world.open_pull(REPO, f"help-{number}") for number in range(50)]
    server = world.start_server(wait=False)
    for worker in [world.start_worker(wait=False), world.start_worker(wait=False)]:
        worker.wait_for_log("listening on queue")
    server.wait_healthy()

    for pull in pulls:  # each costs two writes: the 👀 reaction and the reply
        assert server.comment(pull, "atlas help").status_code == 202

    def writes() -> list[float]:
        return [request.timestamp for request in world.emulator.requests
                if request.method in WRITE_METHODS and request.path.startswith("/api/")]

    eventually(lambda: len(writes()) >= GITHUB_WRITES_PER_MINUTE, 60, f"{GITHUB_WRITES_PER_MINUTE} writes to GitHub")
    time.sleep(5)  # room for writes beyond the budget, had there been any
    sent = writes()
    in_first_minute = [stamp for stamp in sent if stamp < sent[0] + 60]
    assert len(in_first_minute) <= GITHUB_WRITES_PER_MINUTE, (
        f"{len(in_first_minute)} content-creating requests with one token within a minute "
        f"(in {in_first_minute[-1] - sent[0]:.1f} s); GitHub's secondary rate limit is {GITHUB_WRITES_PER_MINUTE}")

