"""`POST /api/plan`, `POST /api/apply` and `GET /api/jobs/<id>`: plan or apply a repository at a ref, for CI.

The request body takes Atlantis's API shape, so existing scripts work unchanged:
`{"Repository": "owner/name", "Ref": "main", "Type": "Github", "Paths": [{"Directory": "app",
"Workspace": "default"}], "Projects": ["name"], "PR": 0}`, with the secret in `X-Atlas-Token`
(or Atlantis's `X-Atlantis-Token`). Without `--api-secret` the API does not exist (404).

The request is checked here (token, body, repository, ref, pull request head), then queued as a
job in the pull request's queue, so it waits its turn behind that pull request's comment commands
and runs wherever jobs run (`atlas.commands.api_run`). By default the request waits for the job and
answers with its result, as Atlantis's API does. With `Prefer: respond-async` (RFC 7240) it answers
202 at once with the job's id and `Location: /api/jobs/<id>`, which answers the job's state and, once
it has finished, its result; `Prefer: wait=N` bounds how long a request waits before it answers 202
that way instead.
"""

from __future__ import annotations

import hmac
import logging
import re
import time
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from atlas.commands.api_run import ApiAnswer, answer_of
from atlas.commands.context import CommandContext
from atlas.config.settings import Settings
from atlas.jobs.queue import JobQueue
from atlas.models import ApiPath, ApiRun, CommandArgs, CommandName, Job, JobStatus, PullRequest, VCSHost
from atlas.stores.jobs import JobRecord
from atlas.vcs import VCSError

log = logging.getLogger(__name__)

blueprint = Blueprint("api", __name__)

SYNC_WAIT_SECONDS = 3600.0
"""How long a request without `Prefer: respond-async` waits for its job before answering 202 instead."""

POLL_SECONDS = 0.25
"""How often a waiting request looks whether its job has finished (in whichever process it runs)."""

JOB_ID = re.compile(r"^[0-9a-f]{16}$")
"""What `atlas.models.new_id` makes; any other id names no job."""


API_TYPES = {"github": VCSHost.GITHUB, "gitlab": VCSHost.GITLAB}
"""Atlantis's `Type` values atlas serves, and their hosts."""


class ApiRequestPath(BaseModel):
    model_config = ConfigDict(extra="ignore")

    Directory: str
    Workspace: str = "default"


class ApiRequest(BaseModel):
    """Atlantis's API request body."""

    model_config = ConfigDict(extra="ignore")

    # OWNER/NAME on GitHub; group[/subgroup…]/project on GitLab.
    Repository: str = Field(pattern=r"^[^/\s]+(/[^/\s]+){1,20}$")
    Ref: str = Field(min_length=1)
    Type: str = "Github"
    Paths: list[ApiRequestPath] = Field(default_factory=list)
    Projects: list[str] = Field(default_factory=list)
    PR: int = Field(default=0, ge=0, le=2**31 - 1)


class Preferences(BaseModel):
    """What the `Prefer` header asks for: `respond-async`, and `wait=N` seconds."""

    respond_async: bool = False
    wait: float | None = None

    @classmethod
    def parse(cls, headers: list[str]) -> Preferences:
        """Unknown preferences are ignored, as RFC 7240 asks."""
        respond_async, wait = False, None
        for header in headers:
            for item in header.split(","):
                name, _, value = item.split(";")[0].strip().partition("=")
                name = name.strip().lower()
                if name == "respond-async":
                    respond_async = True
                elif name == "wait":
                    try:
                        wait = max(0.0, float(value.strip().strip('"')))
                    except ValueError:
                        continue
        return cls(respond_async=respond_async, wait=wait)


def _error(status: int, message: str) -> Response:
    response = jsonify({"Error": message})
    response.status_code = status
    return response


@blueprint.post("/api/plan")
def api_plan() -> Response:
    return _handle(CommandName.PLAN)


