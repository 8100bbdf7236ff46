"""Saved plans: one `PlanRecord` per project of a pull request, and the store of their files.

After a plan, the plan file goes to the artifact store (`ArtifactStore`, which every atlas process
reaches, so apply runs on any worker) and its record to the state store (`PlanStore`). The record
holds what apply needs to trust the file (the head sha it was made at, the terraform version, the
file's sha256 and size) and what the pull request shows of it (its summary, its changes). Apply,
on whichever worker takes the job, checks the record against the pull request's current head
(`PlanRecord.check`) and fetches the file into a fresh working copy; `fetch` writes nothing at its
destination unless the bytes match the checksum. `forget_plans` forgets a plan everywhere.

Every artifact store names a project's plan `artifact_name(project)`, under `OWNER/NAME/PR/`.
"""

from __future__ import annotations

import hashlib
import re
import string
from datetime import datetime
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from atlas.models import PlanSummary, Project, VCSHost, split_repo_key, utcnow

_REPO = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+){1,20}")
"""`OWNER/NAME` on GitHub, `group[/subgroup…]/project` on GitLab."""
# Every byte outside these is percent-encoded in a plan's name, which makes the name unique to its
# project, free of path separators, and different from any name `CommandContext.planfile` gives
# another project (that one replaces unsafe runs with `_`, which is encoded here).
_NAME_SAFE = frozenset(string.ascii_letters + string.digits + ".")


class ArtifactError(Exception):
    """A plan cannot be stored or fetched, or is not the plan apply expects; the message says which and why."""


class PlanRecord(BaseModel):
    """A saved plan of one project of a pull request: what apply needs to trust its file, and what it showed."""

    model_config = ConfigDict(frozen=True)

    repo: str
    pull_number: int
    project: Project
    head_sha: str
    job_id: str
    summary: PlanSummary = Field(default_factory=PlanSummary)
    terraform_version: str = ""
    sha256: str = ""
    """The plan file's checksum; empty for a plan made after merge and applied at once, never stored."""
    size: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    changes: str = ""
    """The planned changes as plan_compare.dump_changes wrote them, to compare with the plan after merge."""
    after_merge: bool = False
    """Made at the merge commit after the pull request merged (apply-on-merge), not on the pull request."""

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
        summary: PlanSummary | None = None,
        changes: str = "",
    ) -> PlanRecord:
        """The record of `planfile`, with its checksum and size read from the file."""
        sha256, size = file_digest(planfile)
        return cls(repo=repo, pull_number=pull_number, project=project, head_sha=head_sha,
                   terraform_version=terraform_version, sha256=sha256, size=size, job_id=job_id,
                   summary=summary or PlanSummary(), changes=changes)

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


class PlanStore(Protocol):
    """The records of the saved plans, in the state store."""

    def save_plan(self, plan: PlanRecord) -> None:
        """Store the latest plan of a project of a pull request, replacing an earlier one."""
        ...

    def plans(self, repo: str, number: int) -> list[PlanRecord]: ...

    def delete_plans(self, repo: str, number: int, project: Project | None = None) -> list[PlanRecord]:
        """Forget the pull request's plans (or one project's); returns what was removed."""
        ...


class ArtifactStore(Protocol):
    """Where saved plans live between plan and apply."""

    @property
    def location(self) -> str:
        """Where the plans are, for logs (never with a password)."""
        ...

    def put(self, meta: PlanRecord, planfile: Path) -> None:
        """Store `planfile` as `meta` describes it, replacing the project's earlier plan.

        Raises ArtifactError when the file no longer matches `meta`, or is too large for the store.
        """
        ...

    def get(self, repo: str, pull_number: int, project: Project) -> PlanRecord | None:
        """The metadata of the project's saved plan, or None when there is none."""
        ...

    def fetch(self, meta: PlanRecord, dest: Path) -> Path:
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
    """`OWNER/NAME/PR` for a repository key (`Repo.key`), after checking it (it becomes a path and a key).

    A GitLab project's plans sit under `.gitlab/GROUP/REST/PR`, apart from GitHub's, with the path's
    `subgroup/project` rest as one segment (`subgroup%2Fproject`), so the plans of `group/app` never
    sit inside those of `group/app/…`'s merge requests.
    """
    path, vcs = split_repo_key(repo)
    if not _REPO.fullmatch(path) or any(part in (".", "..") for part in path.split("/")):
        raise ValueError(f"not a repository name of the form owner/name: {repo!r}")
    owner, _, name = path.partition("/")
    where = f"{owner}/{name.replace('/', '%2F')}/{pull_number}"
    return f".gitlab/{where}" if vcs is VCSHost.GITLAB else where


def forget_plans(
    plans: PlanStore, artifacts: ArtifactStore, repo: str, number: int, project: Project | None = None
) -> list[PlanRecord]:
    """Forget a pull request's saved plans (or one project's) everywhere: records first, then files.

    Records first: a plan without its record is never offered to apply.
    """
    removed = plans.delete_plans(repo, number, project)
    artifacts.delete(repo, number, project)
    return removed
