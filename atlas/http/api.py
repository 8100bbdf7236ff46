"""`POST /api/plan` and `POST /api/apply`: plan or apply a repository at a ref, for scripts and CI.

The request body takes Atlantis's API shape, so existing scripts work unchanged:
`{"Repository": "owner/name", "Ref": "main", "Type": "Github", "Paths": [{"Directory": "app",
"Workspace": "default"}], "Projects": ["name"], "PR": 0}`, with the secret in `X-Atlas-Token`
(or Atlantis's `X-Atlantis-Token`). The command runs in the request, through the same project
stages, locks and plan store as pull request commands, and the answer is JSON with one result per
project. Without `--api-secret` the API does not exist (404).

With `PR` set the command acts for that pull request (its head must be the ref's commit, and it
takes the pull request's locks); without it, a plan holds no lock and an apply refuses a project
some pull request holds.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from atlas.commands.apply import apply_one
from atlas.commands.context import CommandContext
from atlas.commands.plan import record_plan
from atlas.commands.project_run import run_project_stage
from atlas.config.raw import ConfigError
from atlas.config.repo_settings import RepoSettings, load_repo_settings
from atlas.config.settings import Settings
from atlas.models import CommandArgs, CommandName, Job, JobStatus, Project, ProjectResult, ProjectStatus, PullRequest
from atlas.runtime.cancellation import CancelToken
from atlas.runtime.project_selection import find_named_project, projects_for_dir
from atlas.runtime.workingcopy import WorkingCopyError
from atlas.stores import audit
from atlas.vcs import VCSError

log = logging.getLogger(__name__)

blueprint = Blueprint("api", __name__)


class ApiPath(BaseModel):
    model_config = ConfigDict(extra="ignore")

    Directory: str
    Workspace: str = "default"


class ApiRequest(BaseModel):
    """Atlantis's API request body."""

    model_config = ConfigDict(extra="ignore")

    Repository: str = Field(pattern=r"^[^/\s]+/[^/\s]+$")
    Ref: str = Field(min_length=1)
    Type: str = "Github"
    Paths: list[ApiPath] = Field(default_factory=list)
    Projects: list[str] = Field(default_factory=list)
    PR: int = Field(default=0, ge=0, le=2**31 - 1)


class ApiRefused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


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


def _handle(command: CommandName) -> Response:
    settings: Settings = current_app.config["ATLAS_SETTINGS"]
    if settings.api_secret is None:
        return _error(404, "the API is disabled on this server: set --api-secret to enable it")
    token = request.headers.get("X-Atlas-Token") or request.headers.get("X-Atlantis-Token") or ""
    if not hmac.compare_digest(token.encode(), settings.api_secret.get_secret_value().encode()):
        return _error(401, "missing or wrong X-Atlas-Token")
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
    if wanted.Type.lower() != "github":
        return _error(400, f"Type {wanted.Type!r} is not supported: this server serves GitHub")
    if not wanted.Paths and not wanted.Projects:
        return _error(400, "name what to run: Paths (Directory, Workspace) or Projects")
    ctx: CommandContext = current_app.config["ATLAS_CONTEXT"]
    try:
        return jsonify(_run(ctx, settings, command, wanted))
    except ApiRefused as refusal:
        return _error(refusal.status, str(refusal))
    except ConfigError as error:
        return _error(422, str(error))
    except (VCSError, WorkingCopyError) as error:
        return _error(502, str(error))