@blueprint.post("/api/apply")
def api_apply() -> Response:
    return _handle(CommandName.APPLY)


@blueprint.get("/api/jobs/<job_id>")
def api_job(job_id: str) -> Response:
    """A job's state, and its result once it has one."""
    refusal = _token_refusal()
    if refusal is not None:
        return refusal
    ctx: CommandContext = current_app.config["ATLAS_CONTEXT"]
    record = ctx.state.get_job(job_id) if JOB_ID.match(job_id) else None
    if record is None:
        return _error(404, f"no job {job_id!r} on this server")
    answer = _final_answer(ctx, record) if record.status.finished else None
    job = record.job
    return jsonify({
        "JobID": job.id, "Command": str(job.command), "Repository": job.pull.repo.full_name, "PR": job.pull.number,
        "Ref": job.api.ref if job.api else job.pull.head_ref, "Sha": job.pull.head_sha,
        "Status": record.status.value, "Description": record.description, "JobURL": ctx.job_url(job.id),
        "CreatedAt": job.created_at.isoformat(),
        "StartedAt": record.started_at.isoformat() if record.started_at else None,
        "FinishedAt": record.finished_at.isoformat() if record.finished_at else None,
        "ResultStatus": answer.status if answer else None,
        "Result": answer.body if answer else None,
    })


def _token_refusal() -> Response | None:
    settings: Settings = current_app.config["ATLAS_SETTINGS"]
    if settings.api_secret is None:
        return _error(404, "the API is disabled on this server: set --api-secret to enable it")
    token = request.headers.get("X-Atlas-Token") or request.headers.get("X-Atlantis-Token") or ""
    if not hmac.compare_digest(token.encode(), settings.api_secret.get_secret_value().encode()):
        return _error(401, "missing or wrong X-Atlas-Token")
    return None


def _handle(command: CommandName) -> Response:
    refusal = _token_refusal()
    if refusal is not None:
        return refusal
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _error(400, "the body must be a JSON object like "
                           '{"Repository": "owner/name", "Ref": "main", "Type": "Github", "Paths": [...]}')
    try:
        wanted = ApiRequest.model_validate(body)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        return _error(400, f"{where}: {first['msg']}")
    host = API_TYPES.get(wanted.Type.lower())
    served_by: Settings = current_app.config["ATLAS_SETTINGS"]
    if host is None or (host is VCSHost.GITLAB and not served_by.gitlab_enabled):
        served = "GitHub and GitLab" if served_by.gitlab_enabled else "GitHub (GitLab with --gitlab-token)"
        return _error(400, f"Type {wanted.Type!r} is not supported: this server serves {served}")
    if host is VCSHost.GITHUB and wanted.Repository.count("/") != 1:
        return _error(400, f"Repository {wanted.Repository!r} is not OWNER/NAME (a GitHub repository)")
    if not wanted.Paths and not wanted.Projects:
        return _error(400, "name what to run: Paths (Directory, Workspace) or Projects")
    paths: list[ApiPath] = []
    for path in wanted.Paths:
        directory = path.Directory.strip("/") or "."
        if ".." in directory.split("/"):
            return _error(400, f"Paths: Directory {path.Directory!r} leaves the repository")
        paths.append(ApiPath(dir=directory, workspace=path.Workspace or "default"))
    ctx: CommandContext = current_app.config["ATLAS_CONTEXT"]
    settings: Settings = current_app.config["ATLAS_SETTINGS"]
    try:
        pull = _pull_of(ctx, settings, wanted, host)
    except _Refused as refused:
        return _error(refused.status, str(refused))
    job = Job(command=command, pull=pull, requested_by="api", args=CommandArgs(),
              api=ApiRun(ref=wanted.Ref, paths=tuple(paths), projects=tuple(wanted.Projects)))
    queue: JobQueue = current_app.config["ATLAS_QUEUE"]
    # QueueUnavailable (Redis down, shutting down) becomes the app's 503.
    queue.enqueue(job)
    log.info("API %s of %s at %s queued as job %s", command, pull.repo.full_name, pull.head_sha[:7], job.id)
    prefer = Preferences.parse(request.headers.getlist("Prefer"))
    limit = prefer.wait if prefer.wait is not None else (0.0 if prefer.respond_async else SYNC_WAIT_SECONDS)
    record = _wait(ctx, job.id, limit)
    if record is None or not record.status.finished:
        return _accepted(ctx, settings, job, record.status if record else JobStatus.QUEUED, prefer)
    answer = _final_answer(ctx, record)
    response = jsonify(answer.body)
    response.status_code = answer.status
    return response


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _pull_of(ctx: CommandContext, settings: Settings, wanted: ApiRequest, host: VCSHost) -> PullRequest:
    """The pull request the run acts for (number 0 when it names none), at the ref's commit."""
    try:
        repo = ctx.vcs_for_host(host).get_repo(wanted.Repository)
    except VCSError as error:
        raise _Refused(404, f"Repository {wanted.Repository!r} cannot be read with this server's token: "
                            f"{error}") from None
    if not settings.repo_allowed(repo.allowlist_id):
        raise _Refused(403, f"repository {repo.allowlist_id} is not in this server's --repo-allowlist")
    try:
        sha = ctx.vcs.resolve_ref(repo, wanted.Ref)
    except VCSError as error:
        raise _Refused(400, f"Ref {wanted.Ref!r} names no commit in {repo.full_name}: {error}") from None
    if not wanted.PR:
        return PullRequest(repo=repo, number=0, head_sha=sha, head_ref=wanted.Ref, base_ref=repo.default_branch,
                           author="api")
    try:
        pull = ctx.vcs.get_pull(repo, wanted.PR)
    except VCSError as error:
        raise _Refused(502, f"pull request #{wanted.PR} of {repo.full_name} cannot be read: {error}") from None
    if pull.head_sha != sha:
        raise _Refused(409, f"Ref {wanted.Ref} is {sha[:7]}, but pull request #{wanted.PR}'s head is "
                            f"{pull.head_sha[:7]}")
    return pull


