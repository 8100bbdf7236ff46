"""`--redis-key-prefix`: two atlas installations on one Redis, under different prefixes, see nothing of each other.

Each installation is built from its settings as a server builds itself (`atlas.bootstrap`: the
stores, the rq queue, the GitHub write budget), so every key atlas writes goes through the prefix it was given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr
from redis import Redis

from atlas.bootstrap import Backends, open_backends, rq_queue
from atlas.config.settings import Settings, load_settings
from atlas.github.ratelimit import SharedWriteBudget
from atlas.jobs.rq import RQQueue
from atlas.models import CommandName, DriftRecord, DriftStatus, Job, PlanSummary, Project, PullRequest, Repo
from atlas.stores.audit import AuditAction, AuditEntry
from atlas.stores.plans import PlanRecord

pytest_plugins = ["tests.redis_plugin"]

REPO = Repo(full_name="acme/infra", clone_url="http://git.invalid/acme/infra.git",
            html_url="http://git.invalid/acme/infra")
PULL = PullRequest(repo=REPO, number=7, head_sha="a" * 40, head_ref="change", base_ref="main", author="dev")
APP = Project(dir="app")
TOKEN = "ghp_one-token-for-both"


@dataclass
class Installation:
    ctx: Backends
    queue: RQQueue
    budget: SharedWriteBudget
    waits: list[float]


def install(redis_url: str, prefix: str, data_dir: Path) -> Installation:
    settings = Settings(data_dir=data_dir, gh_token=SecretStr(TOKEN), redis_url=SecretStr(redis_url),
                        redis_key_prefix=prefix)
    backends = open_backends(settings)
    assert backends.redis is not None and backends.redis.prefix == prefix
    waits: list[float] = []
    budget = SharedWriteBudget(backends.redis, TOKEN, limit=1, window=600, sleep=waits.append)
    return Installation(backends, rq_queue(backends), budget, waits)


def test_two_installations_on_one_redis_share_no_state_locks_plans_queue_or_budget(
    redis_url: str, redis_client: Redis, tmp_path: Path
) -> None:
    blue = install(redis_url, "blue:", tmp_path / "blue")
    green = install(redis_url, "green:", tmp_path / "green")

    # Blue takes on a delivery, a job, a lock, a plan, a drift check, an audit entry, a slot and its write budget.
    job = Job(command=CommandName.PLAN, pull=PULL)
    assert blue.ctx.state.claim_delivery("delivery-1", "pull_request")
    blue.queue.enqueue(job)
    blue.ctx.state.save_pull(PULL)
    assert blue.ctx.locks.acquire(PULL, [APP], "dev").complete
    planfile = tmp_path / "app.tfplan"
    planfile.write_bytes(b"plan bytes")
    plan = PlanRecord.for_file(planfile, repo=REPO.full_name, pull_number=7, project=APP, head_sha=PULL.head_sha,
                               terraform_version="1.11.4", job_id=job.id, summary=PlanSummary(add=1))
    blue.ctx.artifacts.put(plan, planfile)
    blue.ctx.state.save_plan(plan)
    blue.ctx.state.save_drift(DriftRecord(repo=REPO.full_name, project=APP, sha="b" * 40, status=DriftStatus.DRIFTED))
    blue.ctx.state.record_audit(AuditEntry(action=AuditAction.PLAN, repo=REPO.full_name, user="dev", outcome="ok"))
    assert blue.ctx.state.claim_slot("drift:acme/infra:slot", 60)
    assert blue.budget.acquire() == 0.0

    # Green, on the same Redis under another prefix, sees none of it.
    assert green.ctx.state.claim_delivery("delivery-1", "pull_request"), "green saw blue's delivery"
    assert green.ctx.state.get_job(job.id) is None and green.ctx.state.jobs() == []
    assert green.ctx.state.get_pull(REPO.full_name, 7) is None and green.ctx.state.known_repos() == []
    assert green.ctx.locks.all() == [] and green.ctx.locks.acquire(PULL, [APP], "dev").complete
    assert green.ctx.state.plans(REPO.full_name, 7) == []
    assert green.ctx.artifacts.get(REPO.full_name, 7, APP) is None
    assert green.ctx.state.drift_records() == [] and green.ctx.state.audit_entries() == []
    assert green.ctx.state.claim_slot("drift:acme/infra:slot", 60)
    assert green.queue.depth() == 0 and blue.queue.depth() == 1
    assert green.budget.acquire() == 0.0 and green.waits == [], "green waited for blue's writes"

    # Blue still has all of it: the budget it spent is its own.
    assert blue.ctx.state.get_job(job.id) is not None
    assert blue.ctx.artifacts.get(REPO.full_name, 7, APP) == plan
    assert [lock.pull_number for lock in blue.ctx.locks.all()] == [7]

    # Every key is below one of the prefixes; rq's own keys name the installation's queue.
    keys = sorted(str(key) for key in redis_client.scan_iter())
    assert keys and all(key.startswith(("blue:", "green:", "rq:")) for key in keys), keys
    assert {key for key in keys if key.startswith("rq:queue:")} == {"rq:queue:blue:jobs"}
    assert any(key.startswith("blue:github-writes:") for key in keys)
    assert any(key.startswith("green:github-writes:") for key in keys)


def test_the_prefix_is_a_flag_an_environment_variable_and_a_config_key(tmp_path: Path) -> None:
    config = tmp_path / "atlas.yaml"
    config.write_text("redis-key-prefix: \"from-file:\"\n")
    assert load_settings(env={}).redis_key_prefix == "atlas:"
    assert load_settings(config_file=config, env={}).redis_key_prefix == "from-file:"
    env = {"ATLAS_REDIS_KEY_PREFIX": "from-env:"}
    assert load_settings(config_file=config, env=env).redis_key_prefix == "from-env:"
    assert load_settings({"redis_key_prefix": "from-flag:"}, config_file=config, env=env).redis_key_prefix == (
        "from-flag:")
    # An empty value is no value, as for every setting: the keys never lose their prefix.
    assert load_settings(env={"ATLAS_REDIS_KEY_PREFIX": ""}).redis_key_prefix == "atlas:"
