"""Plan artifacts: saved plan files in a store every atlas process reaches, so apply runs on any worker.

After a plan, the plan file goes to the store with what apply needs to trust it (`PlanArtifact`:
the head sha it was made at, the project, the terraform version and the file's sha256). Apply, on
whichever worker takes the job, reads the metadata, checks it against the pull request's current
head (`PlanArtifact.check`) and fetches the file into a fresh working copy; `fetch` writes nothing
at its destination unless the bytes match the checksum.

Three stores, chosen by `artifact_store_from`:

- `LocalArtifactStore`: files under `<data-dir>/plans` (the embedded default, one process);
- `RedisArtifactStore`: with `--redis-url`, plan bytes in Redis strings that expire after 14 days;
- `S3ArtifactStore`: an S3 (or S3-compatible) bucket, for plans larger than Redis should hold.

Every store names a project's plan `artifact_name(project)`, under `OWNER/NAME/PR/`.

Over 500 lines on purpose: the protocol and its three stores (disk, Redis, S3) are read side by side,
so that what each keeps of a plan, and how it checks it, can be compared.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import string
import tempfile
import threading
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field
from redis import Redis
from redis.client import Pipeline

from atlas.models import Project, utcnow
from atlas.stores.redis_state import DEFAULT_PREFIX, connect, project_field, pull_key, transact, watch

PLAN_TTL_SECONDS = 14 * 24 * 3600
"""How long Redis keeps a plan that was neither applied nor deleted; apply after that needs a new plan."""

REDIS_MAX_VALUE_BYTES = 512 * 1024 * 1024
"""The largest string Redis stores (its default `proto-max-bulk-len`)."""

CHUNK_BYTES = 1024 * 1024
"""How much of a plan file is read or written at a time."""

S3_INSTALL_HINT = "pip install 'atlas[s3]' (or pip install boto3)"
"""What to install for the S3 plan store."""

_REPO = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
# Every byte outside these is percent-encoded in a plan's name, which makes the name unique to its
# project, free of path separators, and different from any name `CommandContext.planfile` gives
# another project (that one replaces unsafe runs with `_`, which is encoded here).
_NAME_SAFE = frozenset(string.ascii_letters + string.digits + ".")


class ArtifactError(Exception):
    """A plan cannot be stored or fetched, or is not the plan apply expects; the message says which and why."""


class PlanArtifact(BaseModel):
    """What apply needs to trust a saved plan file, stored beside it."""

    model_config = ConfigDict(frozen=True)

    repo: str
    pull_number: int
    project: Project
    head_sha: str
    terraform_version: str
    sha256: str
    size: int
    job_id: str
    created_at: datetime = Field(default_factory=utcnow)

    @classmethod
    def for_file(
        cls,
        planfile: Path,
        *,
        repo: str,
        pull_number: int,
        project: Project,
        head_sha: str,
        terraform_version: str,
        job_id: str,
    ) -> PlanArtifact:
        """The metadata of `planfile`, with its checksum and size read from the file."""
        sha256, size = file_digest(planfile)
        return cls(repo=repo, pull_number=pull_number, project=project, head_sha=head_sha,
                   terraform_version=terraform_version, sha256=sha256, size=size, job_id=job_id)

    @property
    def name(self) -> str:
        """The plan's file name in every store."""
        return artifact_name(self.project)

    @property
    def description(self) -> str:
        project = self.project
        return f"the plan of dir `{project.dir}` workspace `{project.workspace}` ({self.repo}#{self.pull_number})"

    def check(self, *, head_sha: str, terraform_version: str = "") -> None:
        """Raise ArtifactError unless the plan was made at `head_sha`, and with `terraform_version` when both are known.

        terraform refuses a plan made by another version too, but only after init; this says why, up front.
        """
        if self.head_sha != head_sha:
            raise ArtifactError(
                f"{self.description} was made at commit {self.head_sha[:7]}, but the head is now {head_sha[:7]}"
            )
        if terraform_version and self.terraform_version and terraform_version != self.terraform_version:
            raise ArtifactError(
                f"{self.description} was made with terraform {self.terraform_version}, but this apply would run "
                f"terraform {terraform_version}"
            )


