"""The domain's nouns: repositories, pull requests, projects, jobs and their results.

Every model here is plain data that can be stored as JSON (SQLite today, Redis and rq later), so
nothing in it holds a client, a path to a secret or an open file.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex[:16]


class VCSHost(StrEnum):
    """Which code host a repository lives on, and so which client and credentials serve it."""

    GITHUB = "github"
    GITLAB = "gitlab"

    @property
    def display_name(self) -> str:
        return "GitLab" if self is VCSHost.GITLAB else "GitHub"


GITLAB_KEY_PREFIX = "gitlab:"
"""What a GitLab project's key starts with, so that it never equals a GitHub repository's `OWNER/NAME`."""


def repo_key(full_name: str, vcs: VCSHost = VCSHost.GITHUB) -> str:
    """How stores, lock ids, plan files and queues name a repository (`Repo.key`).

    A GitHub repository is `OWNER/NAME`, as atlas has always named it, so existing data dirs and Redis
    databases keep their records; a GitLab project is `gitlab:GROUP/…/PROJECT`, so that one atlas
    serving both never lets a GitHub repository and a GitLab project of the same path share a lock,
    a plan or a record. One atlas serves one GitLab, so the host needs no place in the key.
    """
    return f"{GITLAB_KEY_PREFIX}{full_name}" if vcs is VCSHost.GITLAB else full_name


def split_repo_key(key: str) -> tuple[str, VCSHost]:
    """The repository path and host a `repo_key` names."""
    if key.startswith(GITLAB_KEY_PREFIX):
        return key[len(GITLAB_KEY_PREFIX):], VCSHost.GITLAB
    return key, VCSHost.GITHUB


class Repo(BaseModel):
    """A repository as the webhook payload names it.

    `full_name` is `OWNER/NAME` on GitHub and the whole `group/subgroup/project` path on GitLab.
    """

    model_config = ConfigDict(frozen=True)

    full_name: str
    clone_url: str
    html_url: str
    default_branch: str = "main"
    private: bool = False
    vcs: VCSHost = VCSHost.GITHUB

    @property
    def owner(self) -> str:
        return self.full_name.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.full_name.split("/", 1)[1]

    @property
    def host(self) -> str:
        """The VCS host the repository lives on (`github.com`, a GHES host, or a test host)."""
        try:
            return urlparse(self.html_url).hostname or ""
        except ValueError:  # not a URL after all
            return ""

    @property
    def key(self) -> str:
        """The repository's name in every store and lock id (`repo_key`): unique across hosts."""
        return repo_key(self.full_name, self.vcs)

    @property
    def allowlist_id(self) -> str:
        """`HOST/OWNER/NAME`, the string `--repo-allowlist` globs are matched against."""
        return f"{self.host}/{self.full_name}"


class PullRequest(BaseModel):
    """The state of a pull request at the moment an event was received."""

    model_config = ConfigDict(frozen=True)

    repo: Repo
    number: int
    head_sha: str
    head_ref: str
    base_ref: str
    base_sha: str = ""
    author: str
    html_url: str = ""
    title: str = ""
    is_draft: bool = False
    is_fork: bool = False
    head_clone_url: str = ""
    is_open: bool = True
    merged: bool = False
    merge_commit_sha: str = ""
    merged_by: str = ""
    labels: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """Identifies the pull request across repositories and hosts: `REPO_KEY#number` (`Repo.key`)."""
        return f"{self.repo.key}#{self.number}"


class Project(BaseModel):
    """A Terraform root module in one workspace: the unit atlas plans, applies and locks."""

    model_config = ConfigDict(frozen=True)

    dir: str
    workspace: str = "default"
    name: str | None = None

    @property
    def key(self) -> str:
        return f"{self.dir}:{self.workspace}"

    @property
    def label(self) -> str:
        """How comments and statuses name the project."""
        if self.name:
            return self.name
        return f"{self.dir}/{self.workspace}" if self.workspace != "default" else self.dir


