"""Drift checks as queued jobs: the scheduler queues one per due slot, and the job queue runs it.

A drift job checks one repository's projects on one schedule (`Job.drift`), with the default branch
as pull request 0 (`atlas.drift.workdirs`). It goes through the job queue as a pull request's
command does: in Redis mode an `atlas worker` clones, plans and remediates while the web process only
schedules, and on the embedded queue it runs on the queue's threads, never a request's. The checks
of one repository share a serial key (`Job.serial_key`), so two checks of one project never run at
once, on any worker. Its record, its log (the `/jobs/<id>` page, live from any host) and its metrics
are those of any job.

A drift job whose worker died is reported here (`report_interrupted`), as the reaper reports any
job: the locks its remediation took are released (passing to whoever waits for them), and the audit
log and `atlas/drift` on the default branch say that the check was interrupted.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from datetime import datetime

from atlas import metrics
from atlas.commands.context import CommandContext
from atlas.drift.check import CheckJob, RepoCheck, check_repo
from atlas.drift.report import record_failed_repo, set_repo_status
from atlas.drift.targets import DRIFT_USER, SCHEDULE_USER
from atlas.drift.workdirs import DRIFT_PULL_NUMBER
from atlas.logs import job_context
from atlas.models import CommandName, DriftRun, Job, JobStatus, PullRequest, Repo, split_repo_key
from atlas.runtime.lock_handoff import plan_for_new_holders
from atlas.stores.jobs import JobStore
from atlas.stores.locks import ProjectLock
from atlas.vcs import VCSError

log = logging.getLogger(__name__)

SCHEDULE_TRIGGER = "schedule"
"""How the audit log names what started a scheduled check."""

UNFINISHED_SCANNED = 1000
"""Queued and running jobs looked through for a repository's unfinished check of a schedule."""


def drift_job(repo: str, schedule: str, fired_at: datetime) -> Job:
    """The check of the projects of `repo` (a `Repo.key`) on `schedule`, for the slot that fired at `fired_at`."""
    return Job(command=CommandName.DRIFT, pull=default_branch(repo), requested_by=SCHEDULE_USER,
               drift=DriftRun(schedule=schedule, fired_at=fired_at))


def default_branch(key: str) -> PullRequest:
    """The default branch of the repository `key` names as pull request 0, as a job names it before the check
    reads the repository."""
    full_name, host = split_repo_key(key)
    repo = Repo(full_name=full_name, clone_url="", html_url="", vcs=host)
    return PullRequest(repo=repo, number=DRIFT_PULL_NUMBER, head_sha="", head_ref="", base_ref="", author=DRIFT_USER)


def unfinished_check(state: JobStore, repo: str, schedule: str) -> Job | None:
    """The check of `repo` (a `Repo.key`) on `schedule` that is still queued or running, whichever process
    queued it."""
    for record in state.jobs(statuses=(JobStatus.QUEUED, JobStatus.RUNNING), limit=UNFINISHED_SCANNED):
        job = record.job
        if job.drift is not None and job.drift.schedule == schedule and job.pull.repo.key == repo:
            return job
    return None


def run(job: Job, ctx: CommandContext) -> None:
    """Run a queued drift check to its end and record how it went, as `run_job` does for a command."""
    assert job.drift is not None, "a drift job carries its schedule"
    name = job.pull.repo.key
    with job_context(repo=name, job_id=job.id):
        ctx.state.set_job_status(job.id, JobStatus.RUNNING)
        started = time.monotonic()
        joblog = ctx.job_log(job.id)
        status, description = JobStatus.FAILED, "internal error"
        log.info("job %s started: drift checks of %s on %r", job.id, name, job.drift.schedule)
        # Registered so that a worker that lost the job (it stalled, and the job was reported) stops its terraform.
        token = ctx.running.start(job)
        try:
            check = check_repo(ctx, name, schedule=job.drift.schedule, trigger=SCHEDULE_TRIGGER, user=SCHEDULE_USER,
                               job=CheckJob(job_id=job.id, log=joblog, cancel=token))
            status, description = outcome(check)
            if token.cancelled:
                status, description = JobStatus.CANCELLED, f"cancelled: {description}"
        except Exception:  # one check's surprise must not take the worker down
            log.exception("drift job %s failed unexpectedly", job.id)
            description = f"atlas hit an internal error while checking {name}; the log of the process that ran it " \
                          "has the details"
            joblog.write(f"atlas: {description}")
        finally:
            ctx.running.finish(job)
            ctx.state.set_job_status(job.id, status, description)
            metrics.record_job(job.command, status, time.monotonic() - started)
            # Kept in the state store, so the job's page outlives the log file and the host that ran it.
            ctx.state.append_job_output(job.id, joblog.read())
        log.info("job %s %s: %s", job.id, status, description)


def outcome(check: RepoCheck) -> tuple[JobStatus, str]:
    """How a check's job ended: failed when the repository or a project could not be checked."""
    if check.error is not None:
        return JobStatus.FAILED, f"check failed: {check.error.splitlines()[0]}"
    counts = Counter(str(record.status).replace("_", " ") for record in check.records)
    text = ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
    return (JobStatus.FAILED if check.failed else JobStatus.SUCCEEDED), text or "no project has drift detection on"


def report_interrupted(ctx: CommandContext, job: Job, why: str) -> None:
    """Release the locks the interrupted check's remediation took, and say so in the audit log and `atlas/drift`."""
    ctx.state.set_job_status(job.id, JobStatus.INTERRUPTED, why)
    name = job.pull.repo.key
    released = release_locks(ctx, job)
    detail = f"interrupted: {why[:1].lower()}{why[1:].rstrip('.')}"
    if released:
        detail += "; released the lock of " + ", ".join(lock.project.label for lock in released) + \
                  ", which its remediation held"
    log.warning("the drift checks of %s (job %s) were %s", name, job.id, detail)
    record_failed_repo(ctx, name, "", detail, user=SCHEDULE_USER, trigger=SCHEDULE_TRIGGER)
    try:
        repo = ctx.repo_of_key(name)
        sha = ctx.vcs.branch_head(repo, repo.default_branch)
    except VCSError as error:
        log.warning("could not report the interrupted drift checks of %s: %s", name, error)
        return
    set_repo_status(ctx, repo, sha, error=detail)


def release_locks(ctx: CommandContext, job: Job) -> list[ProjectLock]:
    """Release the locks only `job` held (a remediation it ran took them); those released."""
    taken = [lock for lock in ctx.locks.for_pull(job.pull.repo.key, DRIFT_PULL_NUMBER) if lock.job_id == job.id]
    released: list[ProjectLock] = []
    for lock in taken:
        try:
            release = ctx.locks.settle_job_lock(lock.id, job.id, release=True)
        except Exception:
            log.exception("could not release lock %s of interrupted drift job %s", lock.id, job.id)
            continue
        if release.released:
            released.append(lock)
            plan_for_new_holders(ctx, release)
    return released
