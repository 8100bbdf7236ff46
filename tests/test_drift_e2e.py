"""Drift detection end to end: the live state changed out of band, `atlas drift run` finds it and GitHub is told.

Each test applies the default branch of a fixture with the real terraform in a copy of its own
(the "live" copy, sharing the fixture's state directory as a remote backend would), changes the
infrastructure by hand in that copy, and runs `atlas drift run` as a subprocess against the GitHub
emulator, reading the exit status, the drift issue, the `atlas/drift` status and the state file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from atlas.commands.context import CommandContext
from atlas.drift import check as drift
from atlas.drift.report import fit_for_github
from atlas.drift.scheduler import Scheduler, start_scheduler
from atlas.models import CommandName, DriftStatus, JobStatus
from atlas.notify import SIGNATURE_HEADER, verify_signature
from atlas.render.drift import render_issue_body
from atlas.stores.audit import AuditAction
from atlas.stores.jobs import JobRecord
from tests.atlas_plugin import FIXTURES, REPO_ROOT, RunningAtlas
from tests.commands_world import DEVELOPER, REPO, app_change, open_and_plan
from tests.emulator import GitHubEmulator, webhook_payload
from tests.live_copy import LiveCopy
from tests.notify_receivers import WebhookReceiver, running
from tests.redis_plugin import eventually, free_port
from tests.scale_world import ScaleWorld, SlowTerraform

pytest_plugins = ["tests.scale_world"]

NEVER = "0 0 1 1 *"
"""A schedule that does not fire while a test runs, so servers' schedulers stay out of the way."""

ROGUE = 'resource "terraform_data" "rogue" {\n  input = "made by hand"\n}\n'


@dataclass
class DriftWorld:
    """The emulator, a fixture repository applied in a live copy, and how to run `atlas drift run` on it."""

    emulator: GitHubEmulator
    tmp_path: Path
    state_dir: Path
    live: Path
    data_dir: Path
    repos_yaml: Path

    def configure(self, drift_block: str, extra: str = "") -> None:
        """repos.yaml with one entry for the repository: its `drift:` block and any other keys."""
        host_id = f"127.0.0.1/{REPO}"
        self.repos_yaml.write_text(f"repos:\n- id: {host_id}\n  drift: {drift_block}\n{extra}")

    def terraform(self, project: str, *args: str) -> str:
        return LiveCopy(self.live).terraform(project, *args)

    def apply_live(self, project: str, *args: str) -> None:
        """`terraform apply` in the live copy: by hand, outside atlas."""
        LiveCopy(self.live).apply(project, *args)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ATLAS_")}
        env.update(ATLAS_GH_TOKEN=self.emulator.token, HOME=str(self.tmp_path / "home"))
        return subprocess.run(
            [sys.executable, "-m", "atlas", "drift", "run", "--data-dir", str(self.data_dir),
             "--gh-api-url", self.emulator.api_url, "--repo-config", str(self.repos_yaml), "--repo-allowlist", "*",
             "--atlas-url", "https://atlas.example.test", "--log-level", "warning",
             "--sandbox", "required", "--sandbox-paths", str(self.state_dir), *args],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
        )

    def resources(self, project: str) -> dict[str, Any]:
        """`type.name` → the attributes terraform's state holds for it now."""
        state = json.loads((self.state_dir / f"{self.fixture}/{project}.tfstate").read_text())
        return {f"{r['type']}.{r['name']}": r["instances"][0]["attributes"] for r in state["resources"]
                if r["mode"] == "managed"}

    def service_name(self) -> str:
        """The name the app's service has in the state now: `production-app` as git says, or what was applied."""
        name: str = self.resources("app")["terraform_data.service"]["input"]["value"]["name"]
        return name

    @property
    def fixture(self) -> str:
        return self.live.name

    def head(self) -> str:
        sha = self.emulator.repo(REPO).git.resolve("refs/heads/main")
        assert sha
        return sha

    def drift_statuses(self) -> list[tuple[str, str]]:
        return [(s["state"], s["description"]) for s in self.emulator.statuses(REPO, self.head())
                if s["context"] == "atlas/drift"]

    def issues(self, state: str = "all") -> list[dict[str, Any]]:
        return self.emulator.issues(REPO, state=state, label="atlas-drift")

    def comments(self, number: int) -> list[str]:
        return [comment["body"] for comment in self.emulator.comments(REPO, number)]


