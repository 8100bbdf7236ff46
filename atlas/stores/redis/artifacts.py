"""Plans in Redis: with `--redis-url` and no bucket, every process that reaches the Redis reaches the plans."""

from __future__ import annotations

import json
from pathlib import Path

from redis.client import Pipeline

from atlas.models import Project
from atlas.stores import plan_files
from atlas.stores.plans import ArtifactError, PlanRecord, artifact_name
from atlas.stores.redis.backend import RedisBackend, project_field, pull_key, transact, watch

PLAN_TTL_SECONDS = 14 * 24 * 3600
"""How long Redis keeps a plan that was neither applied nor deleted; apply after that needs a new plan."""

REDIS_MAX_VALUE_BYTES = 512 * 1024 * 1024
"""The largest string Redis stores (its default `proto-max-bulk-len`)."""


class RedisArtifactStore:
    """Plans in Redis, shared by every process that reaches it; each expires `ttl_seconds` after its plan.

    ```
    {prefix}plan-artifacts:{owner/name#number}        hash: ["dir","workspace"] -> PlanRecord JSON
    {prefix}plan-file:{owner/name#number}:{NAME}      string: the plan file's bytes
    ```

    Plan files are binary: the store uses the backend's `binary` client.
    """

    def __init__(
        self, backend: RedisBackend, ttl_seconds: int = PLAN_TTL_SECONDS, *, max_bytes: int = REDIS_MAX_VALUE_BYTES
    ) -> None:
        self.backend = backend
        self.redis = backend.binary
        self.ttl_seconds = ttl_seconds
        self.max_bytes = max_bytes

    @property
    def location(self) -> str:
        return f"Redis at {self.backend.location}"

    def _meta_key(self, repo: str, pull_number: int) -> str:
        return self.backend.key("plan-artifacts", pull_key(repo, pull_number))

    def _file_key(self, repo: str, pull_number: int, project: Project) -> str:
        return self.backend.key("plan-file", pull_key(repo, pull_number), artifact_name(project))

    def put(self, meta: PlanRecord, planfile: Path) -> None:
        size = planfile.stat().st_size
        if size > self.max_bytes:
            raise ArtifactError(
                f"{meta.description} is {size / 2**20:.0f} MiB, more than Redis stores in one value "
                f"({self.max_bytes / 2**20:.0f} MiB); keep plans in an S3 bucket instead"
            )
        data = planfile.read_bytes()
        plan_files.check_bytes(meta, data, plan_files.changed(meta))
        meta_key = self._meta_key(meta.repo, meta.pull_number)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self._file_key(meta.repo, meta.pull_number, meta.project), data, ex=self.ttl_seconds)
            pipe.hset(meta_key, project_field(meta.project), meta.model_dump_json())
            # The hash lives as long as its newest plan, so it always outlives every plan it lists.
            pipe.expire(meta_key, self.ttl_seconds)
            pipe.execute()

    def get(self, repo: str, pull_number: int, project: Project) -> PlanRecord | None:
        body = self.redis.hget(self._meta_key(repo, pull_number), project_field(project))
        return PlanRecord.model_validate_json(body) if body is not None else None

    def fetch(self, meta: PlanRecord, dest: Path) -> Path:
        data = self.redis.get(self._file_key(meta.repo, meta.pull_number, meta.project))
        if data is None:
            raise plan_files.missing(meta, self.location)
        chunk = data if isinstance(data, bytes) else str(data).encode()
        return plan_files.write_checked([chunk], plan_files.destination(meta, dest), sha256=meta.sha256, size=meta.size,
                              mismatch=plan_files.tampered(meta))

    def delete(self, repo: str, pull_number: int, project: Project | None = None) -> None:
        meta_key = self._meta_key(repo, pull_number)
        if project is not None:
            with self.redis.pipeline(transaction=True) as pipe:
                pipe.hdel(meta_key, project_field(project))
                pipe.delete(self._file_key(repo, pull_number, project))
                pipe.execute()
            return

        def step(pipe: Pipeline) -> None:
            watch(pipe, meta_key)
            fields = [json.loads(field) for field in pipe.hkeys(meta_key)]
            listed = [Project(dir=directory, workspace=workspace) for directory, workspace in fields]
            pipe.multi()
            pipe.delete(meta_key, *(self._file_key(repo, pull_number, planned) for planned in listed))

        transact(self.redis, step)