def _wait(ctx: CommandContext, job_id: str, seconds: float) -> JobRecord | None:
    """The job's record once it has finished, or as it stands after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        record = ctx.state.get_job(job_id)
        if record is None or record.status.finished or time.monotonic() >= deadline:
            return record
        time.sleep(POLL_SECONDS)


def _accepted(ctx: CommandContext, settings: Settings, job: Job, status: JobStatus, prefer: Preferences) -> Response:
    path = f"/api/jobs/{job.id}"
    response = jsonify({"JobID": job.id, "Status": status.value, "JobURL": ctx.job_url(job.id),
                        "StatusURL": f"{settings.atlas_url}{path}"})
    response.status_code = 202
    response.headers["Location"] = path
    if prefer.respond_async:
        response.headers["Preference-Applied"] = "respond-async"
    return response


def _final_answer(ctx: CommandContext, record: JobRecord) -> ApiAnswer:
    """What a finished job answers: the result it kept, else what its status says."""
    answer = answer_of(ctx, record.job.id)
    if answer is not None:
        return answer
    if record.job.api is None:
        return ApiAnswer(body=_summary(record))
    if record.status is JobStatus.CANCELLED:
        return ApiAnswer.error(409, f"the run was cancelled before it finished ({record.description})")
    if record.status is JobStatus.INTERRUPTED:
        return ApiAnswer.error(503, f"the run was interrupted ({record.description}); send the request again")
    return ApiAnswer.error(500, f"the run failed without a result ({record.description}); "
                                f"the server log has the details (job {record.job.id})")


def _summary(record: JobRecord) -> dict[str, Any]:
    """A comment command's outcome: it answers on its pull request, so only its status is here."""
    return {"Success": record.status is JobStatus.SUCCEEDED, "Description": record.description}