@pytest.fixture
def drift_world(github_emulator: GitHubEmulator, tmp_path: Path, state_dir: Path) -> Callable[..., DriftWorld]:
    def build(fixture: str = "multi-project", *, apply: tuple[str, ...] = ("app", "db"),
              files: dict[str, str] | None = None) -> DriftWorld:
        github_emulator.create_repo(REPO, source_dir=FIXTURES / fixture, files=files,
                                    substitutions={"__STATE_DIR__": str(state_dir)})
        live = LiveCopy.of(fixture, state_dir, tmp_path / "live").path
        world = DriftWorld(github_emulator, tmp_path, state_dir, live, tmp_path / "atlas-data", tmp_path / "repos.yaml")
        world.configure("{enabled: true}")
        for project in apply:
            world.apply_live(project)
        return world

    return build


def test_drift_is_reported_in_one_issue_until_the_project_is_back_in_sync(
    drift_world: Callable[..., DriftWorld],
) -> None:
    world = drift_world()
    in_sync = world.run()
    assert in_sync.returncode == 0, in_sync.stdout + in_sync.stderr
    assert "2 projects checked: 2 in sync, 0 drifted, 0 remediated, 0 failed." in in_sync.stdout
    assert world.issues() == []
    assert world.drift_statuses()[-1] == ("success", "2 projects in sync")

    world.apply_live("app", "-var", "environment=staging")
    found = world.run()
    assert found.returncode == 2, found.stdout + found.stderr
    assert "app (default)  drifted" in found.stdout and "terraform_data.service" in found.stdout
    [issue] = world.issues()
    assert issue["title"] == "atlas drift: acme/infra app (default)"
    assert issue["labels"] == ["atlas-drift"] and issue["state"] == "open"
    body = issue["body"]
    assert "| `terraform_data.service` | update in-place | no |" in body
    assert '`input.name`: `"staging-app"` → `"production-app"`' in body
    assert "<details><summary>Plan</summary>" in body and "```diff" in body
    assert "Plan: 0 to add, 1 to change, 0 to destroy." in body
    assert "db" not in issue["title"]
    assert world.drift_statuses()[-1] == ("failure", "1 of 2 projects drifted")

    again = world.run()
    assert again.returncode == 2
    [same] = world.issues()
    assert same["number"] == issue["number"], "a later check updates the issue instead of opening another"
    [still] = world.comments(issue["number"])
    assert "**still drifted**" in still

    world.apply_live("app")
    back = world.run()
    assert back.returncode == 0, back.stdout + back.stderr
    [closed] = world.issues()
    assert closed["state"] == "closed" and closed["state_reason"] == "completed"
    assert "**Back in sync**" in world.comments(issue["number"])[-1]
    assert world.drift_statuses()[-1] == ("success", "2 projects in sync")


def test_remediation_applies_the_default_branch_and_closes_its_issue_in_the_same_check(
    drift_world: Callable[..., DriftWorld],
) -> None:
    world = drift_world()
    world.configure("{enabled: true, remediate: true}")
    world.apply_live("app", "-var", "environment=staging")
    assert world.service_name() == "staging-app"

    remediated = world.run()

    assert remediated.returncode == 2, "drift was found, even though it was remediated"
    assert "remediated" in remediated.stdout
    assert world.service_name() == "production-app"
    [issue] = world.issues()
    assert issue["state"] == "closed"
    [record] = world.comments(issue["number"])
    assert "**Remediated**" in record and "Apply complete! Resources: 0 added, 1 changed, 0 destroyed." in record
    assert "<summary>Plan applied</summary>" in record
    assert world.drift_statuses()[-1] == ("success", "2 projects in sync (1 remediated)")

    from atlas.stores.sqlite.state import SQLiteStateStore

    entries = SQLiteStateStore(world.data_dir / "atlas.db").audit_entries(action=AuditAction.REMEDIATION)
    [entry] = entries
    assert entry.outcome == "applied" and entry.project is not None and entry.project.dir == "app"
    assert "production-app" in entry.plan and "Apply complete!" in entry.output
    assert entry.sha == world.head() and entry.trigger == "cli"

    assert world.run().returncode == 0
    assert len(world.issues()) == 1


