"""What every state store and lock store does, whichever backend keeps it: each case runs on SQLite and on Redis.

A store is reopened (a new object over the same file or Redis database) where a case checks that
something survives a restart or is seen by another process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from redis import Redis

from atlas.models import CommandName, Job, JobStatus, PlanSummary, Project, PullRequest, Repo, VCSHost, utcnow
from atlas.stores.locks import LockAttempt, LockStore, lock_id_for, lock_id_parts
from atlas.stores.plans import PlanRecord
from atlas.stores.policy import PolicyApprovalRecord, PolicyCheckRecord
from atlas.stores.pulls import ProjectPhase, ProjectState
from atlas.stores.redis.backend import connect
from atlas.stores.redis.locks import RedisLockStore
from atlas.stores.redis.state import RedisStateStore
from atlas.stores.sqlite.locks import SQLiteLockStore
from atlas.stores.sqlite.state import SQLiteStateStore
from atlas.stores.state import StateStore
from tests.redis_backends import backend_of

pytest_plugins = ["tests.redis_plugin"]

REPO = Repo(
    full_name="acme/infra", clone_url="https://github.com/acme/infra.git", html_url="https://github.com/acme/infra"
)
APP = Project(dir="app")
NETWORK = Project(dir="network")
STAGING = Project(dir="app", workspace="staging")
THREE = [APP, NETWORK, STAGING]

StateOpener = Callable[[], StateStore]
LockOpener = Callable[..., LockStore]


def pull(number: int, sha: str = "a") -> PullRequest:
    return PullRequest(
        repo=REPO,
        number=number,
        head_sha=sha * 40,
        head_ref=f"change-{number}",
        base_ref="main",
        author=f"dev{number}",
        html_url=f"https://github.com/acme/infra/pull/{number}",
    )


@pytest.fixture(params=["sqlite", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    backend: str = request.param
    return backend


@pytest.fixture
def redis_clients(backend: str, request: pytest.FixtureRequest) -> Iterator[Callable[[], Redis]]:
    """New clients of this test's Redis database (none for SQLite), closed after the test."""
    clients: list[Redis] = []
    url = request.getfixturevalue("redis_url") if backend == "redis" else ""

    def new_client() -> Redis:
        clients.append(connect(url))
        return clients[-1]

    yield new_client
    for client in clients:
        client.close()


@pytest.fixture
def open_state(backend: str, tmp_path: Path, redis_clients: Callable[[], Redis]) -> StateOpener:
    if backend == "sqlite":
        return lambda: SQLiteStateStore(tmp_path / "atlas.db")
    return lambda: RedisStateStore(backend_of(redis_clients()))


@pytest.fixture
def open_locks(backend: str, tmp_path: Path, redis_clients: Callable[[], Redis]) -> LockOpener:
    """Opens the lock store `name`: stores of different names share nothing."""

    def open_store(name: str = "atlas") -> LockStore:
        if backend == "sqlite":
            return SQLiteLockStore(tmp_path / f"{name}.db")
        return RedisLockStore(backend_of(redis_clients(), f"{name}:"))

    return open_store


@pytest.fixture
def state(open_state: StateOpener) -> StateStore:
    return open_state()


@pytest.fixture
def store(open_locks: LockOpener) -> LockStore:
    return open_locks()


# --- state: deliveries, jobs, pull requests -----------------------------------------------------


def test_a_jobs_result_is_kept_for_any_process_and_survives_its_status_changes(open_state: StateOpener) -> None:
    state = open_state()
    job = Job(command=CommandName.PLAN, pull=pull(0))
    state.save_job(job, JobStatus.RUNNING)
    assert state.job_result(job.id) is None
    state.save_job_result(job.id, '{"status": 200, "body": {"Success": true}}')
    state.set_job_status(job.id, JobStatus.SUCCEEDED, "api plan: 1/1 projects")

    reopened = open_state()
    assert reopened.job_result(job.id) == '{"status": 200, "body": {"Success": true}}'
    record = reopened.get_job(job.id)
    assert record is not None and record.status is JobStatus.SUCCEEDED
    assert reopened.job_result("never-ran") is None


