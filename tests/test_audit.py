"""The audit log and the drift records in the state store, `/audit` and `GET /api/audit`, and commands recorded.

Store cases run on SQLite and on Redis, reopening the store where another process must see the data.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from redis import Redis

from atlas.models import DriftRecord, DriftStatus, Project, PullRequest, Repo, utcnow
from atlas.stores.audit import AuditAction, AuditEntry
from atlas.stores.redis.backend import connect
from atlas.stores.redis.state import RedisStateStore
from atlas.stores.sqlite.state import SQLiteStateStore
from atlas.stores.state import StateStore
from tests.atlas_plugin import RunningAtlas
from tests.commands_world import DEVELOPER, REPO, app_change, comment, open_and_plan
from tests.emulator import EmulatedRepo, GitHubEmulator, webhook_payload
from tests.redis_backends import backend_of

StateOpener = Callable[[], StateStore]

ACME = Repo(full_name="acme/infra", clone_url="https://github.com/acme/infra.git", html_url="https://github.com/acme/infra")
OTHER = Repo(full_name="acme/other", clone_url="https://github.com/acme/other.git", html_url="https://github.com/acme/other")


@pytest.fixture(params=["sqlite", "redis"])
def open_state(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateOpener]:
    clients: list[Redis] = []
    url = request.getfixturevalue("redis_url") if request.param == "redis" else ""

    def open_store() -> StateStore:
        if request.param == "sqlite":
            return SQLiteStateStore(tmp_path / "atlas.db")
        clients.append(connect(url))
        return RedisStateStore(backend_of(clients[-1]))

    yield open_store
    for client in clients:
        client.close()


def entry(action: AuditAction, repo: str, seconds: int, **fields: object) -> AuditEntry:
    at = utcnow().replace(microsecond=0) - timedelta(hours=1) + timedelta(seconds=seconds)
    return AuditEntry.model_validate({"action": action, "repo": repo, "user": "alice", "outcome": "succeeded",
                                      "at": at, **fields})


def test_audit_entries_are_kept_newest_first_and_filtered(open_state: StateOpener) -> None:
    state = open_state()
    entries = [
        entry(AuditAction.PLAN, "acme/infra", 1, pull_number=1, sha="a" * 40),
        entry(AuditAction.APPLY, "acme/infra", 2, pull_number=1, project=Project(dir="app")),
        entry(AuditAction.DRIFT_CHECK, "acme/other", 3, outcome="drifted", plan="~ update"),
        entry(AuditAction.UNLOCK, "acme/infra", 4, pull_number=2),
    ]
    for each in entries:
        state.record_audit(each)

    reopened = open_state()
    assert reopened.audit_entries() == list(reversed(entries))
    assert [e.action for e in reopened.audit_entries(repo="acme/infra")] == ["unlock", "apply", "plan"]
    assert reopened.audit_entries(action="drift_check") == [entries[2]]
    assert reopened.audit_entries(repo="acme/infra", action="apply") == [entries[1]]
    assert reopened.audit_entries(before=entries[2].at) == [entries[1], entries[0]]
    assert reopened.audit_entries(limit=2) == [entries[3], entries[2]]
    assert reopened.audit_entries(repo="acme/none") == []


def test_the_latest_drift_check_of_each_project_is_kept(open_state: StateOpener) -> None:
    state = open_state()
    first = DriftRecord(repo="acme/infra", project=Project(dir="app"), sha="a" * 40, status=DriftStatus.DRIFTED)
    other = DriftRecord(repo="acme/infra", project=Project(dir="app", workspace="staging"), sha="a" * 40,
                        status=DriftStatus.IN_SYNC)
    elsewhere = DriftRecord(repo="acme/other", project=Project(dir="."), sha="b" * 40, status=DriftStatus.FAILED,
                            error="terraform init failed")
    for record in (first, other, elsewhere):
        state.save_drift(record)
    later = first.model_copy(update={"status": DriftStatus.REMEDIATED, "sha": "c" * 40})
    open_state().save_drift(later)

    reopened = open_state()
    assert reopened.drift_records() == [later, other, elsewhere]
    assert reopened.drift_records("acme/other") == [elsewhere]


def test_a_slot_is_claimed_once_until_its_claim_expires(open_state: StateOpener) -> None:
    state = open_state()
    assert state.claim_slot("drift:acme/infra:* * * * *:2030-01-01T10:00:00+00:00", 0.3)
    assert not open_state().claim_slot("drift:acme/infra:* * * * *:2030-01-01T10:00:00+00:00", 0.3)
    assert state.claim_slot("drift:acme/infra:* * * * *:2030-01-01T10:01:00+00:00", 0.3)
    time.sleep(0.5)
    assert open_state().claim_slot("drift:acme/infra:* * * * *:2030-01-01T10:00:00+00:00", 60)


def test_the_repositories_of_saved_pull_requests_are_known(open_state: StateOpener) -> None:
    state = open_state()
    for repo, number in ((OTHER, 4), (ACME, 1), (ACME, 2)):
        state.save_pull(PullRequest(repo=repo, number=number, head_sha="a" * 40, head_ref="x", base_ref="main",
                                    author="alice"))
    assert [repo.full_name for repo in open_state().known_repos()] == ["acme/infra", "acme/other"]
    assert open_state().known_repos()[0] == ACME


# --- the pages and the API -------------------------------------------------------------------------


@pytest.fixture
def repo(fixture_repo: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator) -> EmulatedRepo:
    created = fixture_repo("multi-project")
    github_emulator.set_permission(REPO, DEVELOPER, "write")
    return created


def test_plan_apply_and_unlock_are_recorded_with_who_when_which_commit_and_the_outcome(
    repo: EmulatedRepo, start_atlas: Callable[..., RunningAtlas], github_emulator: GitHubEmulator,
) -> None:
    atlas = start_atlas(api_secret="s3cret")
    pull = open_and_plan(atlas, github_emulator, "more-replicas", app_change(3), author="bob")
    comment(atlas, pull, "atlas apply")
    atlas.wait_idle()
    comment(atlas, pull, "atlas apply")  # nothing left to apply: refused, and recorded as such
    atlas.wait_idle()
    comment(atlas, pull, "atlas unlock")
    atlas.wait_idle()

    answer = requests.get(f"{atlas.url}/api/audit", params={"repo": REPO}, headers={"X-Atlas-Token": "s3cret"},
                          timeout=10)
    assert answer.status_code == 200
    entries = list(reversed(answer.json()["entries"]))
    assert [(e["action"], e["user"], e["trigger"], e["outcome"]) for e in entries] == [
        ("plan", "bob", "autoplan", "succeeded"),
        ("apply", DEVELOPER, "comment", "succeeded"),
        ("apply", DEVELOPER, "comment", "succeeded"),
        ("unlock", DEVELOPER, "comment", "succeeded"),
    ]
    assert all(e["sha"] == pull.head_sha and e["pull_number"] == pull.number and e["job_id"] for e in entries)
    assert entries[0]["detail"] == "1/1 projects planned"
    assert entries[1]["detail"] == "1/1 projects applied"
    assert entries[2]["detail"].startswith("refused: ")

    page = requests.get(f"{atlas.url}/audit", params={"action": "apply"}, timeout=10)
    assert page.status_code == 200
    assert page.text.count('class="audit audit-apply"') == 2 and "audit-plan" not in page.text
    assert f"#{pull.number}</a>" in page.text and pull.head_sha[:7] in page.text


def test_an_apply_after_merge_is_recorded_as_the_merger(
    repo: EmulatedRepo, start_atlas: Callable[..., RunningAtlas], github_emulator: GitHubEmulator,
) -> None:
    atlas = start_atlas(apply_on_merge="true")
    pull = open_and_plan(atlas, github_emulator, "more-replicas", app_change(3))
    merged = webhook_payload("pull_request", pull, "closed", merged=True)
    assert atlas.deliver("pull_request", merged).status_code == 202
    atlas.wait_idle()
    sha = github_emulator.pull(REPO, pull.number).merge_commit_sha
    state: StateStore = atlas.app.config["ATLAS_STATE"]
    [applied] = state.audit_entries(action="apply")
    assert (applied.trigger, applied.sha, applied.outcome) == ("merge", sha, "succeeded")
    assert applied.detail == "1/1 projects applied after merge"


def test_the_audit_api_needs_the_api_secret(start_atlas: Callable[..., RunningAtlas]) -> None:
    closed = start_atlas()
    assert requests.get(f"{closed.url}/api/audit", timeout=10).status_code == 404

    atlas = start_atlas(api_secret="s3cret", web_username="operator", web_password="pw")
    state: StateStore = atlas.app.config["ATLAS_STATE"]
    state.record_audit(entry(AuditAction.UNLOCK, "acme/infra", 1, pull_number=3))
    assert requests.get(f"{atlas.url}/api/audit", timeout=10).status_code == 401
    wrong = requests.get(f"{atlas.url}/api/audit", headers={"X-Atlas-Token": "nope"}, timeout=10)
    assert wrong.status_code == 401 and wrong.json() == {"Error": "missing or wrong X-Atlas-Token"}
    right = requests.get(f"{atlas.url}/api/audit", headers={"X-Atlantis-Token": "s3cret"}, timeout=10)
    assert right.status_code == 200, "the token is enough: basic auth guards the pages, not the API"
    assert [e["pull_number"] for e in right.json()["entries"]] == [3]
    bad = requests.get(f"{atlas.url}/api/audit", params={"action": "deploy"}, headers={"X-Atlas-Token": "s3cret"},
                       timeout=10)
    assert bad.status_code == 400 and "action must be one of plan, apply, unlock" in bad.json()["Error"]
    assert requests.get(f"{atlas.url}/audit", timeout=10).status_code == 401
    assert requests.get(f"{atlas.url}/audit", auth=("operator", "pw"), timeout=10).status_code == 200


def test_audit_pages_go_back_in_time(start_atlas: Callable[..., RunningAtlas]) -> None:
    atlas = start_atlas(api_secret="s3cret")
    state: StateStore = atlas.app.config["ATLAS_STATE"]
    for second in range(5):
        state.record_audit(entry(AuditAction.PLAN, "acme/infra", second, pull_number=second + 1))
    first = requests.get(f"{atlas.url}/api/audit", params={"limit": 3}, headers={"X-Atlas-Token": "s3cret"},
                         timeout=10).json()
    assert [e["pull_number"] for e in first["entries"]] == [5, 4, 3]
    second = requests.get(f"{atlas.url}/api/audit", params={"limit": 3, "before": first["next_before"]},
                          headers={"X-Atlas-Token": "s3cret"}, timeout=10).json()
    assert [e["pull_number"] for e in second["entries"]] == [2, 1]
    assert second["next_before"] is None