def test_a_check_that_finds_drift_and_remediates_it_notifies_the_webhooks(
    drift_world: Callable[..., DriftWorld],
) -> None:
    world = drift_world()
    world.configure("{enabled: true, remediate: true}")
    world.apply_live("app", "-var", "environment=staging")
    secret = "whsec-drift-e2e-secret"
    with running(WebhookReceiver()) as receiver:
        hooks = json.dumps([
            {"event": "drift", "kind": "http", "url": f"{receiver.url}/drift", "secret": secret},
            {"event": "remediation", "kind": "http", "url": f"{receiver.url}/remediation", "branch-regex": "^main$"},
            {"event": "apply", "kind": "http", "url": f"{receiver.url}/apply"},
        ])
        checked = world.run("--webhooks", hooks)
        assert checked.returncode == 2, checked.stdout + checked.stderr
        by_path = {request.path: request for request in receiver.received()}

    assert sorted(by_path) == ["/drift", "/remediation"], "a remediation is no pull request's apply"
    drift = by_path["/drift"]
    assert verify_signature(drift.body, drift.headers[SIGNATURE_HEADER.lower()], secret)
    body = drift.json()
    assert (body["event"], body["branch"], body["repo"]["full_name"]) == ("drift", "main", REPO)
    assert (body["projects_with_drift"], body["total_projects"]) == (1, 2)
    app = next(project for project in body["projects"] if project["dir"] == "app")
    assert (app["has_drift"], app["to_change"], app["error"]) == (True, 1, None)
    assert app["summary"] == "Plan: 0 to add, 1 to change, 0 to destroy."
    assert body["url"] == "https://atlas.example.test/drift"

    remediation = by_path["/remediation"].json()
    assert (remediation["event"], remediation["action"], remediation["success"]) == ("remediation", "apply", True)
    assert remediation["project"] == {"dir": "app", "workspace": "default", "name": None}
    assert remediation["summary"] == "Apply complete! Resources: 0 added, 1 changed, 0 destroyed."
    assert world.service_name() == "production-app"


def test_remediation_waits_while_a_pull_request_holds_the_lock(
    drift_world: Callable[..., DriftWorld], start_atlas: Callable[..., RunningAtlas], github_emulator: GitHubEmulator,
) -> None:
    world = drift_world()
    world.configure("{enabled: true, remediate: true}")
    github_emulator.set_permission(REPO, DEVELOPER, "write")
    atlas = start_atlas(data_dir=world.data_dir, repo_config=world.repos_yaml, drift_schedule=NEVER)
    pull = open_and_plan(atlas, github_emulator, "more-replicas", app_change(3))
    world.apply_live("app", "-var", "environment=staging")

    waiting = world.run()

    assert waiting.returncode == 2
    assert world.service_name() == "staging-app", "nothing applied"
    [issue] = world.issues()
    assert issue["state"] == "open"
    assert f"waits: the project is locked by pull request #{pull.number}" in issue["body"]

    closed = webhook_payload("pull_request", pull, "closed")
    github_emulator.close_pull(REPO, pull.number)
    assert atlas.deliver("pull_request", closed).status_code == 202
    atlas.wait_idle()
    assert world.run().returncode == 2
    assert world.service_name() == "production-app"
    [done] = world.issues()
    assert done["number"] == issue["number"] and done["state"] == "closed"
    assert "**Remediated**" in world.comments(issue["number"])[-1]


def test_a_plan_that_destroys_is_remediated_only_with_remediate_destroy(drift_world: Callable[..., DriftWorld]) -> None:
    world = drift_world()
    world.configure("{enabled: true, remediate: true}")
    (world.live / "app" / "rogue.tf").write_text(ROGUE)
    world.apply_live("app")
    (world.live / "app" / "rogue.tf").unlink()

    refused = world.run()

    assert refused.returncode == 2
    assert "terraform_data.rogue" in world.resources("app")
    [issue] = world.issues()
    assert "| `terraform_data.rogue` | destroy | no |" in issue["body"]
    assert "not applied: the plan destroys 1 resource; atlas applies a plan that destroys only with " \
           "`remediate_destroy: true`" in issue["body"]

    world.configure("{enabled: true, remediate: true, remediate_destroy: true}")
    assert world.run().returncode == 2
    assert "terraform_data.rogue" not in world.resources("app")
    assert world.issues()[0]["state"] == "closed"