class ArtifactStore(Protocol):
    """Where saved plans live between plan and apply."""

    @property
    def location(self) -> str:
        """Where the plans are, for logs (never with a password)."""
        ...

    def put(self, meta: PlanArtifact, planfile: Path) -> None:
        """Store `planfile` as `meta` describes it, replacing the project's earlier plan.

        Raises ArtifactError when the file no longer matches `meta`, or is too large for the store.
        """
        ...

    def get(self, repo: str, pull_number: int, project: Project) -> PlanArtifact | None:
        """The metadata of the project's saved plan, or None when there is none."""
        ...

    def fetch(self, meta: PlanArtifact, dest: Path) -> Path:
        """Write the plan `meta` describes to `dest` (a file, or an existing directory for it) and return its path.

        Raises ArtifactError when the plan is missing or its bytes do not match `meta.sha256`
        (tampered with, or replaced by a newer plan); then nothing is written.
        """
        ...

    def delete(self, repo: str, pull_number: int, project: Project | None = None) -> None:
        """Forget the project's plan, or every plan of the pull request."""
        ...


def artifact_name(project: Project) -> str:
    """`DIR--WORKSPACE.tfplan`, each part percent-encoded outside `A-Za-z0-9.` so that no two projects share a name."""
    return f"{_escape(project.dir)}--{_escape(project.workspace)}.tfplan"


def _escape(value: str) -> str:
    return "".join(char if char in _NAME_SAFE else "".join(f"%{byte:02X}" for byte in char.encode()) for char in value)


def file_digest(path: Path) -> tuple[str, int]:
    """The sha256 (hex) and size of the file at `path`."""
    with path.open("rb") as file:
        digest = hashlib.file_digest(file, "sha256")
        return digest.hexdigest(), file.tell()


def pull_dir(repo: str, pull_number: int) -> str:
    """`OWNER/NAME/PR`, after checking `repo` is a plain `owner/name` (it becomes a path and a key)."""
    if not _REPO.fullmatch(repo) or any(part in (".", "..") for part in repo.split("/")):
        raise ValueError(f"not a repository name of the form owner/name: {repo!r}")
    return f"{repo}/{pull_number}"


def _chunks(file: IO[bytes]) -> Iterator[bytes]:
    while chunk := file.read(CHUNK_BYTES):
        yield chunk


def _destination(meta: PlanArtifact, dest: Path) -> Path:
    return dest / meta.name if dest.is_dir() else dest


