"""The plan artifact stores: what one worker puts, another fetches, byte for byte or not at all.

Each contract test runs against every store, on real backends: files, a real redis-server
(tests/redis_plugin.py) and moto's S3 server over HTTP (tests/s3_plugin.py).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from pydantic import SecretStr
from redis import Redis

from atlas.bootstrap import open_backends
from atlas.config.settings import Settings
from atlas.models import Project
from atlas.stores.plans import ArtifactError, ArtifactStore, PlanRecord, artifact_name, forget_plans
from atlas.stores.redis.artifacts import PLAN_TTL_SECONDS, RedisArtifactStore
from atlas.stores.redis.backend import RedisBackend, connect
from atlas.stores.s3 import S3ArtifactStore
from atlas.stores.sqlite.artifacts import LocalArtifactStore
from atlas.stores.sqlite.state import SQLiteStateStore

if TYPE_CHECKING:
    # Not imported at run time: pytest must import the plugin first, to rewrite its asserts.
    from tests.s3_plugin import S3Bucket


REPO = "acme/infra"
HEAD = "a" * 40
APP = Project(dir="app")
NETWORK = Project(dir="modules/network", workspace="prod-eu")


@dataclass
class StoreUnderTest:
    """A store, and a way to change what it holds behind its back, as a broken disk or an intruder would."""

    store: ArtifactStore
    overwrite_plan: Callable[[PlanRecord, bytes], object]
    remove_plan: Callable[[PlanRecord], object]


def local_store(tmp_path: Path) -> StoreUnderTest:
    root = tmp_path / "data" / "plans"

    def path(meta: PlanRecord) -> Path:
        return root / meta.repo / str(meta.pull_number) / artifact_name(meta.project)

    return StoreUnderTest(LocalArtifactStore(root), lambda meta, data: path(meta).write_bytes(data),
                          lambda meta: path(meta).unlink())


def redis_store(redis_url: str) -> StoreUnderTest:
    backend = RedisBackend(redis_url)
    client = backend.binary

    def key(meta: PlanRecord) -> str:
        return f"atlas:plan-file:{meta.repo}#{meta.pull_number}:{artifact_name(meta.project)}"

    return StoreUnderTest(RedisArtifactStore(backend), lambda meta, data: client.set(key(meta), data),
                          lambda meta: client.delete(key(meta)))


def s3_store(bucket: S3Bucket) -> StoreUnderTest:
    def key(meta: PlanRecord) -> str:
        return f"team-a/plans/{meta.repo}/{meta.pull_number}/{artifact_name(meta.project)}"

    return StoreUnderTest(
        S3ArtifactStore(bucket.name, "team-a", endpoint_url=bucket.endpoint, region="us-east-1"),
        lambda meta, data: bucket.client.put_object(Bucket=bucket.name, Key=key(meta), Body=data),
        lambda meta: bucket.client.delete_object(Bucket=bucket.name, Key=key(meta)),
    )


@pytest.fixture(params=["local", "redis", "s3"])
def under_test(request: pytest.FixtureRequest, tmp_path: Path) -> StoreUnderTest:
    if request.param == "local":
        return local_store(tmp_path)
    if request.param == "redis":
        return redis_store(request.getfixturevalue("redis_url"))
    return s3_store(request.getfixturevalue("s3_bucket"))


def write_plan(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def describe(planfile: Path, *, project: Project = APP, pull_number: int = 7, head_sha: str = HEAD,
             job_id: str = "job-1") -> PlanRecord:
    return PlanRecord.for_file(planfile, repo=REPO, pull_number=pull_number, project=project, head_sha=head_sha,
                                 terraform_version="1.11.4", job_id=job_id)


def saved(store: ArtifactStore, tmp_path: Path, data: bytes, *, project: Project = APP, pull_number: int = 7,
          head_sha: str = HEAD, job_id: str = "job-1") -> PlanRecord:
    """Put a plan file of `data` that a worker made in its own working directory."""
    planfile = write_plan(tmp_path / "planning-worker" / f"{project.dir.replace('/', '_')}.tfplan", data)
    meta = describe(planfile, project=project, pull_number=pull_number, head_sha=head_sha, job_id=job_id)
    store.put(meta, planfile)
    return meta


def no_partial_files(directory: Path) -> list[Path]:
    return [path for path in directory.rglob("*") if path.name.endswith(".part")]


# --- every store --------------------------------------------------------------------------------------


def test_a_plan_put_by_one_worker_is_fetched_into_another_workers_fresh_directory(
    under_test: StoreUnderTest, tmp_path: Path
) -> None:
    data = b"plan bytes \x00\xff of app"
    meta = saved(under_test.store, tmp_path, data)

    found = under_test.store.get(REPO, 7, APP)
    assert found == meta
    assert found.sha256 == hashlib.sha256(data).hexdigest() and found.size == len(data)
    assert (found.head_sha, found.terraform_version, found.job_id) == (HEAD, "1.11.4", "job-1")

    fresh = tmp_path / "applying-worker" / "checkout"
    fresh.mkdir(parents=True)
    fetched = under_test.store.fetch(found, fresh)
    assert fetched == fresh / "app--default.tfplan"
    assert fetched.read_bytes() == data

    named = under_test.store.fetch(found, tmp_path / "elsewhere" / "deep" / "plan.tfplan")
    assert named == tmp_path / "elsewhere" / "deep" / "plan.tfplan"
    assert named.read_bytes() == data


def test_a_store_has_no_plan_for_a_project_never_planned(under_test: StoreUnderTest, tmp_path: Path) -> None:
    saved(under_test.store, tmp_path, b"plan of app")

    assert under_test.store.get(REPO, 7, NETWORK) is None
    assert under_test.store.get(REPO, 8, APP) is None
    assert under_test.store.get("acme/other", 7, APP) is None


def test_a_new_plan_replaces_the_projects_earlier_one(under_test: StoreUnderTest, tmp_path: Path) -> None:
    first = saved(under_test.store, tmp_path, b"first plan", job_id="job-1")
    second = saved(under_test.store, tmp_path, b"second plan", head_sha="b" * 40, job_id="job-2")

    assert under_test.store.get(REPO, 7, APP) == second
    assert under_test.store.fetch(second, tmp_path / "out.tfplan").read_bytes() == b"second plan"
    # Whoever still holds the first plan's metadata gets an error, not the second plan's bytes.
    with pytest.raises(ArtifactError, match="does not match its checksum"):
        under_test.store.fetch(first, tmp_path / "stale.tfplan")


def test_tampered_plan_bytes_are_refused_and_nothing_is_written(under_test: StoreUnderTest, tmp_path: Path) -> None:
    meta = saved(under_test.store, tmp_path, b"the reviewed plan")
    under_test.overwrite_plan(meta, b"a different plan")
    fresh = tmp_path / "applying-worker"
    fresh.mkdir()

    with pytest.raises(ArtifactError) as raised:
        under_test.store.fetch(meta, fresh)

    message = str(raised.value)
    assert "the plan of dir `app` workspace `default` (acme/infra#7)" in message
    assert "does not match its checksum" in message
    assert hashlib.sha256(b"a different plan").hexdigest() in message
    assert list(fresh.iterdir()) == []


def test_a_tampered_plan_does_not_replace_a_file_already_at_the_destination(
    under_test: StoreUnderTest, tmp_path: Path
) -> None:
    meta = saved(under_test.store, tmp_path, b"the reviewed plan")
    under_test.overwrite_plan(meta, b"x" * meta.size)  # same size, other bytes
    existing = write_plan(tmp_path / "apply" / "plan.tfplan", b"what was there")

    with pytest.raises(ArtifactError, match="does not match its checksum"):
        under_test.store.fetch(meta, existing)

    assert existing.read_bytes() == b"what was there"
    assert no_partial_files(tmp_path / "apply") == []


def test_fetching_a_plan_whose_bytes_are_gone_says_it_is_missing(under_test: StoreUnderTest, tmp_path: Path) -> None:
    meta = saved(under_test.store, tmp_path, b"plan")
    under_test.remove_plan(meta)

    with pytest.raises(ArtifactError, match=r"the plan of dir `app` workspace `default` \(acme/infra#7\) is missing"):
        under_test.store.fetch(meta, tmp_path / "out.tfplan")
    assert not (tmp_path / "out.tfplan").exists()


def test_a_plan_file_changed_since_it_was_described_is_not_stored(under_test: StoreUnderTest, tmp_path: Path) -> None:
    planfile = write_plan(tmp_path / "worker" / "app.tfplan", b"plan as described")
    meta = describe(planfile)
    planfile.write_bytes(b"plan rewritten afterwards")

    with pytest.raises(ArtifactError, match="changed after it was described"):
        under_test.store.put(meta, planfile)
    assert under_test.store.get(REPO, 7, APP) is None


def test_delete_forgets_one_project_or_a_whole_pull_request(under_test: StoreUnderTest, tmp_path: Path) -> None:
    app = saved(under_test.store, tmp_path, b"app plan")
    network = saved(under_test.store, tmp_path, b"network plan", project=NETWORK)
    # Pull request 70 shares pull request 7's prefix as text; deleting 7 must leave it alone.
    other = saved(under_test.store, tmp_path, b"plan of pull request 70", pull_number=70)

    under_test.store.delete(REPO, 7, NETWORK)
    assert under_test.store.get(REPO, 7, NETWORK) is None
    with pytest.raises(ArtifactError, match="missing"):
        under_test.store.fetch(network, tmp_path / "network.tfplan")
    assert under_test.store.get(REPO, 7, APP) == app

    under_test.store.delete(REPO, 7)
    assert under_test.store.get(REPO, 7, APP) is None
    with pytest.raises(ArtifactError, match="missing"):
        under_test.store.fetch(app, tmp_path / "app.tfplan")

    assert under_test.store.get(REPO, 70, APP) == other
    assert under_test.store.fetch(other, tmp_path / "other.tfplan").read_bytes() == b"plan of pull request 70"
    under_test.store.delete(REPO, 7)  # deleting what is gone is not an error


def test_forgetting_a_plan_removes_its_record_and_its_file_in_one_step(
    under_test: StoreUnderTest, tmp_path: Path
) -> None:
    records = SQLiteStateStore(tmp_path / "atlas.db")
    for project in (APP, NETWORK):
        plan = saved(under_test.store, tmp_path, f"plan of {project.dir}".encode(), project=project)
        records.save_plan(plan)

    assert [plan.project for plan in forget_plans(records, under_test.store, REPO, 7, APP)] == [APP]
    assert [plan.project for plan in records.plans(REPO, 7)] == [NETWORK]
    assert under_test.store.get(REPO, 7, APP) is None
    assert under_test.store.get(REPO, 7, NETWORK) is not None

    assert [plan.project for plan in forget_plans(records, under_test.store, REPO, 7)] == [NETWORK]
    assert records.plans(REPO, 7) == [] and under_test.store.get(REPO, 7, NETWORK) is None


def test_a_5_mb_plan_arrives_intact(under_test: StoreUnderTest, tmp_path: Path) -> None:
    data = os.urandom(5 * 1024 * 1024)
    meta = saved(under_test.store, tmp_path, data, project=NETWORK)

    fetched = under_test.store.fetch(meta, tmp_path / "fresh" / "network.tfplan")

    assert fetched.stat().st_size == len(data)
    assert hashlib.sha256(fetched.read_bytes()).hexdigest() == meta.sha256
    assert fetched.read_bytes() == data


# --- what apply checks before fetching ----------------------------------------------------------------


def test_a_plan_belongs_only_to_the_head_it_was_made_at(tmp_path: Path) -> None:
    meta = describe(write_plan(tmp_path / "p.tfplan", b"plan"))

    meta.check(head_sha=HEAD)
    meta.check(head_sha=HEAD, terraform_version="1.11.4")
    with pytest.raises(ArtifactError, match="was made at commit aaaaaaa, but the head is now bbbbbbb"):
        meta.check(head_sha="b" * 40)
    with pytest.raises(ArtifactError, match=r"made with terraform 1\.11\.4, but this apply would run .* 1\.10\.0"):
        meta.check(head_sha=HEAD, terraform_version="1.10.0")


def test_every_project_has_a_plan_name_of_its_own_without_path_separators() -> None:
    projects = [
        Project(dir="."), Project(dir="a/b"), Project(dir="a_b"), Project(dir="a-b"), Project(dir="a~b"),
        Project(dir="a--b", workspace="c"), Project(dir="a", workspace="b--c"), Project(dir="a", workspace="b-c"),
        Project(dir="ä"), Project(dir="..", workspace="x"),
    ]
    names = [artifact_name(project) for project in projects]

    assert len(set(names)) == len(names)
    assert all("/" not in name and name.endswith(".tfplan") for name in names)
    assert artifact_name(Project(dir="modules/network", workspace="prod-eu")) == "modules%2Fnetwork--prod%2Deu.tfplan"
    assert artifact_name(Project(dir=".")) == ".--default.tfplan"


# --- one store at a time ------------------------------------------------------------------------------


def test_local_store_accepts_its_own_file_as_the_plan_to_put(tmp_path: Path) -> None:
    """The server's plan file may already be where the local store keeps it (`<data-dir>/plans/...`)."""
    store = LocalArtifactStore(tmp_path / "plans")
    planfile = write_plan(tmp_path / "plans" / REPO / "7" / "app--default.tfplan", b"planned in place")
    meta = describe(planfile)

    store.put(meta, planfile)

    assert store.get(REPO, 7, APP) == meta
    assert planfile.read_bytes() == b"planned in place"
    assert store.fetch(meta, tmp_path / "out.tfplan").read_bytes() == b"planned in place"