def test_output_that_expired_is_told_apart_from_output_never_written(state: StateStore) -> None:
    state.append_job_output("kept", "$ terraform plan\n")
    assert state.job_output("kept") == "$ terraform plan\n"
    assert not state.job_output_expired("kept")
    assert not state.job_output_expired("never-written")

    if isinstance(state, RedisStateStore):
        # Redis expires output by itself: what its TTL does, done now.
        state.redis.delete(state._key("job-output", "kept"))
    else:
        assert state.expire_job_output(utcnow() + timedelta(seconds=1)) == 1

    assert state.job_output("kept") is None
    assert state.job_output_expired("kept")
    assert not state.job_output_expired("never-written")



def test_a_delivery_is_claimed_once_and_a_released_one_can_be_claimed_again(open_state: StateOpener) -> None:
    state = open_state()
    assert state.claim_delivery("d", "pull_request")
    assert not open_state().claim_delivery("d", "pull_request"), "another process sees the claim"
    state.release_delivery("d")
    assert open_state().claim_delivery("d", "pull_request")
    state.release_delivery("never-claimed")


def test_job_status_moves_and_is_listed_newest_first(open_state: StateOpener) -> None:
    state = open_state()
    start = utcnow()
    jobs = [Job(command=CommandName.AUTOPLAN, pull=pull(7), created_at=start + timedelta(seconds=n)) for n in range(4)]
    for job in jobs:
        state.save_job(job)
    state.set_job_status(jobs[0].id, JobStatus.RUNNING)
    state.set_job_status(jobs[0].id, JobStatus.SUCCEEDED, "1/1 projects planned")
    state.set_job_status(jobs[1].id, JobStatus.RUNNING, "planning")

    reopened = open_state()
    record = reopened.get_job(jobs[0].id)
    assert record is not None
    assert (record.job, record.status, record.description) == (jobs[0], JobStatus.SUCCEEDED, "1/1 projects planned")
    assert record.started_at is not None and record.finished_at is not None
    running = reopened.get_job(jobs[1].id)
    assert running is not None and running.started_at is not None and running.finished_at is None
    assert [r.job.id for r in reopened.jobs()] == [j.id for j in reversed(jobs)]
    assert [r.job.id for r in reopened.jobs(statuses=(JobStatus.QUEUED,))] == [jobs[3].id, jobs[2].id]
    assert [r.job.id for r in reopened.jobs(statuses=(JobStatus.SUCCEEDED, JobStatus.RUNNING))] == [
        jobs[1].id,
        jobs[0].id,
    ]
    assert [r.job.id for r in reopened.jobs(limit=2)] == [jobs[3].id, jobs[2].id]
    assert reopened.jobs(statuses=(JobStatus.CANCELLED,)) == []


def test_a_job_saved_again_starts_over_and_an_unknown_job_is_not_created(state: StateStore) -> None:
    job = Job(command=CommandName.PLAN, pull=pull(7))
    state.save_job(job)
    state.set_job_status(job.id, JobStatus.FAILED, "boom")

    state.save_job(job, JobStatus.RUNNING)
    state.set_job_status("no-such-job", JobStatus.SUCCEEDED, "done")

    record = state.get_job(job.id)
    assert record is not None
    assert (record.status, record.description, record.finished_at) == (JobStatus.RUNNING, "", None)
    assert [r.job.id for r in state.jobs(statuses=(JobStatus.FAILED,))] == []
    assert state.get_job("no-such-job") is None
    assert [r.job.id for r in state.jobs()] == [job.id]


def test_a_pull_request_is_kept_as_saved_last(open_state: StateOpener) -> None:
    state = open_state()
    state.save_pull(pull(7, sha="a"))
    state.save_pull(pull(7, sha="b"))
    assert open_state().get_pull("acme/infra", 7) == pull(7, sha="b")
    assert open_state().get_pull("acme/infra", 8) is None
    assert open_state().get_pull("acme/apps", 7) is None


# --- state: plans, project states, comment records, notices -------------------------------------


def plan_record(project: Project, sha: str = "1", number: int = 7) -> PlanRecord:
    return PlanRecord(
        repo="acme/infra",
        pull_number=number,
        project=project,
        head_sha=sha * 40,
        sha256="ab" * 32,
        size=10,
        summary=PlanSummary(add=1),
        job_id=f"job-{sha}",
    )


def test_plans_survive_a_restart_and_the_latest_replaces_the_earlier(open_state: StateOpener) -> None:
    open_state().save_plan(plan_record(APP, sha="1"))
    open_state().save_plan(plan_record(APP, sha="2"))

    reopened = open_state()
    [plan] = reopened.plans("acme/infra", 7)
    assert (plan.head_sha, plan.summary.add) == ("2" * 40, 1)
    assert reopened.delete_plans("acme/infra", 7, APP) == [plan]
    assert reopened.plans("acme/infra", 7) == []
    assert reopened.delete_plans("acme/infra", 7, APP) == []