NO_UPDATES = """\
package main
import rego.v1

deny contains msg if {
    some rc in input.resource_changes
    "update" in rc.change.actions
    msg := sprintf("%s: no in-place update outside a review", [rc.address])
}
"""

NO_DESTROY = """\
package main
import rego.v1

deny contains msg if {
    some rc in input.resource_changes
    "delete" in rc.change.actions
    msg := sprintf("%s: no destroy", [rc.address])
}
"""


def test_a_remediation_whose_plan_fails_its_policies_is_not_applied_and_the_issue_says_why(
    drift_world: Callable[..., DriftWorld],
) -> None:
    world = drift_world()
    policy_dir = world.tmp_path / "policies" / "changes"
    policy_dir.mkdir(parents=True)
    (policy_dir / "changes.rego").write_text(NO_UPDATES)
    policies = ("policies:\n  owners: {users: [olga]}\n  policy_sets:\n"
                "    - {name: changes, path: policies/changes, source: local}\n")
    world.configure("{enabled: true, remediate: true}", policies)
    world.apply_live("app", "-var", "environment=staging")

    refused = world.run("--enable-policy-checks")

    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert world.service_name() == "staging-app", "a plan failing its policies is not applied"
    [issue] = world.issues()
    assert issue["state"] == "open"
    assert ("not applied: the plan fails its policy check: `changes` (failed: terraform_data.service: no in-place "
            "update outside a review)") in issue["body"]
    assert "bring the project back through a pull request" in issue["body"]

    from atlas.stores.sqlite.state import SQLiteStateStore

    store = SQLiteStateStore(world.data_dir / "atlas.db")
    [remediation] = store.audit_entries(action=AuditAction.REMEDIATION)
    assert remediation.outcome == "refused" and "`changes`" in remediation.detail
    [check] = store.audit_entries(action=AuditAction.POLICY_CHECK)
    assert check.outcome == "failed" and "no in-place update" in check.output

    broken = "package main\nimport rego.v1\n\ndeny[msg] {\n    msg := \"v0\"\n}\n"
    (policy_dir / "changes.rego").write_text(broken)
    assert world.run("--enable-policy-checks").returncode == 2
    assert world.service_name() == "staging-app", "a policy set atlas cannot load fails closed"
    assert "`changes` (could not be evaluated: changes.rego:4" in world.issues()[0]["body"]

    (policy_dir / "changes.rego").write_text(NO_DESTROY)
    passed = world.run("--enable-policy-checks")
    assert passed.returncode == 2, passed.stdout + passed.stderr
    assert world.service_name() == "production-app", "a plan that passes its policies is remediated"
    assert world.issues()[0]["state"] == "closed"


def test_a_check_that_cannot_plan_fails_with_exit_status_1(drift_world: Callable[..., DriftWorld]) -> None:
    world = drift_world("failing", apply=("healthy",))

    failed = world.run()

    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "  broken (default)   failed      terraform plan failed (exit code 1): Error: " in failed.stdout
    assert "  healthy (default)  in sync" in failed.stdout
    assert world.drift_statuses()[-1] == ("error", "1 of 2 drift checks failed")
    assert world.issues() == [], "a failed check is not drift"


def test_the_repo_config_turns_drift_detection_off_for_a_project_where_repos_yaml_allows_it(
    drift_world: Callable[..., DriftWorld],
) -> None:
    config = "version: 3\nprojects:\n- dir: app\n  drift: {enabled: false}\n- dir: db\n"
    world = drift_world(files={"atlantis.yaml": config})
    world.configure("{enabled: true}", "  allowed_overrides: [drift]\n")
    world.apply_live("app", "-var", "environment=staging")

    checked = world.run()

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "1 project checked: 1 in sync" in checked.stdout
    assert "drift detection is off for app" in checked.stdout

    named = world.run("--project", "app")
    assert named.returncode == 2
    assert [issue["title"] for issue in world.issues()] == ["atlas drift: acme/infra app (default)"]