class Distribution(StrEnum):
    """Which terraform a project runs: HashiCorp's, or OpenTofu's `tofu`."""

    TERRAFORM = "terraform"
    OPENTOFU = "opentofu"

    @property
    def display_name(self) -> str:
        """As comments name it."""
        return "OpenTofu" if self is Distribution.OPENTOFU else "Terraform"


class CommandName(StrEnum):
    """The commands atlas runs; `autoplan` is a plan that an event triggered, not a comment."""

    AUTOPLAN = "autoplan"
    PLAN = "plan"
    APPLY = "apply"
    UNLOCK = "unlock"
    CANCEL = "cancel"
    IMPORT = "import"
    STATE_RM = "state_rm"
    APPROVE_POLICIES = "approve_policies"
    HELP = "help"
    VERSION = "version"
    CLEANUP = "cleanup"
    REFUSE = "refuse"
    """Answer a comment atlas will not run (bad syntax, disallowed command) with the reason."""
    DRIFT = "drift"
    """A scheduled drift check of a repository's default branch (`Job.drift`); no pull request asks for it."""

    @property
    def as_atlantis_names_it(self) -> str:
        """`COMMAND_NAME` of hooks and run steps: Atlantis calls an autoplan `plan` (`commands: plan` covers both)."""
        return "plan" if self is CommandName.AUTOPLAN else self.value


class CommandArgs(BaseModel):
    """What a comment asked for beyond the command itself."""

    dir: str | None = None
    workspace: str | None = None
    project: str | None = None
    verbose: bool = False
    clear_policy_approval: bool = False
    """`approve_policies --clear-policy-approval`: withdraw the commenter's approvals."""
    extra_args: tuple[str, ...] = ()
    positional: tuple[str, ...] = ()
    # Set when atlas plans by itself after a lock this pull request waited for was released.
    after_lock_release: bool = False

    @property
    def targets_one(self) -> bool:
        return bool(self.dir or self.project or self.workspace)


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"

    @property
    def finished(self) -> bool:
        return self not in (JobStatus.QUEUED, JobStatus.RUNNING)


class ApiPath(BaseModel):
    """One directory and workspace an API request names."""

    model_config = ConfigDict(frozen=True)

    dir: str
    workspace: str = "default"


class ApiRun(BaseModel):
    """What `POST /api/plan|apply` asked for, carried by its job: the ref, and projects by path or by name."""

    model_config = ConfigDict(frozen=True)

    ref: str
    paths: tuple[ApiPath, ...] = ()
    projects: tuple[str, ...] = ()


class DriftRun(BaseModel):
    """What a queued drift check carries: which schedule of its repository fired, and when."""

    model_config = ConfigDict(frozen=True)

    schedule: str
    fired_at: datetime


class Job(BaseModel):
    """One command for one pull request, as it sits in the queue."""

    id: str = Field(default_factory=new_id)
    command: CommandName
    pull: PullRequest
    delivery_id: str | None = None
    requested_by: str | None = None
    # Set for comment commands; the pull request is then refreshed from the API before running.
    comment_id: int | None = None
    args: CommandArgs = Field(default_factory=CommandArgs)
    # For REFUSE: the Markdown to answer with. For CLEANUP: whether the pull request was merged.
    message: str = ""
    merged: bool = False
    # The GitHub App installation the delivery named (App mode), whose token the job acts with.
    installation_id: int | None = None
    # Asked for from GitHub's checks UI (Re-run, the Apply button): authorised as a comment is.
    from_check: bool = False
    # Set for API runs (`pull.number` 0 when the request named no pull request): they answer the
    # caller with a result instead of commenting.
    api: ApiRun | None = None
    # Set for drift checks (`pull` is then the default branch as pull request 0).
    drift: DriftRun | None = None
    created_at: datetime = Field(default_factory=utcnow)

    @property
    def serial_key(self) -> str:
        """Jobs sharing this key run one after another.

        `cancel` must not wait behind the job it cancels, so it runs beside the pull request's queue. The
        drift checks of a repository share one key, so two checks of one project never run at once.
        """
        if self.drift is not None:
            return f"drift:{self.pull.repo.key}"
        if self.command is CommandName.CANCEL:
            return f"{self.pull.key}:cancel"
        return self.pull.key