def test_plans_are_listed_by_dir_and_workspace_and_deleted_per_pull_request(state: StateStore) -> None:
    for project in (NETWORK, STAGING, APP):
        state.save_plan(plan_record(project))
    state.save_plan(plan_record(APP, number=8))

    assert [plan.project for plan in state.plans("acme/infra", 7)] == [APP, STAGING, NETWORK]
    removed = state.delete_plans("acme/infra", 7)
    assert [plan.project for plan in removed] == [APP, STAGING, NETWORK]
    assert state.plans("acme/infra", 7) == []
    assert [plan.project for plan in state.plans("acme/infra", 8)] == [APP]


def project_state(project: Project, phase: ProjectPhase) -> ProjectState:
    return ProjectState(project=project, phase=phase, head_sha="a" * 40, job_id="j", updated_at=utcnow())


def test_project_states_are_replaced_per_project_and_forgotten_with_the_comments(state: StateStore) -> None:
    state.set_project_state("acme/infra", 7, project_state(NETWORK, ProjectPhase.PLANNED))
    state.set_project_state("acme/infra", 7, project_state(APP, ProjectPhase.WAITING))
    state.set_project_state("acme/infra", 7, project_state(APP, ProjectPhase.PLANNED))
    state.set_project_state("acme/infra", 8, project_state(APP, ProjectPhase.APPLIED))
    state.add_comment_record("acme/infra", 7, "plan", "IC_1")
    state.save_plan(plan_record(APP))

    assert [(s.project, s.phase) for s in state.project_states("acme/infra", 7)] == [
        (APP, ProjectPhase.PLANNED),
        (NETWORK, ProjectPhase.PLANNED),
    ]
    state.forget_pull("acme/infra", 7)
    assert state.project_states("acme/infra", 7) == []
    assert state.take_comment_records("acme/infra", 7, "plan") == []
    assert [s.phase for s in state.project_states("acme/infra", 8)] == [ProjectPhase.APPLIED]
    assert len(state.plans("acme/infra", 7)) == 1, "plans are deleted on their own"


def test_comment_records_are_taken_once_by_kind(open_state: StateOpener) -> None:
    state = open_state()
    state.add_comment_record("acme/infra", 7, "plan", "IC_2")
    state.add_comment_record("acme/infra", 7, "plan", "IC_1")
    state.add_comment_record("acme/infra", 7, "plan", "IC_1")
    state.add_comment_record("acme/infra", 7, "apply", "IC_3")
    state.add_comment_record("acme/infra", 8, "plan", "IC_4")

    assert sorted(open_state().take_comment_records("acme/infra", 7, "plan")) == ["IC_1", "IC_2"]
    assert open_state().take_comment_records("acme/infra", 7, "plan") == []
    assert state.take_comment_records("acme/infra", 7, "apply") == ["IC_3"]
    assert state.take_comment_records("acme/infra", 8, "plan") == ["IC_4"]


def test_a_notice_is_claimed_once(open_state: StateOpener) -> None:
    assert open_state().claim_once("fork-refused:acme/infra#7")
    assert not open_state().claim_once("fork-refused:acme/infra#7")
    assert open_state().claim_once("fork-refused:acme/infra#8")


# --- locks: acquiring ---------------------------------------------------------------------------


def policy_check(project: Project, results: str = "[]", number: int = 7, sha: str = "1") -> PolicyCheckRecord:
    return PolicyCheckRecord(repo=REPO.full_name, pull_number=number, project=project, head_sha=sha * 40,
                             results=results)


def approval(project: Project, user: str, policy_set: str = "replicas", number: int = 7) -> PolicyApprovalRecord:
    return PolicyApprovalRecord(repo=REPO.full_name, pull_number=number, project=project, policy_set=policy_set,
                                user=user, head_sha="1" * 40)


def approvers(state: StateStore, number: int = 7) -> list[tuple[str, str, str]]:
    return [(a.project.dir + "/" + a.project.workspace, a.policy_set, a.user)
            for a in state.policy_approvals(REPO.full_name, number)]