def test_without_drift_blocks_nothing_is_checked_and_an_unknown_repo_fails(
    drift_world: Callable[..., DriftWorld],
) -> None:
    world = drift_world(apply=())
    world.repos_yaml.write_text("repos:\n- id: /.*/\n  allowed_overrides: [workflow]\n")
    nothing = world.run()
    assert nothing.returncode == 0
    assert "No repository has drift detection on" in nothing.stdout

    missing = world.run("--repo", "acme/nothing-here")
    assert missing.returncode == 1
    assert "acme/nothing-here: check failed: GitHub reading repository acme/nothing-here failed: 404" in missing.stdout


def test_the_drift_page_metrics_and_audit_show_the_latest_checks(
    drift_world: Callable[..., DriftWorld], start_atlas: Callable[..., RunningAtlas],
) -> None:
    world = drift_world()
    atlas = start_atlas(data_dir=world.data_dir, repo_config=world.repos_yaml, drift_schedule=NEVER,
                        api_secret="audit-secret")
    world.apply_live("app", "-var", "environment=staging")
    ctx: CommandContext = atlas.app.config["ATLAS_CONTEXT"]

    [check] = drift.run_checks(ctx, trigger="schedule", user="atlas")

    assert {r.project.dir: r.status for r in check.records} == {"app": DriftStatus.DRIFTED, "db": DriftStatus.IN_SYNC}
    page = requests.get(f"{atlas.url}/drift", timeout=10)
    assert page.status_code == 200
    assert "acme/infra" in page.text and "terraform_data.service" in page.text
    assert 'class="drift drift-drifted"' in page.text and 'class="drift drift-in_sync"' in page.text
    metrics = requests.get(f"{atlas.url}/metrics", timeout=10).text
    assert 'atlas_drift_projects{repo="acme/infra",status="drifted"} 1.0' in metrics
    assert 'atlas_drift_projects{repo="acme/infra",status="in_sync"} 1.0' in metrics
    assert 'atlas_drift_check_duration_seconds_count{status="drifted"}' in metrics
    answer = requests.get(f"{atlas.url}/api/audit", params={"action": "drift_check"},
                          headers={"X-Atlas-Token": "audit-secret"}, timeout=10)
    assert answer.status_code == 200
    entries = answer.json()["entries"]
    assert {(e["project"]["dir"], e["outcome"], e["user"], e["trigger"]) for e in entries} == {
        ("app", "drifted", "atlas", "schedule"), ("db", "in_sync", "atlas", "schedule")}


def test_the_server_runs_the_checks_on_their_schedule(
    drift_world: Callable[..., DriftWorld], start_atlas: Callable[..., RunningAtlas],
) -> None:
    world = drift_world()
    # Yearly, so that the server's own scheduler, on the real clock, leaves this test alone.
    world.configure(f'{{enabled: true, schedule: "{NEVER}"}}')
    atlas = start_atlas(data_dir=world.data_dir, repo_config=world.repos_yaml)
    assert any(thread.name == "atlas-drift-scheduler" and thread.is_alive() for thread in threading.enumerate())
    world.apply_live("app", "-var", "environment=staging")
    ctx: CommandContext = atlas.app.config["ATLAS_CONTEXT"]
    now = [datetime(2030, 12, 31, 23, 59, 30, tzinfo=UTC)]
    scheduler = start_scheduler(ctx, clock=lambda: now[0], tick_seconds=0.05)
    try:
        eventually(lambda: scheduler.table, 30, "the scheduler reading the schedules")
        assert dict(scheduler.table) == {REPO: {NEVER}}
        assert ctx.state.drift_records() == [], "nothing is due before the new year"
        now[0] = datetime(2031, 1, 1, 0, 0, 10, tzinfo=UTC)
        eventually(lambda: len(ctx.state.drift_records()) == 2, 120, "the checks of the new year's slot")
        atlas.wait_idle(120)
    finally:
        scheduler.stop()
    assert {r.project.dir: (r.status, r.trigger) for r in ctx.state.drift_records()} == {
        "app": (DriftStatus.DRIFTED, "schedule"), "db": (DriftStatus.IN_SYNC, "schedule")}
    assert [issue["title"] for issue in world.issues()] == ["atlas drift: acme/infra app (default)"]
    assert not ctx.state.claim_slot(f"drift:{REPO}:{NEVER}:2031-01-01T00:00:00+00:00", 60), "the slot was claimed"
    # It ran as a job of the embedded queue, with a page like any job's.
    [job] = [record for record in ctx.state.jobs() if record.job.command is CommandName.DRIFT]
    assert (job.status, job.description) == (JobStatus.SUCCEEDED, "1 drifted, 1 in sync")
    page = requests.get(f"{atlas.url}/jobs/{job.job.id}", timeout=10).text
    assert "acme/infra</a>" in page and "default branch" in page
    assert "atlas: app: drifted: 2 resource(s) differ: output.service_name, terraform_data.service (" in page
    assert "atlas: db: in sync (" in page
    assert "[app] " in page and "terraform_data.service" in page


