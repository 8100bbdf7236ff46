"""The API on Redis and rq: `POST /api/plan` goes through the pull request's queue to `atlas worker` processes.

Real processes: `atlas server` (gunicorn, 2 web workers), two `atlas worker` processes, a real
redis-server and terraform whose first plan takes its time, so that an API run has a command of
its pull request to wait for.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import requests

if TYPE_CHECKING:
    from tests.scale_world import AtlasServerProcess, ScaleWorld

pytest_plugins = ["tests.scale_world"]

REPO = "acme/infra"
SECRET = "api-secret-for-tests"
Eventually = Callable[..., Any]


def post(server: AtlasServerProcess, command: str, body: dict[str, Any], prefer: str | None = None
         ) -> requests.Response:
    headers = {"Content-Type": "application/json", "X-Atlas-Token": SECRET}
    if prefer:
        headers["Prefer"] = prefer
    return requests.post(f"{server.url}/api/{command}", data=json.dumps(body), headers=headers, timeout=180)


def job(server: AtlasServerProcess, job_id: str) -> dict[str, Any]:
    answer = requests.get(f"{server.url}/api/jobs/{job_id}", headers={"X-Atlas-Token": SECRET}, timeout=30)
    assert answer.status_code == 200, answer.text
    state: dict[str, Any] = answer.json()
    return state


def test_api_runs_wait_their_turn_in_the_pull_requests_queue_across_workers(
    scale_world: ScaleWorld, eventually: Eventually,
) -> None:
    world = scale_world
    world.create_repo(REPO)
    slow = world.slow_terraform(seconds=8)
    server = world.start_server(wait=False, env={"ATLAS_API_SECRET": SECRET})
    workers = [world.start_worker(terraform_bin=slow.binary, wait=False) for _ in range(2)]
    for worker in workers:
        worker.wait_for_log("listening on queue")
    server.wait_healthy()
    pull = world.open_pull(REPO, "more-replicas")
    assert server.pull_event(pull).status_code == 202
    eventually(slow.started_by, 60, "the autoplan's slow plan starting")

    body = {"Repository": REPO, "Ref": "more-replicas", "Paths": [{"Directory": "app"}], "PR": pull.number}
    accepted = post(server, "plan", body, prefer="respond-async")
    assert accepted.status_code == 202, accepted.text
    queued_id = accepted.json()["JobID"]
    state = job(server, queued_id)["Status"]
    if slow.running() is not None:  # the autoplan still runs, so the API run cannot have started
        assert state == "queued"

    answers: list[requests.Response] = []
    waiting = threading.Thread(target=lambda: answers.append(post(server, "plan", body)))
    waiting.start()
    waiting.join(180)
    [answer] = answers
    assert answer.status_code == 200, answer.text
    assert answer.json()["Success"] is True
    assert answer.json()["ProjectResults"][0]["Summary"]["Add"] == 1

    comment = world.wait_for_comment(pull, "Ran Plan")
    autoplan = job(server, comment.split("/jobs/", 1)[1][:16])
    first = job(server, queued_id)
    second = job(server, answer.json()["JobURL"].rsplit("/", 1)[1])
    assert (autoplan["Command"], first["Status"], first["ResultStatus"]) == ("autoplan", "succeeded", 200)
    # One after another, in the order queued, though two workers were free.
    assert autoplan["FinishedAt"] <= first["StartedAt"] <= first["FinishedAt"] <= second["StartedAt"]
    assert first["Result"]["ProjectResults"][0]["Status"] == "succeeded"
    assert set(first["Result"]) == set(answer.json())