def test_policy_checks_survive_a_restart_and_the_latest_of_a_project_replaces_the_earlier(
    open_state: StateOpener,
) -> None:
    state = open_state()
    state.save_policy_check(policy_check(NETWORK, '[{"first": true}]'))
    state.save_policy_check(policy_check(APP, '[{"first": true}]'))
    state.save_policy_check(policy_check(STAGING))
    state.save_policy_check(policy_check(APP, '[{"second": true}]', sha="2"))
    state.save_policy_check(policy_check(APP, number=8))

    reopened = open_state()
    checks = reopened.policy_checks(REPO.full_name, 7)
    assert [(c.project, c.head_sha[0], c.results) for c in checks] == [
        (APP, "2", '[{"second": true}]'), (STAGING, "1", "[]"), (NETWORK, "1", '[{"first": true}]')]
    assert [c.project for c in reopened.policy_checks(REPO.full_name, 8)] == [APP]
    assert reopened.policy_checks("acme/other", 7) == []


def test_approvals_are_kept_once_per_set_and_user_and_a_new_check_of_the_project_clears_them(
    open_state: StateOpener,
) -> None:
    state = open_state()
    state.save_policy_check(policy_check(APP))
    state.save_policy_check(policy_check(NETWORK))
    state.add_policy_approval(approval(APP, "olga"))
    state.add_policy_approval(approval(APP, "Olga"))
    state.add_policy_approval(approval(APP, "olga"))
    state.add_policy_approval(approval(APP, "tina"))
    state.add_policy_approval(approval(APP, "olga", policy_set="tags"))
    state.add_policy_approval(approval(NETWORK, "olga"))
    state.add_policy_approval(approval(APP, "olga", number=8))

    assert approvers(open_state()) == [
        ("app/default", "replicas", "olga"), ("app/default", "replicas", "tina"), ("app/default", "tags", "olga"),
        ("network/default", "replicas", "olga")]

    state.save_policy_check(policy_check(APP, sha="2"))
    assert approvers(open_state()) == [("network/default", "replicas", "olga")], "a new plan is approved again"
    assert approvers(open_state(), 8) == [("app/default", "replicas", "olga")], "another pull request keeps its own"


def test_a_withdrawn_approval_is_only_that_users_on_that_project_whatever_the_case_of_the_login(
    open_state: StateOpener,
) -> None:
    state = open_state()
    state.add_policy_approval(approval(APP, "Olga"))
    state.add_policy_approval(approval(APP, "olga", policy_set="tags"))
    state.add_policy_approval(approval(APP, "tina"))
    state.add_policy_approval(approval(STAGING, "olga"))

    assert open_state().remove_policy_approvals(REPO.full_name, 7, APP, "OLGA") == 2
    assert approvers(open_state()) == [("app/default", "replicas", "tina"), ("app/staging", "replicas", "olga")]
    assert open_state().remove_policy_approvals(REPO.full_name, 7, APP, "olga") == 0


def test_forgetting_a_pull_request_forgets_its_policy_checks_and_approvals(open_state: StateOpener) -> None:
    state = open_state()
    state.save_policy_check(policy_check(APP))
    state.add_policy_approval(approval(APP, "olga"))
    state.save_policy_check(policy_check(APP, number=8))
    state.forget_pull(REPO.full_name, 7)
    reopened = open_state()
    assert reopened.policy_checks(REPO.full_name, 7) == [] and approvers(reopened) == []
    assert [c.project for c in reopened.policy_checks(REPO.full_name, 8)] == [APP]


def in_turns(number: int) -> list[Project]:
    """The three projects, in reverse order for every other pull request, so that racers cross."""
    return THREE if number % 2 else THREE[::-1]


def holders(store: LockStore) -> dict[str, int]:
    return {lock.project.key: lock.pull_number for lock in store.all()}


def test_a_command_takes_every_free_project_in_one_step_and_reports_the_holders_of_the_rest(
    store: LockStore,
) -> None:
    assert store.acquire(pull(1), [NETWORK], "dev1").complete

    attempt = store.acquire(pull(2), THREE, "dev2")

    assert [lock.project for lock in attempt.acquired] == [APP, STAGING]
    assert [(lock.project, lock.pull_number, lock.user) for lock in attempt.conflicts] == [(NETWORK, 1, "dev1")]
    assert not attempt.complete
    assert holders(store) == {"app:default": 2, "network:default": 1, "app:staging": 2}
    assert store.count() == 3
    assert store.acquire(pull(3), [], "dev3") == LockAttempt()