# --- Redis mode: the server schedules, `atlas worker` checks ----------------------------------------


def schedule_new_year(ctx: CommandContext) -> Scheduler:
    """A scheduler of the server's context on a clock of its own, which passes the new year once it read the
    schedules; it queues the new year's slot of a `NEVER` schedule."""
    now = [datetime(2030, 12, 31, 23, 59, 30, tzinfo=UTC)]
    scheduler = start_scheduler(ctx, clock=lambda: now[0], tick_seconds=0.05)
    eventually(lambda: scheduler.table, 30, "the scheduler reading the schedules")
    now[0] = datetime(2031, 1, 1, 0, 0, 10, tzinfo=UTC)
    return scheduler


def drift_job_record(ctx: CommandContext, *statuses: JobStatus) -> JobRecord | None:
    return next((record for record in ctx.state.jobs() if record.job.command is CommandName.DRIFT
                 and (not statuses or record.status in statuses)), None)


def test_in_redis_mode_the_server_only_schedules_and_a_worker_runs_the_checks(
    drift_world: Callable[..., DriftWorld], scale_world: ScaleWorld, start_atlas: Callable[..., RunningAtlas],
    tmp_path: Path,
) -> None:
    world = drift_world()
    world.configure(f'{{enabled: true, schedule: "{NEVER}"}}')
    metrics_port = free_port()
    worker = scale_world.start_worker(extra_args=("--repo-config", str(world.repos_yaml),
                                                  "--metrics-port", str(metrics_port)))
    # Two web processes, which could not run terraform if they tried.
    atlas, other = (start_atlas(data_dir=tmp_path / f"web-{index}", repo_config=world.repos_yaml,
                                redis_url=scale_world.redis_url,
                                terraform_bin=str(tmp_path / "no-terraform-here" / "terraform")) for index in (1, 2))
    world.apply_live("app", "-var", "environment=staging")
    ctx: CommandContext = atlas.app.config["ATLAS_CONTEXT"]

    schedulers = [schedule_new_year(ctx), schedule_new_year(other.app.config["ATLAS_CONTEXT"])]
    try:
        record = eventually(lambda: drift_job_record(ctx, JobStatus.SUCCEEDED, JobStatus.FAILED), 180,
                            "the worker finishing the new year's checks")
    finally:
        for scheduler in schedulers:
            scheduler.stop()

    assert [r.job.command for r in ctx.state.jobs()] == [CommandName.DRIFT], "one slot, queued once"
    assert (record.status, record.description) == (JobStatus.SUCCEEDED, "1 drifted, 1 in sync")
    assert record.job.serial_key == f"drift:{REPO}"
    assert [issue["title"] for issue in world.issues()] == ["atlas drift: acme/infra app (default)"]
    assert world.drift_statuses()[-1] == ("failure", "1 of 2 projects drifted")
    assert {r.project.dir: (r.status, r.trigger) for r in ctx.state.drift_records()} == {
        "app": (DriftStatus.DRIFTED, "schedule"), "db": (DriftStatus.IN_SYNC, "schedule")}
    assert worker.ran("atlas: app: drifted: 2 resource(s) differ"), "the worker ran the checks"
    assert not any((tmp_path / f"web-{index}" / part).exists() for index in (1, 2) for part in ("drift", "repos")), \
        "the web processes cloned and planned nothing"
    page = requests.get(f"{atlas.url}/jobs/{record.job.id}", timeout=10).text
    assert "[app] " in page and "atlas: db: in sync (" in page, "the job's page shows what the worker did"
    index = requests.get(f"{atlas.url}/", timeout=10).text
    assert record.job.id in index and "default branch, schedule" in index
    worker_metrics = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
    assert 'atlas_jobs_total{command="drift",outcome="succeeded"} 1.0' in worker_metrics
    assert 'atlas_drift_check_duration_seconds_count{status="drifted"} 1.0' in worker_metrics