class ResourceChange(BaseModel):
    """One resource's planned change, from `terraform show -json`."""

    model_config = ConfigDict(frozen=True)

    address: str
    actions: tuple[str, ...]


class PlanSummary(BaseModel):
    """The counts terraform prints as `Plan: N to add, M to change, K to destroy.`"""

    add: int = 0
    change: int = 0
    destroy: int = 0
    import_: int = Field(default=0, alias="import")
    changes: list[ResourceChange] = Field(default_factory=list)

    model_config = ConfigDict(populate_by_name=True)

    @property
    def has_changes(self) -> bool:
        return bool(self.add or self.change or self.destroy or self.import_)

    @property
    def line(self) -> str:
        if not self.has_changes:
            return "No changes. Your infrastructure matches the configuration."
        imported = f"{self.import_} to import, " if self.import_ else ""
        return f"Plan: {imported}{self.add} to add, {self.change} to change, {self.destroy} to destroy."


class ProjectStatus(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    LOCKED = "locked"
    SKIPPED = "skipped"


class ProjectResult(BaseModel):
    """What one command did to one project, ready to render."""

    project: Project
    command: CommandName
    status: ProjectStatus
    output: str = ""
    summary: PlanSummary | None = None
    error: str | None = None
    duration_seconds: float = 0.0
    tool: str = ""
    """What ran it, such as `OpenTofu 1.8.2`, when that is not terraform: the comment names it."""

    @property
    def ok(self) -> bool:
        return self.status is ProjectStatus.SUCCEEDED


class DriftStatus(StrEnum):
    """What a drift check found: the infrastructure matches the default branch, differs, or could not be planned.

    `remediated` means it differed and atlas applied the default branch's plan, so it matches again.
    """

    IN_SYNC = "in_sync"
    DRIFTED = "drifted"
    REMEDIATED = "remediated"
    FAILED = "failed"


class RemediationStatus(StrEnum):
    """What became of a remediation: applied, failed, waiting for a pull request's lock, or refused (destroys)."""

    APPLIED = "applied"
    FAILED = "failed"
    WAITING = "waiting"
    REFUSED = "refused"


class AttributeDrift(BaseModel):
    """One attribute that differs: its value now (live, after refresh) and the value the default branch wants."""

    model_config = ConfigDict(frozen=True)

    path: str
    live: str
    wanted: str


class ResourceDrift(BaseModel):
    """One resource whose live state differs from the default branch, and what the plan would do about it."""

    model_config = ConfigDict(frozen=True)

    address: str
    actions: tuple[str, ...] = ()
    # Terraform's refresh found the object changed outside terraform (`resource_drift` in the plan JSON).
    changed_outside: bool = False
    differences: tuple[AttributeDrift, ...] = ()


class Remediation(BaseModel):
    """What atlas did (or did not do) to bring a drifted project back to the default branch."""

    status: RemediationStatus
    detail: str = ""
    output: str = ""


class DriftRecord(BaseModel):
    """The latest drift check of one project on its repository's default branch."""

    id: str = Field(default_factory=new_id)
    repo: str
    project: Project
    sha: str
    status: DriftStatus
    resources: list[ResourceDrift] = Field(default_factory=list)
    summary: PlanSummary | None = None
    # Terraform's plan output as users read it (cleaned), and the error of a failed check.
    output: str = ""
    error: str | None = None
    remediation: Remediation | None = None
    issue_number: int | None = None
    issue_url: str = ""
    # False when GitHub could not be told (the issue may be out of date); the next check looks again.
    reported: bool = True
    trigger: str = ""
    checked_at: datetime = Field(default_factory=utcnow)
    duration_seconds: float = 0.0

    @property
    def drift_found(self) -> bool:
        return self.status in (DriftStatus.DRIFTED, DriftStatus.REMEDIATED)