def _run(ctx: CommandContext, settings: Settings, command: CommandName, wanted: ApiRequest) -> dict[str, Any]:
    try:
        repo = ctx.vcs.get_repo(wanted.Repository)
    except VCSError as error:
        raise ApiRefused(404, f"Repository {wanted.Repository!r} cannot be read with this server's token: "
                              f"{error}") from None
    if not settings.repo_allowed(repo.allowlist_id):
        raise ApiRefused(403, f"repository {repo.allowlist_id} is not in this server's --repo-allowlist")
    try:
        sha = ctx.vcs.resolve_ref(repo, wanted.Ref)
    except VCSError as error:
        raise ApiRefused(400, f"Ref {wanted.Ref!r} names no commit in {repo.full_name}: {error}") from None
    if wanted.PR:
        pull = ctx.vcs.get_pull(repo, wanted.PR)
        if pull.head_sha != sha:
            raise ApiRefused(409, f"Ref {wanted.Ref} is {sha[:7]}, but pull request #{wanted.PR}'s head is "
                                  f"{pull.head_sha[:7]}")
    else:
        pull = PullRequest(repo=repo, number=0, head_sha=sha, head_ref=wanted.Ref, base_ref=repo.default_branch,
                           author="api")
    job = Job(command=command, pull=pull, requested_by="api", args=CommandArgs())
    ctx.state.save_job(job, JobStatus.RUNNING)
    joblog = ctx.job_log(job.id)
    workdir = ctx.working_copies.checkout(repo, pull.number, "default", sha, ctx.token_for(repo), log=joblog)
    settings_for_repo = load_repo_settings(ctx, pull, workdir)
    projects = _projects(settings_for_repo, wanted, pull)
    if command is CommandName.PLAN:
        results = [_plan(ctx, job, settings_for_repo, project, joblog) for project in projects]
    else:
        results = [_apply(ctx, job, settings_for_repo, project, joblog) for project in projects]
    ok = all(r.ok for r in results)
    description = f"api {command}: {sum(r.ok for r in results)}/{len(results)} projects"
    ctx.state.set_job_status(job.id, JobStatus.SUCCEEDED if ok else JobStatus.FAILED, description)
    for result in results:
        audit.record(ctx.state, audit.AuditEntry(
            action=audit.AuditAction.PLAN if command is CommandName.PLAN else audit.AuditAction.APPLY,
            repo=repo.full_name, user="api", outcome=str(result.status), sha=sha,
            pull_number=wanted.PR or None, project=result.project, trigger="api", job_id=job.id,
            detail=description, output=result.output,
        ))
    ctx.state.append_job_output(job.id, joblog.read())
    return {
        "Repository": repo.full_name, "Ref": wanted.Ref, "Sha": sha, "PR": wanted.PR, "Command": str(command),
        "JobURL": ctx.job_url(job.id), "Success": ok, "Error": None,
        "ProjectResults": [_result_json(r) for r in results],
    }


def _projects(repo: RepoSettings, wanted: ApiRequest, pull: PullRequest) -> list[Project]:
    config = repo.effective if repo.has_repo_config else None
    projects: list[Project] = []
    for name in wanted.Projects:
        named = find_named_project(config, name, base_branch=pull.base_ref) if config else None
        if named is None:
            raise ApiRefused(400, f"Projects: no project named {name!r} in the repository's config")
        projects.append(named.project)
    for path in wanted.Paths:
        directory = path.Directory.strip("/") or "."
        if ".." in directory.split("/"):
            raise ApiRefused(400, f"Paths: Directory {path.Directory!r} leaves the repository")
        configured = projects_for_dir(config, directory, path.Workspace, base_branch=pull.base_ref) if config else []
        projects.extend(s.project for s in configured)
        if not configured:
            projects.append(Project(dir=directory, workspace=path.Workspace or "default"))
    return list(dict.fromkeys(projects))


def _plan(ctx: CommandContext, job: Job, repo: RepoSettings, project: Project, joblog: Any) -> ProjectResult:
    pull = job.pull
    if pull.number:
        attempt = ctx.locks.acquire(pull, [project], "api", job_id=job.id)
        if attempt.conflicts:
            return _locked(project, attempt.conflicts[0].pull_number)
    workdir = ctx.working_copies.checkout(pull.repo, pull.number, project.workspace, pull.head_sha,
                                          ctx.token_for(pull.repo),
                                          log=joblog)
    result = run_project_stage(ctx, job, repo, project, workdir, ctx.planfile(pull, project), joblog, CancelToken(),
                               command=CommandName.PLAN)
    record_plan(job, ctx, repo, result, workdir, joblog)
    return result


def _apply(ctx: CommandContext, job: Job, repo: RepoSettings, project: Project, joblog: Any) -> ProjectResult:
    pull = job.pull
    plan = next((p for p in ctx.state.plans(pull.repo.full_name, pull.number) if p.project == project), None)
    if plan is None or plan.head_sha != pull.head_sha:
        return ProjectResult(project=project, command=CommandName.APPLY, status=ProjectStatus.FAILED,
                             error=f"no plan of this project at {pull.head_sha[:7]}: POST /api/plan first")
    holder = ctx.locks.get(pull.repo.full_name, project)
    if holder is not None and holder.pull_number != pull.number:
        return _locked(project, holder.pull_number)
    return apply_one(job, ctx, repo, plan, joblog, CancelToken())


def _locked(project: Project, holder: int) -> ProjectResult:
    return ProjectResult(project=project, command=CommandName.PLAN, status=ProjectStatus.LOCKED,
                         error=f"locked by pull request #{holder}")


def _result_json(result: ProjectResult) -> dict[str, Any]:
    summary = result.summary
    return {
        "Directory": result.project.dir,
        "Workspace": result.project.workspace,
        "ProjectName": result.project.name or "",
        "Status": str(result.status),
        "Summary": {"Add": summary.add, "Change": summary.change, "Destroy": summary.destroy,
                    "Import": summary.import_} if summary else None,
        "Output": result.output,
        "Error": result.error,
    }