def test_the_holder_keeps_its_locks_and_they_follow_its_new_head(store: LockStore) -> None:
    first = store.acquire(pull(1, sha="a"), [APP], "dev1").acquired[0]

    again = store.acquire(pull(1, sha="b"), [APP, APP], "reviewer")

    assert [lock.project for lock in again.acquired] == [APP]
    kept = store.get(REPO.full_name, APP)
    assert kept is not None
    assert kept.head_sha == "b" * 40
    assert (kept.user, kept.created_at) == (first.user, first.created_at)


def test_a_lock_carries_the_job_that_took_it_and_an_interrupted_jobs_locks_are_settled(store: LockStore) -> None:
    store.acquire(pull(1), [APP], "dev1", job_id="older-job")
    taken = store.acquire(pull(1), [APP, NETWORK, STAGING], "dev1", job_id="dead-job")
    assert {lock.project: lock.job_id for lock in taken.acquired} == {
        APP: "older-job", NETWORK: "dead-job", STAGING: "dead-job"}
    assert store.wait_for(pull(2), NETWORK, "dev2") == 1

    nothing = store.settle_job_lock(lock_id_for(REPO.full_name, APP), "dead-job", release=True)
    released = store.settle_job_lock(lock_id_for(REPO.full_name, NETWORK), "dead-job", release=True)
    kept = store.settle_job_lock(lock_id_for(REPO.full_name, STAGING), "dead-job", release=False)

    assert (nothing.released, kept.released) == ([], [])
    assert [lock.project for lock in released.released] == [NETWORK]
    assert [(lock.project, lock.pull_number, lock.job_id) for lock in released.handed_over] == [(NETWORK, 2, "")]
    assert {lock.project: (lock.pull_number, lock.job_id) for lock in store.all()} == {
        APP: (1, "older-job"), NETWORK: (2, ""), STAGING: (1, "")}


def test_a_lock_knows_its_pull_request_and_has_a_url_safe_stable_id(open_locks: LockOpener) -> None:
    store = open_locks()
    lock = store.acquire(pull(7), [Project(dir="envs/prod/eu-west-1", workspace="blue")], "dev7").acquired[0]

    store = open_locks()
    assert lock.id == lock_id_for("acme/infra", Project(dir="envs/prod/eu-west-1", workspace="blue"))
    assert lock.id.replace("-", "").replace("_", "").isalnum()
    assert store.get_by_id(lock.id) == lock
    assert (lock.repo, lock.pull_number, lock.pull_url) == ("acme/infra", 7, "https://github.com/acme/infra/pull/7")
    assert store.for_pull("acme/infra", 7) == [lock]
    assert store.for_pull("acme/infra", 8) == []
    assert store.get_by_id("bm9uZQ") is None
    assert store.get("acme/infra", APP) is None


def test_locks_of_other_repositories_are_separate_and_listed_in_order(store: LockStore) -> None:
    other = pull(1).model_copy(update={"repo": REPO.model_copy(update={"full_name": "acme/apps"})})
    store.acquire(pull(1), [NETWORK, APP], "dev1")
    store.acquire(other, [APP], "dev1")

    assert [(lock.repo, lock.project.dir) for lock in store.all()] == [
        ("acme/apps", "app"),
        ("acme/infra", "app"),
        ("acme/infra", "network"),
    ]
    assert [lock.project for lock in store.for_pull("acme/infra", 1)] == [APP, NETWORK]


GITLAB_REPO = Repo(full_name="acme/infra", clone_url="https://gitlab.example.com/acme/infra.git",
                  html_url="https://gitlab.example.com/acme/infra", vcs=VCSHost.GITLAB)
"""A GitLab project with the very path of the GitHub repository `REPO`."""


def gitlab_pull(number: int, repo: Repo = GITLAB_REPO) -> PullRequest:
    return pull(number).model_copy(update={"repo": repo, "html_url": f"{repo.html_url}/-/merge_requests/{number}"})