def _write_checked(chunks: Iterable[bytes], dest: Path, *, sha256: str, size: int, mismatch: str) -> Path:
    """Write `chunks` to `dest` only if they hash to `sha256`; otherwise raise ArtifactError(`mismatch` + why)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    written = 0
    # Written beside `dest` and renamed over it, so `dest` is never a partial or unverified plan.
    with tempfile.NamedTemporaryFile(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part", delete=False) as file:
        temporary = Path(file.name)
        try:
            for chunk in chunks:
                digest.update(chunk)
                written += len(chunk)
                file.write(chunk)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
    actual = digest.hexdigest()
    if actual != sha256 or written != size:
        temporary.unlink(missing_ok=True)
        raise ArtifactError(f"{mismatch}: expected sha256 {sha256} ({size} bytes), got {actual} ({written} bytes)")
    os.replace(temporary, dest)
    return dest


def _check_bytes(meta: PlanArtifact, data: bytes, mismatch: str) -> None:
    actual = hashlib.sha256(data).hexdigest()
    if actual != meta.sha256 or len(data) != meta.size:
        raise ArtifactError(
            f"{mismatch}: expected sha256 {meta.sha256} ({meta.size} bytes), got {actual} ({len(data)} bytes)"
        )


def _sidecar(planfile: Path) -> Path:
    return planfile.with_name(planfile.name + ".json")


def _changed(meta: PlanArtifact) -> str:
    return f"{meta.description} changed after it was described, so it was not stored"


def _tampered(meta: PlanArtifact) -> str:
    return (f"{meta.description} in the plan store does not match its checksum "
            "(tampered with, or replaced by a newer plan)")


def _missing(meta: PlanArtifact, store: str) -> ArtifactError:
    return ArtifactError(f"{meta.description} is missing from the plan store ({store}); plan again")


class LocalArtifactStore:
    """Plans as files under `root` (`<data-dir>/plans`), each with its metadata beside it as `NAME.json`.

    For one process and its threads: other hosts cannot see the files.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def location(self) -> str:
        return str(self.root)

    def _dir(self, repo: str, pull_number: int) -> Path:
        return self.root / pull_dir(repo, pull_number)

    def _path(self, repo: str, pull_number: int, project: Project) -> Path:
        return self._dir(repo, pull_number) / artifact_name(project)

    def put(self, meta: PlanArtifact, planfile: Path) -> None:
        path = self._path(meta.repo, meta.pull_number, meta.project)
        # `planfile` may be `path` itself (CommandContext.planfile names the same file for simple dirs);
        # copying through a temporary file handles that too.
        with planfile.open("rb") as source:
            _write_checked(_chunks(source), path, sha256=meta.sha256, size=meta.size, mismatch=_changed(meta))
        sidecar = _sidecar(path)
        temporary = sidecar.with_name(f".{sidecar.name}.{os.getpid()}.{threading.get_ident()}.part")
        temporary.write_text(meta.model_dump_json(), encoding="utf-8")
        os.replace(temporary, sidecar)

    def get(self, repo: str, pull_number: int, project: Project) -> PlanArtifact | None:
        try:
            return PlanArtifact.model_validate_json(_sidecar(self._path(repo, pull_number, project)).read_bytes())
        except FileNotFoundError:
            return None

    def fetch(self, meta: PlanArtifact, dest: Path) -> Path:
        path = self._path(meta.repo, meta.pull_number, meta.project)
        try:
            source = path.open("rb")
        except FileNotFoundError:
            raise _missing(meta, self.location) from None
        with source:
            return _write_checked(_chunks(source), _destination(meta, dest), sha256=meta.sha256, size=meta.size,
                                  mismatch=_tampered(meta))

    def delete(self, repo: str, pull_number: int, project: Project | None = None) -> None:
        directory = self._dir(repo, pull_number)
        names = [artifact_name(project)] if project is not None else [
            sidecar.name.removesuffix(".json") for sidecar in directory.glob("*.tfplan.json")]
        for name in names:
            # Metadata first: a plan without it is never offered to apply.
            (directory / f"{name}.json").unlink(missing_ok=True)
            (directory / name).unlink(missing_ok=True)
        if project is None:
            # Only what is left empty: the directory may hold other files of the pull request.
            for empty in (directory, directory.parent, directory.parent.parent):
                with contextlib.suppress(OSError):
                    empty.rmdir()