def test_a_remediation_whose_worker_dies_is_reported_and_its_lock_released(
    drift_world: Callable[..., DriftWorld], scale_world: ScaleWorld, start_atlas: Callable[..., RunningAtlas],
) -> None:
    world = drift_world()
    world.configure(f'{{enabled: true, schedule: "{NEVER}", remediate: true}}')
    slow = scale_world.slow_terraform(command="apply", seconds=120)
    worker = scale_world.start_worker(terraform_bin=slow.binary, extra_args=("--repo-config", str(world.repos_yaml)))
    atlas = start_atlas(data_dir=world.data_dir, repo_config=world.repos_yaml, redis_url=scale_world.redis_url)
    world.apply_live("app", "-var", "environment=staging")
    ctx: CommandContext = atlas.app.config["ATLAS_CONTEXT"]

    scheduler = schedule_new_year(ctx)
    try:
        eventually(slow.started_by, 180, "the remediation's apply starting on the worker")
        [lock] = ctx.locks.for_pull(REPO, 0)
        running = drift_job_record(ctx, JobStatus.RUNNING)
        assert running is not None and lock.job_id == running.job.id, "the remediation's lock is its job's"
        worker.kill()
        record = eventually(lambda: drift_job_record(ctx, JobStatus.INTERRUPTED), 60,
                            "the reaper reporting the dead worker's check")
    finally:
        scheduler.stop()

    assert record.job.id == running.job.id
    # Recorded as interrupted first, then reported.
    state, description = eventually(lambda: world.drift_statuses()[-1:], 30, "atlas/drift saying so")[0]
    assert ctx.locks.for_pull(REPO, 0) == [], "the lock the dead remediation held was released"
    assert eventually(lambda: slow.running() is None, 5, "the apply ending with its worker")
    assert state == "error"
    assert description.startswith("drift check failed: interrupted: the atlas worker running this command stopped")
    [entry] = [e for e in ctx.state.audit_entries(action=AuditAction.DRIFT_CHECK) if e.outcome == "failed"]
    assert entry.detail == ("interrupted: the atlas worker running this command stopped; released the lock of app, "
                            "which its remediation held")
    assert world.service_name() == "staging-app", "nothing was applied"


def test_a_drift_job_its_worker_lost_stops_its_terraform(
    drift_world: Callable[..., DriftWorld], start_atlas: Callable[..., RunningAtlas], tmp_path: Path,
) -> None:
    world = drift_world()
    world.configure(f'{{enabled: true, schedule: "{NEVER}"}}')
    slow = SlowTerraform.create(tmp_path / "slow-terraform", seconds=120, only_in="app")
    atlas = start_atlas(data_dir=world.data_dir, repo_config=world.repos_yaml, terraform_bin=str(slow.binary),
                        reachable=(slow.binary.parent,))
    ctx: CommandContext = atlas.app.config["ATLAS_CONTEXT"]

    scheduler = schedule_new_year(ctx)
    try:
        eventually(lambda: slow.running(), 120, "the slow plan of app starting")
        eventually(lambda: [r for r in ctx.state.drift_records() if r.project.dir == "db"], 120,
                   "the check of db, beside it, ending")
        # What a worker does to the job it lost (`Heartbeat.on_lost`).
        [lost] = ctx.running.cancel_pull(f"{REPO}#0")
        atlas.wait_idle(30)
    finally:
        scheduler.stop()
        slow.end_leftover()

    record = ctx.state.get_job(lost.id)
    assert record is not None and record.status is JobStatus.CANCELLED
    assert record.description == "cancelled: 1 failed, 1 in sync"
    [app] = [r for r in ctx.state.drift_records() if r.project.dir == "app"]
    assert app.error is not None and app.error.startswith("terraform plan was cancelled")