def test_a_gitlab_project_and_a_github_repository_of_one_path_hold_their_own_locks(store: LockStore) -> None:
    github = store.acquire(pull(1), [APP], "dev1")
    gitlab = store.acquire(gitlab_pull(1), [APP], "dev1")
    nested = store.acquire(gitlab_pull(1, GITLAB_REPO.model_copy(update={"full_name": "acme/infra/app"})),
                           [Project(dir="x")], "dev1")

    assert github.complete and gitlab.complete and nested.complete
    assert gitlab.acquired[0].id != github.acquired[0].id
    assert lock_id_parts(gitlab.acquired[0].id) == ("gitlab:acme/infra", "app", "default")
    assert lock_id_parts(nested.acquired[0].id) == ("gitlab:acme/infra/app", "x", "default")
    assert lock_id_parts(github.acquired[0].id) == ("acme/infra", "app", "default")
    assert gitlab.acquired[0].vcs_repo() == GITLAB_REPO.model_copy(update={"default_branch": "main"})
    assert [lock.repo for lock in store.for_pull("gitlab:acme/infra", 1)] == ["gitlab:acme/infra"]

    store.release_pull("gitlab:acme/infra", 1)
    assert store.get("acme/infra", APP) == github.acquired[0]
    assert store.get("gitlab:acme/infra", APP) is None


def test_a_gitlab_merge_request_and_a_github_pull_request_of_one_path_and_number_keep_their_own_records(
    state: StateStore,
) -> None:
    github, gitlab = pull(4, "a"), gitlab_pull(4).model_copy(update={"head_sha": "b" * 40})
    state.save_pull(github)
    state.save_pull(gitlab)
    state.save_plan(plan_record(APP, number=4))
    state.save_plan(plan_record(NETWORK, number=4).model_copy(update={"repo": gitlab.repo.key}))

    assert state.get_pull("acme/infra", 4) == github
    assert state.get_pull("gitlab:acme/infra", 4) == gitlab
    assert [p.project for p in state.plans("acme/infra", 4)] == [APP]
    assert [p.project for p in state.plans("gitlab:acme/infra", 4)] == [NETWORK]
    assert sorted(repo.key for repo in state.known_repos()) == ["acme/infra", "gitlab:acme/infra"]
    state.forget_pull("gitlab:acme/infra", 4)
    assert [p.project for p in state.plans("acme/infra", 4)] == [APP]