def test_local_store_deletes_only_plans_and_what_they_leave_empty(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "plans")
    planfile = write_plan(tmp_path / "w" / "p.tfplan", b"plan")
    store.put(describe(planfile), planfile)
    unrelated = write_plan(tmp_path / "plans" / REPO / "7" / "app--default.show.json", b"{}")

    store.delete(REPO, 7)

    assert sorted(path.name for path in (tmp_path / "plans" / REPO / "7").iterdir()) == [unrelated.name]
    unrelated.unlink()
    store.delete(REPO, 7)
    assert list((tmp_path / "plans").iterdir()) == []


def test_a_repository_name_cannot_escape_the_store(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "plans")
    with pytest.raises(ValueError, match="owner/name"):
        store.get("../etc", 1, APP)
    with pytest.raises(ValueError, match="owner/name"):
        store.get("acme/..", 1, APP)


def test_redis_plans_expire_and_are_shared_by_every_connection(redis_url: str, tmp_path: Path) -> None:
    planner = RedisArtifactStore(RedisBackend(redis_url), ttl_seconds=3600)
    applier = RedisArtifactStore(RedisBackend(redis_url))
    meta = saved(planner, tmp_path, b"shared plan")

    fetched = applier.fetch(applier.get(REPO, 7, APP) or pytest.fail("no plan"), tmp_path / "fresh")
    assert fetched.read_bytes() == b"shared plan"

    raw = connect(redis_url, decode_responses=False)
    for key in (f"atlas:plan-file:{REPO}#7:app--default.tfplan", f"atlas:plan-artifacts:{REPO}#7"):
        assert 3500 < raw.ttl(key) <= 3600, key
    assert PLAN_TTL_SECONDS == 14 * 24 * 3600
    assert meta.size == len(b"shared plan")
    assert planner.location.startswith("Redis at redis://127.0.0.1:") and "@" not in planner.location