# --- the pure parts: what differs, and issue bodies GitHub accepts -----------------------------------


def test_what_differs_names_live_and_wanted_values_and_never_a_sensitive_one() -> None:
    show = {
        "resource_changes": [
            {"address": "aws_db_instance.main", "mode": "managed", "change": {
                "actions": ["update"],
                "before": {"size": 20, "password": "hunter2", "arn": "arn:1"},
                "after": {"size": 40, "password": "s3cret"},
                "after_unknown": {"arn": True},
                "before_sensitive": {"password": True},
                "after_sensitive": {"password": True},
            }},
            {"address": "aws_s3_bucket.logs", "mode": "managed", "change": {
                "actions": ["create"], "before": None, "after": {"bucket": "logs"}, "after_unknown": {},
                "after_sensitive": {}}},
            {"address": "data.aws_caller_identity.me", "mode": "data", "change": {"actions": ["read"]}},
        ],
        "resource_drift": [{"address": "aws_db_instance.main", "change": {"actions": ["update"]}}],
    }

    resources = drift.resources_from_plan(show)

    [database, bucket] = resources
    assert (database.address, database.actions, database.changed_outside) == ("aws_db_instance.main", ("update",),
                                                                               True)
    assert [(d.path, d.live, d.wanted) for d in database.differences] == [
        ("password", "(sensitive)", "(sensitive)"), ("size", "20", "40")]
    assert (bucket.actions, bucket.changed_outside, bucket.differences) == (("create",), False, ())
    assert "hunter2" not in str(resources) and "s3cret" not in str(resources)


def test_an_issue_body_with_a_huge_plan_is_cut_to_what_github_accepts() -> None:
    from atlas.models import DriftRecord, Project, Repo

    repo = Repo(full_name=REPO, clone_url="https://github.com/acme/infra.git", html_url="https://github.com/acme/infra")
    output = "".join(f"  ~ resource \"x\" \"r{n}\" {{ size = 1 -> 2 }}\n" for n in range(5000))
    record = DriftRecord(repo=REPO, project=Project(dir="app"), sha="a" * 40, status=DriftStatus.DRIFTED,
                         output=output)

    body = fit_for_github(render_issue_body(record, repo))

    assert len(body) <= 65536
    assert body.count("```diff") == 1 and body.rstrip().endswith("</sub>")
    assert "characters cut; the audit log keeps more" in body
    assert body.index("characters cut") < body.index("</details>")


def test_the_github_client_finds_opens_updates_and_closes_drift_issues(github_emulator: GitHubEmulator) -> None:
    from atlas.github.client import GitHubClient

    created = github_emulator.create_repo(REPO, files={"main.tf": "# empty\n"})
    pull = github_emulator.open_pull(REPO, "change", {"main.tf": "# changed\n"}, title="atlas drift: not an issue")
    client = GitHubClient(github_emulator.token, github_emulator.api_url)
    repo = client.get_repo(REPO)
    assert (repo.full_name, repo.default_branch, repo.clone_url) == (REPO, "main", created.clone_url)
    assert client.branch_head(repo, "main") == created.git.resolve("refs/heads/main")
    title = "atlas drift: acme/infra app (default)"
    assert client.find_issue(repo, title, "atlas-drift") is None

    issue = client.create_issue(repo, title, "first body", ["atlas-drift"])
    assert issue.number == pull.number + 1, "issues and pull requests share numbers"
    client.create_issue(repo, title, "same title, other label", ["bug"])
    found = client.find_issue(repo, title, "atlas-drift")
    assert found is not None and (found.number, found.body, found.labels) == (issue.number, "first body",
                                                                              ("atlas-drift",))
    assert client.find_issue(repo, "atlas drift: not an issue", "atlas-drift") is None, "pull requests are skipped"

    client.update_issue(repo, issue.number, "second body")
    client.post_comment(repo, issue.number, "still drifted")
    client.close_issue(repo, issue.number)
    assert client.find_issue(repo, title, "atlas-drift") is None
    [kept] = github_emulator.issues(REPO, label="atlas-drift")
    assert (kept["body"], kept["state"], kept["state_reason"]) == ("second body", "closed", "completed")
    assert [c["body"] for c in github_emulator.comments(REPO, issue.number)] == ["still drifted"]
    client.close()