def race_threads(store: LockStore, racers: int) -> dict[int, LockAttempt]:
    """Pull requests 1..racers, each in its own thread, acquiring the three projects at once."""
    start = threading.Barrier(racers)
    attempts: dict[int, LockAttempt] = {}

    def race(number: int) -> None:
        start.wait()
        attempts[number] = store.acquire(pull(number), in_turns(number), f"dev{number}")

    threads = [threading.Thread(target=race, args=(number,)) for number in range(1, racers + 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return attempts


def test_of_twenty_threads_racing_for_three_projects_one_takes_all_three(open_locks: LockOpener) -> None:
    for round_ in range(10):  # a race lost by chance in one round is won in another
        store = open_locks(f"round-{round_}")

        attempts = race_threads(store, 20)

        winners = [number for number, attempt in attempts.items() if attempt.acquired]
        assert len(winners) == 1, f"several pull requests hold some of the projects: {winners}"
        winner = winners[0]
        assert [lock.project for lock in attempts[winner].acquired] == in_turns(winner)
        for number, attempt in attempts.items():
            if number != winner:
                assert [(lock.project, lock.pull_number) for lock in attempt.conflicts] == [
                    (project, winner) for project in in_turns(number)
                ]
        assert set(holders(store).values()) == {winner}


# --- locks: waiting and handing over ------------------------------------------------------------


def test_waiters_queue_in_order_and_queueing_again_keeps_the_place(store: LockStore) -> None:
    store.acquire(pull(1), [APP], "dev1")

    assert store.wait_for(pull(2), APP, "dev2") == 1
    assert store.wait_for(pull(3), APP, "dev3") == 2
    assert store.wait_for(pull(4), APP, "dev4") == 3
    assert store.wait_for(pull(2, sha="c"), APP, "dev2") == 1

    assert store.waiting("acme/infra", APP) == [2, 3, 4]
    assert store.waiting("acme/infra", NETWORK) == []
    assert store.wait_for(pull(1), APP, "dev1") == 0, "the holder does not queue for its own lock"


def test_a_released_lock_passes_to_the_first_waiter_and_needs_a_plan(store: LockStore) -> None:
    store.acquire(pull(1), [APP, NETWORK], "dev1")
    store.wait_for(pull(2, sha="c"), APP, "dev2")
    store.wait_for(pull(3), APP, "dev3")
    store.wait_for(pull(3), NETWORK, "dev3")

    release = store.release_pull("acme/infra", 1)

    assert [lock.project for lock in release.released] == [APP, NETWORK]
    assert [(lock.project, lock.pull_number, lock.user, lock.head_sha) for lock in release.handed_over] == [
        (APP, 2, "dev2", "c" * 40),
        (NETWORK, 3, "dev3", "a" * 40),
    ]
    assert holders(store) == {"app:default": 2, "network:default": 3}
    assert store.waiting("acme/infra", APP) == [3]
    assert store.waiting_for_pull("acme/infra", 3) == [APP]
    assert store.pending_handoffs() == release.handed_over
    assert store.for_pull("acme/infra", 1) == []

    store.mark_handoff_planned(release.handed_over[0].id)
    assert [lock.pull_number for lock in store.pending_handoffs()] == [3]


def test_an_operator_release_hands_over_one_lock(store: LockStore) -> None:
    locks = store.acquire(pull(1), [APP, NETWORK], "dev1").acquired
    store.wait_for(pull(2), NETWORK, "dev2")

    release = store.release(locks[1].id)

    assert [lock.project for lock in release.released] == [NETWORK]
    assert [lock.pull_number for lock in release.handed_over] == [2]
    assert holders(store) == {"app:default": 1, "network:default": 2}
    assert [lock.project for lock in store.for_pull("acme/infra", 1)] == [APP]
    assert [lock.project for lock in store.for_pull("acme/infra", 2)] == [NETWORK]
    assert store.release("bm9uZQ").released == []


def test_a_pull_request_released_or_leaving_is_out_of_every_queue(store: LockStore) -> None:
    store.acquire(pull(1), [APP, NETWORK], "dev1")
    store.acquire(pull(2), [STAGING], "dev2")
    for project in (APP, NETWORK):
        store.wait_for(pull(2), project, "dev2")
        store.wait_for(pull(3), project, "dev3")

    assert store.leave_queues("acme/infra", 3) == [APP, NETWORK]
    assert store.waiting_for_pull("acme/infra", 3) == []
    assert store.leave_queues("acme/infra", 3) == []

    release = store.release_pull("acme/infra", 2)
    assert [lock.project for lock in release.released] == [STAGING]
    assert release.handed_over == []
    assert store.waiting("acme/infra", APP) == []
    assert store.release_pull("acme/infra", 1).handed_over == []
    assert store.count() == 0


def test_a_waiter_for_a_lock_freed_meanwhile_takes_it_at_once(store: LockStore) -> None:
    assert store.wait_for(pull(2), APP, "dev2") == 0

    assert holders(store) == {"app:default": 2}
    assert [lock.pull_number for lock in store.pending_handoffs()] == [2]


def test_taking_a_lock_leaves_its_queue_and_a_released_handoff_is_moot(store: LockStore) -> None:
    store.acquire(pull(1), [APP], "dev1")
    store.wait_for(pull(2), APP, "dev2")
    store.release_pull("acme/infra", 1)
    store.release_pull("acme/infra", 2)

    assert store.pending_handoffs() == []
    assert store.acquire(pull(3), [APP], "dev3").complete
    assert store.waiting_for_pull("acme/infra", 2) == []


def test_a_waiter_that_takes_the_lock_itself_leaves_the_queue(store: LockStore) -> None:
    store.acquire(pull(1), [APP], "dev1")
    store.wait_for(pull(2), APP, "dev2")
    store.wait_for(pull(3), APP, "dev3")
    store.release(lock_id_for("acme/infra", APP))  # passes to #2
    store.release_pull("acme/infra", 2)  # passes to #3
    store.release_pull("acme/infra", 3)

    assert store.acquire(pull(2), [APP], "dev2").complete
    assert store.waiting("acme/infra", APP) == []
    assert store.count() == 1


def test_locks_queues_and_pending_handoffs_survive_a_restart(open_locks: LockOpener) -> None:
    before = open_locks()
    before.acquire(pull(1), [APP, NETWORK], "dev1")
    before.wait_for(pull(2), APP, "dev2")
    before.wait_for(pull(3), APP, "dev3")
    before.wait_for(pull(3), NETWORK, "dev3")
    handed = before.release(lock_id_for("acme/infra", NETWORK)).handed_over

    after = open_locks()

    assert after.all() == before.all()
    assert after.waiting("acme/infra", APP) == [2, 3]
    assert after.pending_handoffs() == handed
    assert after.wait_for(pull(4), APP, "dev4") == 3
    assert open_locks("elsewhere").all() == [], "stores of other names share nothing"
