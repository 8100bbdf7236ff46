"""The SQLite state store: deliveries claimed once, plans and jobs kept across restarts and processes."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from atlas.models import CommandName, Job, JobStatus, PlanSummary, Project, PullRequest, Repo
from atlas.stores.plans import PlanRecord
from atlas.stores.sqlite.state import SQLiteStateStore

REPO = Repo(
    full_name="acme/infra", clone_url="http://git.invalid/acme/infra.git", html_url="http://git.invalid/acme/infra"
)
PULL = PullRequest(repo=REPO, number=7, head_sha="b" * 40, head_ref="x", base_ref="main", author="me")


def _claim(path: str, delivery: str, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    results.put(SQLiteStateStore(Path(path)).claim_delivery(delivery, "pull_request"))


def test_a_delivery_is_claimed_exactly_once_across_processes(tmp_path: Path) -> None:
    db = tmp_path / "atlas.db"
    SQLiteStateStore(db)
    results: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    workers = [multiprocessing.Process(target=_claim, args=(str(db), "same-id", results)) for _ in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    claims = [results.get(timeout=5) for _ in workers]
    assert claims.count(True) == 1


def test_released_delivery_can_be_claimed_again(tmp_path: Path) -> None:
    state = SQLiteStateStore(tmp_path / "atlas.db")
    assert state.claim_delivery("d", "pull_request")
    assert not state.claim_delivery("d", "pull_request")
    state.release_delivery("d")
    assert state.claim_delivery("d", "pull_request")


def test_plans_survive_a_restart_and_the_latest_replaces_the_earlier(tmp_path: Path) -> None:
    project = Project(dir="app")
    first = PlanRecord(
        repo="acme/infra",
        pull_number=7,
        project=project,
        head_sha="1" * 40,
        sha256="1" * 64,
        summary=PlanSummary(add=1),
        job_id="j1",
    )
    second = first.model_copy(update={"head_sha": "2" * 40, "sha256": "2" * 64, "job_id": "j2"})
    SQLiteStateStore(tmp_path / "atlas.db").save_plan(first)
    SQLiteStateStore(tmp_path / "atlas.db").save_plan(second)

    reopened = SQLiteStateStore(tmp_path / "atlas.db")
    [plan] = reopened.plans("acme/infra", 7)
    assert (plan.head_sha, plan.summary.add) == ("2" * 40, 1)
    assert reopened.delete_plans("acme/infra", 7, project) == [plan]
    assert reopened.plans("acme/infra", 7) == []


def test_job_status_moves_and_is_listed_newest_first(tmp_path: Path) -> None:
    state = SQLiteStateStore(tmp_path / "atlas.db")
    jobs = [Job(command=CommandName.AUTOPLAN, pull=PULL) for _ in range(3)]
    for job in jobs:
        state.save_job(job)
    state.set_job_status(jobs[0].id, JobStatus.RUNNING)
    state.set_job_status(jobs[0].id, JobStatus.SUCCEEDED, "1/1 projects planned")
    record = state.get_job(jobs[0].id)
    assert record is not None
    assert (record.status, record.description) == (JobStatus.SUCCEEDED, "1/1 projects planned")
    assert record.started_at is not None and record.finished_at is not None
    assert [r.job.id for r in state.jobs(statuses=(JobStatus.QUEUED,))] == [j.id for j in reversed(jobs[1:])]
    state.save_pull(PULL)
    assert state.get_pull("acme/infra", 7) == PULL