class RedisArtifactStore:
    """Plans in Redis, shared by every process that reaches it; each expires `ttl_seconds` after its plan.

    ```
    {prefix}plan-artifacts:{owner/name#number}        hash: ["dir","workspace"] -> PlanArtifact JSON
    {prefix}plan-file:{owner/name#number}:{NAME}      string: the plan file's bytes
    ```

    The client must return bytes (`connect(url, decode_responses=False)`), as plan files are binary.
    """

    def __init__(
        self,
        redis: Redis,
        prefix: str = DEFAULT_PREFIX,
        ttl_seconds: int = PLAN_TTL_SECONDS,
        *,
        max_bytes: int = REDIS_MAX_VALUE_BYTES,
    ) -> None:
        if redis.get_connection_kwargs().get("decode_responses"):
            raise ValueError("RedisArtifactStore needs a client that returns bytes: "
                             "connect(url, decode_responses=False)")
        self.redis = redis
        self.prefix = prefix
        self.ttl_seconds = ttl_seconds
        self.max_bytes = max_bytes

    @classmethod
    def from_url(
        cls, url: str, prefix: str = DEFAULT_PREFIX, ttl_seconds: int = PLAN_TTL_SECONDS
    ) -> RedisArtifactStore:
        """A store on its own bytes-returning connection to `url` (atlas's other clients decode replies)."""
        return cls(connect(url, decode_responses=False), prefix, ttl_seconds)

    @property
    def location(self) -> str:
        kwargs = self.redis.get_connection_kwargs()
        if "path" in kwargs:
            return f"Redis at unix://{kwargs['path']}"
        host, port, db = kwargs.get("host", "localhost"), kwargs.get("port", 6379), kwargs.get("db", 0)
        return f"Redis at redis://{host}:{port}/{db}"

    def _meta_key(self, repo: str, pull_number: int) -> str:
        return f"{self.prefix}plan-artifacts:{pull_key(repo, pull_number)}"

    def _file_key(self, repo: str, pull_number: int, project: Project) -> str:
        return f"{self.prefix}plan-file:{pull_key(repo, pull_number)}:{artifact_name(project)}"

    def put(self, meta: PlanArtifact, planfile: Path) -> None:
        size = planfile.stat().st_size
        if size > self.max_bytes:
            raise ArtifactError(
                f"{meta.description} is {size / 2**20:.0f} MiB, more than Redis stores in one value "
                f"({self.max_bytes / 2**20:.0f} MiB); keep plans in an S3 bucket instead"
            )
        data = planfile.read_bytes()
        _check_bytes(meta, data, _changed(meta))
        meta_key = self._meta_key(meta.repo, meta.pull_number)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self._file_key(meta.repo, meta.pull_number, meta.project), data, ex=self.ttl_seconds)
            pipe.hset(meta_key, project_field(meta.project), meta.model_dump_json())
            # The hash lives as long as its newest plan, so it always outlives every plan it lists.
            pipe.expire(meta_key, self.ttl_seconds)
            pipe.execute()

    def get(self, repo: str, pull_number: int, project: Project) -> PlanArtifact | None:
        body = self.redis.hget(self._meta_key(repo, pull_number), project_field(project))
        return PlanArtifact.model_validate_json(body) if body is not None else None

    def fetch(self, meta: PlanArtifact, dest: Path) -> Path:
        data = self.redis.get(self._file_key(meta.repo, meta.pull_number, meta.project))
        if data is None:
            raise _missing(meta, self.location)
        chunk = data if isinstance(data, bytes) else str(data).encode()
        return _write_checked([chunk], _destination(meta, dest), sha256=meta.sha256, size=meta.size,
                              mismatch=_tampered(meta))

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


