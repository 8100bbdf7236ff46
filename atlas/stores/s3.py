"""Plans in an S3 (or S3-compatible) bucket, for plans larger than Redis should hold."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from atlas.models import Project
from atlas.stores import plan_files
from atlas.stores.plans import ArtifactError, PlanRecord, artifact_name, file_digest, pull_dir

S3_INSTALL_HINT = "pip install 'atlas[s3]' (or pip install boto3)"
"""What to install for the S3 plan store."""


class S3ArtifactStore:
    """Plans in an S3 or S3-compatible bucket, with metadata in a JSON object beside each plan.

    ```
    {prefix}plans/OWNER/NAME/PR/NAME.tfplan         the plan file
    {prefix}plans/OWNER/NAME/PR/NAME.tfplan.json    its PlanRecord
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

    def put(self, meta: PlanRecord, planfile: Path) -> None:
        sha256, size = file_digest(planfile)
        if (sha256, size) != (meta.sha256, meta.size):
            raise ArtifactError(f"{plan_files.changed(meta)}: expected sha256 {meta.sha256} ({meta.size} bytes), "
                                f"got {sha256} ({size} bytes)")
        key = self._key(meta.repo, meta.pull_number, meta.project)
        try:
            # The plan first, then the metadata that offers it to apply.
            self.client.upload_file(str(planfile), self.bucket, key, ExtraArgs={"Metadata": {"sha256": meta.sha256}})
            self.client.put_object(Bucket=self.bucket, Key=key + ".json", Body=meta.model_dump_json().encode(),
                                   ContentType="application/json")
        except self._errors as error:
            raise self._failure(f"store {meta.description}", error) from None

    def get(self, repo: str, pull_number: int, project: Project) -> PlanRecord | None:
        key = self._key(repo, pull_number, project) + ".json"
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except self._errors as error:
            if self._is_missing(error):
                return None
            raise self._failure(f"read {key}", error) from None
        return PlanRecord.model_validate_json(body)

    def fetch(self, meta: PlanRecord, dest: Path) -> Path:
        key = self._key(meta.repo, meta.pull_number, meta.project)
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            return plan_files.write_checked(body.iter_chunks(plan_files.CHUNK_BYTES),
                                            plan_files.destination(meta, dest), sha256=meta.sha256, size=meta.size,
                                            mismatch=plan_files.tampered(meta))
        except self._errors as error:
            if self._is_missing(error):
                raise plan_files.missing(meta, self.location) from None
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
