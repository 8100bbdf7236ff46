"""API runs: `POST /api/plan` and `/api/apply` as queued jobs that answer their caller with a result.

The HTTP edge (`atlas.http.api`) checks the request and queues a job carrying an `ApiRun`. The job
waits its turn in the pull request's queue like any comment command (a run that names no pull
request queues with the repository's other such runs, which share one working copy). Here it checks
out the ref, chooses the projects, plans or applies each through the same project stages, locks and
plan store as pull request commands, and records each in the audit log. Its answer (`ApiAnswer`: an
HTTP status and Atlantis's JSON body) is kept in the job store, for the request that waits for it or
for `GET /api/jobs/<id>`, whichever process ran the job.

With a pull request the run acts for it (it takes the pull request's locks); without one a plan
holds no lock and an apply refuses a project some pull request holds.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel

from atlas.commands import policy_check
from atlas.commands.apply import apply_one
from atlas.commands.context import CommandContext
from atlas.commands.outcome import CommandOutcome
from atlas.commands.plan import record_plan
from atlas.commands.project_run import run_project_stage
from atlas.config.raw import ConfigError
from atlas.config.repo_settings import RepoSettings, load_repo_settings
from atlas.models import ApiRun, CommandName, Job, JobStatus, Project, ProjectResult, ProjectStatus
from atlas.runtime.cancellation import CancelToken
from atlas.runtime.joblog import JobLog
from atlas.runtime.project_selection import find_named_project, projects_for_dir
from atlas.runtime.workingcopy import WorkingCopyError
from atlas.stores import audit
from atlas.vcs import VCSError

log = logging.getLogger(__name__)


class ApiAnswer(BaseModel):
    """What an API run answers: the HTTP status and the JSON body (Atlantis's shape, or `{"Error": ...}`)."""

    status: int = 200
    body: dict[str, Any]

    @classmethod
    def error(cls, status: int, message: str) -> ApiAnswer:
        return cls(status=status, body={"Error": message})


class ApiRefused(Exception):
    """The request cannot be run as asked; `status` is the HTTP status that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def run(job: Job, ctx: CommandContext, cancel: CancelToken) -> CommandOutcome:
    """Run the API request the job carries and keep its answer; never raises."""
    assert job.api is not None, "an API run's job carries its request"
    try:
        answer = _run(job, job.api, ctx, cancel)
    except ApiRefused as refusal:
        answer = ApiAnswer.error(refusal.status, str(refusal))
    except ConfigError as error:
        answer = ApiAnswer.error(422, str(error))
    except (VCSError, WorkingCopyError) as error:
        answer = ApiAnswer.error(502, str(error))
    except Exception:
        log.exception("API job %s failed unexpectedly", job.id)
        answer = ApiAnswer.error(500, f"atlas hit an internal error while running `{job.command}`; "
                                      f"the server log has the details (job {job.id})")
    ctx.state.save_job_result(job.id, answer.model_dump_json())
    if answer.status != 200:
        return CommandOutcome(JobStatus.FAILED, f"api {job.command}: {answer.body.get('Error', '')}")
    results = answer.body["ProjectResults"]
    succeeded = sum(1 for result in results if result["Status"] == ProjectStatus.SUCCEEDED)
    description = f"api {job.command}: {succeeded}/{len(results)} projects"
    return CommandOutcome(JobStatus.SUCCEEDED if answer.body["Success"] else JobStatus.FAILED, description)


def record_interrupted(ctx: CommandContext, job: Job, why: str) -> None:
    """Keep the answer of an API run whose process stopped: the caller may simply send it again."""
    answer = ApiAnswer.error(503, f"{why}; the run was interrupted: send the request again to re-run it "
                                  f"(job {job.id})")
    ctx.state.save_job_result(job.id, answer.model_dump_json())


def answer_of(ctx: CommandContext, job_id: str) -> ApiAnswer | None:
    """The answer an API run kept, or None (still running, or not an API run)."""
    kept = ctx.state.job_result(job_id)
    return ApiAnswer.model_validate_json(kept) if kept else None


def _run(job: Job, wanted: ApiRun, ctx: CommandContext, cancel: CancelToken) -> ApiAnswer:
    pull = job.pull
    joblog = ctx.job_log(job.id)
    workdir = ctx.working_copies.checkout(pull.repo, pull.number, "default", pull.head_sha,
                                          ctx.token_for(pull.repo), log=joblog)
    repo = load_repo_settings(ctx, pull, workdir)
    projects = _projects(repo, wanted, job)
    if job.command is CommandName.PLAN:
        results = [_plan(ctx, job, repo, project, joblog, cancel) for project in projects]
    else:
        results = [_apply(ctx, job, repo, project, joblog, cancel) for project in projects]
    ok = all(r.ok for r in results)
    description = f"api {job.command}: {sum(r.ok for r in results)}/{len(results)} projects"
    for result in results:
        audit.record(ctx.state, audit.AuditEntry(
            action=audit.AuditAction.PLAN if job.command is CommandName.PLAN else audit.AuditAction.APPLY,
            repo=pull.repo.key, user="api", outcome=str(result.status), sha=pull.head_sha,
            pull_number=pull.number or None, project=result.project, trigger="api", job_id=job.id,
            detail=description, output=result.output,
        ))
    return ApiAnswer(body={
        "Repository": pull.repo.full_name, "Ref": wanted.ref, "Sha": pull.head_sha, "PR": pull.number,
        "Command": str(job.command), "JobURL": ctx.job_url(job.id), "Success": ok, "Error": None,
        "ProjectResults": [_result_json(r) for r in results],
    })


def _projects(repo: RepoSettings, wanted: ApiRun, job: Job) -> list[Project]:
    config = repo.effective if repo.has_repo_config else None
    base = job.pull.base_ref
    projects: list[Project] = []
    for name in wanted.projects:
        named = find_named_project(config, name, base_branch=base) if config else None
        if named is None:
            raise ApiRefused(400, f"Projects: no project named {name!r} in the repository's config")
        projects.append(named.project)
    for path in wanted.paths:
        configured = projects_for_dir(config, path.dir, path.workspace, base_branch=base) if config else []
        projects.extend(s.project for s in configured)
        if not configured:
            projects.append(Project(dir=path.dir, workspace=path.workspace or "default"))
    return list(dict.fromkeys(projects))


def _plan(ctx: CommandContext, job: Job, repo: RepoSettings, project: Project, joblog: JobLog,
          cancel: CancelToken) -> ProjectResult:
    pull = job.pull
    if pull.number:
        attempt = ctx.locks.acquire(pull, [project], "api", job_id=job.id)
        if attempt.conflicts:
            return _locked(project, attempt.conflicts[0].pull_number)
    workdir = ctx.working_copies.checkout(pull.repo, pull.number, project.workspace, pull.head_sha,
                                          ctx.token_for(pull.repo), log=joblog)
    planfile = ctx.planfile(pull, project)
    result = run_project_stage(ctx, job, repo, project, workdir, planfile, joblog, cancel,
                               command=CommandName.PLAN)
    record_plan(job, ctx, repo, result, workdir, joblog)
    if not (result.ok and result.summary is not None and policy_check.enabled_for(ctx, repo, project)):
        return result
    # Judged as a pull request's plan is, so that an API apply is gated the same way.
    standing = policy_check.check_project(ctx, job, repo, project, workdir, planfile, joblog)
    if pull.number:
        policy_check.set_project_status(ctx, job, project, standing)
        policy_check.set_summary_status(ctx, job)
    if standing.allows_apply:
        return result
    refusal = policy_check.refusal_of(ctx, project, standing)
    return result.model_copy(update={"status": ProjectStatus.FAILED, "error": refusal + _unapprovable(pull.number)})


def _apply(ctx: CommandContext, job: Job, repo: RepoSettings, project: Project, joblog: JobLog,
           cancel: CancelToken) -> ProjectResult:
    pull = job.pull
    plan = next((p for p in ctx.state.plans(pull.repo.key, pull.number) if p.project == project), None)
    if plan is None or plan.head_sha != pull.head_sha:
        return ProjectResult(project=project, command=CommandName.APPLY, status=ProjectStatus.FAILED,
                             error=f"no plan of this project at {pull.head_sha[:7]}: POST /api/plan first")
    holder = ctx.locks.get(pull.repo.key, project)
    if holder is not None and holder.pull_number != pull.number:
        return _locked(project, holder.pull_number)
    refusals = [r for r in [policy_check.unjudged(ctx, repo, project)] if r]
    refusals += policy_check.blocked(ctx, repo, pull, [project])
    if refusals:
        return ProjectResult(project=project, command=CommandName.APPLY, status=ProjectStatus.FAILED,
                             error="\n\n".join(refusals) + _unapprovable(pull.number))
    return apply_one(job, ctx, repo, plan, joblog, cancel)


def _unapprovable(pull_number: int) -> str:
    """Without a pull request nobody can comment an approval: say so."""
    if pull_number:
        return ""
    return ("\n\nThis run names no pull request (PR 0), so no owner can approve it: run it for a pull request, "
            "where owners can comment their approval, or change the code so that its plan passes.")


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