class S3ArtifactStore:
    """Plans in an S3 or S3-compatible bucket, with metadata in a JSON object beside each plan.

    ```
    {prefix}plans/OWNER/NAME/PR/NAME.tfplan         the plan file
    {prefix}plans/OWNER/NAME/PR/NAME.tfplan.json    its PlanArtifact
    ```

    Credentials come from boto3's usual chain (AWS_* variables, a profile, an instance or pod role).
    Expiry is the bucket's business: add a lifecycle rule on `{prefix}plans/` if plans should expire.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
    ) -> None:
        try:
            import boto3  # type: ignore[import-untyped]
            from boto3.exceptions import Boto3Error  # type: ignore[import-untyped]
            from botocore.config import Config  # type: ignore[import-untyped]
            from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]
        except ImportError:
            raise ArtifactError(f"the S3 plan store needs boto3: {S3_INSTALL_HINT}") from None
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.endpoint_url = endpoint_url
        # upload_file wraps a ClientError in boto3's S3UploadFailedError.
        self._errors: tuple[type[Exception], ...] = (BotoCoreError, ClientError, Boto3Error)
        self._client_error: type[Exception] = ClientError
        # Checksums only where S3 requires them: S3-compatible stores often reject the newer default
        # ones, and every plan's sha256 is checked on fetch anyway.
        config = Config(request_checksum_calculation="when_required", response_checksum_validation="when_required",
                        retries={"max_attempts": 5, "mode": "standard"})
        self.client: Any = boto3.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)

    @property
    def location(self) -> str:
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return f"s3://{self.bucket}/{self.prefix}plans{where}"

    def _dir(self, repo: str, pull_number: int) -> str:
        return f"{self.prefix}plans/{pull_dir(repo, pull_number)}/"

    def _key(self, repo: str, pull_number: int, project: Project) -> str:
        return self._dir(repo, pull_number) + artifact_name(project)

    def _failure(self, what: str, error: Exception) -> ArtifactError:
        return ArtifactError(f"could not {what} in {self.location}: {error}")

    def _is_missing(self, error: Exception) -> bool:
        if not isinstance(error, self._client_error):
            return False
        code = str(getattr(error, "response", {}).get("Error", {}).get("Code", ""))
        return code in ("404", "NoSuchKey", "NotFound")

    def put(self, meta: PlanArtifact, planfile: Path) -> None:
        sha256, size = file_digest(planfile)
        if (sha256, size) != (meta.sha256, meta.size):
            raise ArtifactError(f"{_changed(meta)}: expected sha256 {meta.sha256} ({meta.size} bytes), "
                                f"got {sha256} ({size} bytes)")
        key = self._key(meta.repo, meta.pull_number, meta.project)
        try:
            # The plan first, then the metadata that offers it to apply.
            self.client.upload_file(str(planfile), self.bucket, key, ExtraArgs={"Metadata": {"sha256": meta.sha256}})
            self.client.put_object(Bucket=self.bucket, Key=key + ".json", Body=meta.model_dump_json().encode(),
                                   ContentType="application/json")
        except self._errors as error:
            raise self._failure(f"store {meta.description}", error) from None

    def get(self, repo: str, pull_number: int, project: Project) -> PlanArtifact | None:
        key = self._key(repo, pull_number, project) + ".json"
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except self._errors as error:
            if self._is_missing(error):
                return None
            raise self._failure(f"read {key}", error) from None
        return PlanArtifact.model_validate_json(body)

    def fetch(self, meta: PlanArtifact, dest: Path) -> Path:
        key = self._key(meta.repo, meta.pull_number, meta.project)
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            return _write_checked(body.iter_chunks(CHUNK_BYTES), _destination(meta, dest), sha256=meta.sha256,
                                  size=meta.size, mismatch=_tampered(meta))
        except self._errors as error:
            if self._is_missing(error):
                raise _missing(meta, self.location) from None
            raise self._failure(f"fetch {meta.description}", error) from None

    def delete(self, repo: str, pull_number: int, project: Project | None = None) -> None:
        try:
            if project is not None:
                key = self._key(repo, pull_number, project)
                self._delete_keys([key + ".json", key])
                return
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._dir(repo, pull_number))
            keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
            # Metadata first, as for one project.
            self._delete_keys(sorted(keys, key=lambda key: not key.endswith(".json")))
        except self._errors as error:
            raise self._failure(f"delete the plans of {repo}#{pull_number}", error) from None

    def _delete_keys(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            batch = [{"Key": key} for key in keys[start:start + 1000]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})


def artifact_store_from(
    *,
    redis_url: str | None,
    s3_bucket: str | None,
    s3_endpoint: str | None,
    data_dir: Path,
    s3_prefix: str = "",
    s3_region: str | None = None,
    redis_prefix: str = DEFAULT_PREFIX,
) -> ArtifactStore:
    """The plan store the settings ask for: an S3 bucket when one is named, else Redis when set, else local files."""
    if s3_bucket:
        return S3ArtifactStore(s3_bucket, s3_prefix, endpoint_url=s3_endpoint or None, region=s3_region)
    if redis_url:
        return RedisArtifactStore.from_url(redis_url, redis_prefix)
    return LocalArtifactStore(data_dir / "plans")