def test_redis_refuses_a_plan_larger_than_it_stores(redis_client: Redis, redis_url: str, tmp_path: Path) -> None:
    store = RedisArtifactStore(RedisBackend(redis_url), max_bytes=1024)
    planfile = write_plan(tmp_path / "big.tfplan", b"x" * 4096)

    with pytest.raises(ArtifactError, match=r"more than Redis stores in one value .*S3 bucket"):
        store.put(describe(planfile), planfile)
    assert redis_client.keys("*") == []


def test_s3_store_keeps_each_plan_with_its_metadata_beside_it(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    store = S3ArtifactStore(s3_bucket.name, "team-a/", endpoint_url=s3_bucket.endpoint)
    saved(store, tmp_path, b"plan", project=NETWORK)

    prefix = "team-a/plans/acme/infra/7/modules%2Fnetwork--prod%2Deu.tfplan"
    assert s3_bucket.keys() == [prefix, prefix + ".json"]
    head = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key=prefix)
    assert head["Metadata"]["sha256"] == hashlib.sha256(b"plan").hexdigest()
    assert store.location == f"s3://{s3_bucket.name}/team-a/plans at {s3_bucket.endpoint}"


def test_s3_store_names_the_bucket_it_cannot_use(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    store = S3ArtifactStore("no-such-bucket", endpoint_url=s3_bucket.endpoint)
    planfile = write_plan(tmp_path / "p.tfplan", b"plan")

    with pytest.raises(ArtifactError, match=r"could not store the plan of dir `app`.* in s3://no-such-bucket/plans"):
        store.put(describe(planfile), planfile)


def test_the_settings_choose_the_store(redis_url: str, s3_bucket: S3Bucket, tmp_path: Path) -> None:
    token, redis_at = SecretStr("x"), SecretStr(redis_url)
    local = open_backends(Settings(data_dir=tmp_path, gh_token=token)).artifacts
    assert isinstance(local, LocalArtifactStore) and local.root == tmp_path / "plans"

    redis = open_backends(Settings(data_dir=tmp_path, gh_token=token, redis_url=redis_at)).artifacts
    assert isinstance(redis, RedisArtifactStore)

    s3 = open_backends(Settings(data_dir=tmp_path, gh_token=token, redis_url=redis_at, plans_s3_bucket=s3_bucket.name,
                                plans_s3_endpoint=s3_bucket.endpoint, plans_s3_region="eu-west-1")).artifacts
    assert isinstance(s3, S3ArtifactStore) and s3.bucket == s3_bucket.name
    assert s3.client.meta.region_name == "eu-west-1", "requests are signed for the configured region"
