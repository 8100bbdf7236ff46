"""Drift checks: does the live infrastructure still match the default branch?

A check plans a project at its repository's default branch head, refresh on, in working copies of
its own (`atlas.drift.workdirs`), without taking the project's lock. Terraform's own workflow runs
`plan -detailed-exitcode` (exit code 2: the plan changes something); a repository's custom plan
workflow runs as it is and the saved plan says whether it changes anything. The result is recorded
as in sync, drifted (with each resource that differs and how) or failed, then remediated where
enabled (`atlas.drift.remediate`) and reported (`atlas.drift.report`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from atlas import metrics
from atlas.commands.context import CommandContext
from atlas.config.raw import ConfigError
from atlas.config.workflow import Stage, Step, StepName
from atlas.drift.notifications import notify_check
from atlas.drift.remediate import remediate
from atlas.drift.report import check_detail, record_check, record_failed_repo, report, set_repo_status
from atlas.drift.targets import DRIFT_USER, DriftTarget, candidate_repos, targets_at
from atlas.drift.workdirs import checkout, component, drift_path, exclusive, lock_path, project_log, repo_log
from atlas.models import (
    AttributeDrift,
    CommandName,
    DriftRecord,
    DriftStatus,
    PlanSummary,
    Project,
    Repo,
    ResourceDrift,
    utcnow,
)
from atlas.runtime.cancellation import CancelToken
from atlas.runtime.joblog import JobLog
from atlas.runtime.plan_compare import (
    UNKNOWN,
    attribute_differences,
    format_path,
    format_value,
    planned_changes,
)
from atlas.runtime.plan_output import clean_plan_output, summarise_plan
from atlas.runtime.plans import show_json
from atlas.runtime.sandbox import RunScope
from atlas.runtime.steps import StepContext, run_stage
from atlas.runtime.terraform import TerraformError, TerraformRunner
from atlas.runtime.workingcopy import WorkingCopyError
from atlas.vcs import VCSError

log = logging.getLogger(__name__)


MAX_DIFFERENCES = 20
"""Attributes listed per drifted resource; the plan in the issue has the rest."""


@dataclass(frozen=True)
class CheckJob:
    """The queued job a check runs as, if any: its id goes on the locks a remediation takes (so that they
    are released if the job is interrupted), and each project's outcome goes to its log (the job's page)."""

    job_id: str = ""
    log: JobLog | None = None
    cancel: CancelToken | None = None
    """Stops the check's terraform runs: its worker lost the job (see `atlas.jobs.drain.Heartbeat`)."""

    def say(self, line: str) -> None:
        if self.log is not None:
            self.log.write(f"atlas: {line}")

    @contextlib.contextmanager
    def following(self, project_log: JobLog, label: str) -> Iterator[None]:
        """Copy what the project's log gets into the job's log meanwhile, each line marked with the project."""
        if self.log is None:
            yield
            return
        log = self.log

        def copy(line: str) -> None:
            log.write(f"[{label}] {line}")

        project_log.subscribe(copy)
        try:
            yield
        finally:
            project_log.unsubscribe(copy)


@dataclass
class RepoCheck:
    """The drift checks of one repository: a record per project, or why the repository could not be checked."""

    repo: str
    sha: str = ""
    records: list[DriftRecord] = field(default_factory=list)
    error: str | None = None
    not_enabled: list[Project] = field(default_factory=list)
    """Projects found at the head whose drift detection is off (none when a project was named)."""

    @property
    def failed(self) -> bool:
        return self.error is not None or any(record.status is DriftStatus.FAILED for record in self.records)

    @property
    def drift_found(self) -> bool:
        return any(record.drift_found for record in self.records)


def exit_code(checks: Sequence[RepoCheck]) -> int:
    """`atlas drift run`'s exit status: 1 when a check failed, 2 when drift was found, 0 when all is in sync."""
    if any(check.failed for check in checks):
        return 1
    if any(check.drift_found for check in checks):
        return 2
    return 0


def run_checks(
    ctx: CommandContext,
    *,
    repos: Sequence[str] = (),
    project: str | None = None,
    schedule: str | None = None,
    trigger: str,
    user: str,
) -> list[RepoCheck]:
    """Check the drift-enabled repositories (or those named) now; their projects (or the one named, or those on
    `schedule`) in parallel up to `--parallel-pool-size`."""
    names = list(dict.fromkeys(repos)) or list(candidate_repos(ctx))
    return [check_repo(ctx, name, project=project, schedule=schedule, trigger=trigger, user=user)
            for name in names]


def check_repo(
    ctx: CommandContext,
    key: str,
    *,
    project: str | None = None,
    schedule: str | None = None,
    trigger: str,
    user: str,
    job: CheckJob | None = None,
) -> RepoCheck:
    """Check the projects of one repository (`key`, a `Repo.key`) at its default branch head, report each and set
    `atlas/drift`."""
    check = RepoCheck(repo=key)
    job = job or CheckJob()
    repo: Repo | None = None
    try:
        repo = ctx.repo_of_key(key)
        if not ctx.settings.repo_allowed(repo.allowlist_id):
            check.error = f"{repo.allowlist_id} is not in --repo-allowlist, so atlas does not check it"
            return check
        check.sha = ctx.vcs.branch_head(repo, repo.default_branch)
        with exclusive(lock_path(ctx, repo)):
            workdir = checkout(ctx, repo, check.sha, "default", repo_log(ctx, repo))
            targets, check.not_enabled = targets_at(ctx, repo, check.sha, workdir, name=project)
            if schedule is not None:
                targets = [t for t in targets if (t.settings.drift.schedule or ctx.settings.drift_schedule) == schedule]
            workdirs = {"default": workdir}
            for workspace in sorted({t.project.workspace for t in targets} - {"default"}):
                workdirs[workspace] = checkout(ctx, repo, check.sha, workspace, repo_log(ctx, repo))
            job.say(f"checking {len(targets)} project(s) of {key} at {repo.default_branch} {check.sha[:7]}: "
                    + (", ".join(t.project.label for t in targets) or "none has drift detection on"))
            check.records = _check_all(ctx, targets, workdirs, trigger=trigger, user=user, job=job)
        notify_check(ctx, repo, check.records)
    except ConfigError as error:
        check.error = f"the repo config at {check.sha[:7]} is invalid: {error}"
    except (VCSError, WorkingCopyError) as error:
        check.error = str(error)
    if check.error is not None:
        log.warning("drift check of %s failed: %s", key, check.error)
        job.say(f"the check of {key} failed: {check.error}")
        record_failed_repo(ctx, key, check.sha, check.error, user=user, trigger=trigger)
    if repo is not None and check.sha:
        set_repo_status(ctx, repo, check.sha, error=check.error)
    return check


def _check_all(
    ctx: CommandContext, targets: Sequence[DriftTarget], workdirs: Mapping[str, Path], *, trigger: str, user: str,
    job: CheckJob,
) -> list[DriftRecord]:
    """Check every target; those sharing a dir and workspace one after another (they share `.terraform`)."""
    lanes: dict[tuple[str, str], list[DriftTarget]] = {}
    for target in targets:
        lanes.setdefault((target.project.dir, target.project.workspace), []).append(target)

    previous = {(r.project.dir, r.project.workspace, r.project.name): r
                for r in ctx.state.drift_records(targets[0].repo.key)} if targets else {}

    def run_lane(lane: list[DriftTarget]) -> list[DriftRecord]:
        return [check_project(ctx, t, workdirs[t.project.workspace], trigger=trigger, user=user,
                              previous=previous.get((t.project.dir, t.project.workspace, t.project.name)), job=job)
                for t in lane]

    if not lanes:
        return []
    workers = max(1, min(len(lanes), ctx.settings.parallel_pool_size))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="atlas-drift") as pool:
        results = list(pool.map(run_lane, lanes.values()))
    return [record for lane in results for record in lane]


def check_project(
    ctx: CommandContext, target: DriftTarget, workdir: Path, *, trigger: str, user: str,
    previous: DriftRecord | None = None, job: CheckJob | None = None,
) -> DriftRecord:
    """Plan one project at the head, remediate if it may, report, and record the result everywhere.

    `previous` is the project's last check: when it was in sync and fully reported, no issue can be
    open, so a check still in sync asks GitHub nothing.
    """
    job = job or CheckJob()
    started = time.monotonic()
    joblog = project_log(ctx, target.repo, target.project)
    # A directory per project: the plan runs confined to the working copy and this directory.
    name = component(target.project)
    planfile = drift_path(ctx, target.repo, "plans", f"{name}/{name}.tfplan")
    planfile.parent.mkdir(parents=True, exist_ok=True)
    record = DriftRecord(repo=target.repo.key, project=target.project, sha=target.sha,
                         status=DriftStatus.FAILED, trigger=trigger)
    try:
        with job.following(joblog, target.project.label):
            record = _plan(ctx, target, workdir, planfile, joblog, record, job.cancel)
            if record.status is DriftStatus.DRIFTED and target.settings.drift.remediate:
                record = remediate(ctx, target, workdir, planfile, joblog, record, user=user, trigger=trigger,
                                   job_id=job.job_id, cancel=job.cancel)
    except Exception as error:  # one project's surprise must not stop the others' checks
        log.exception("drift check of %s %s failed unexpectedly", target.repo.full_name, target.project.label)
        record = record.model_copy(update={"status": DriftStatus.FAILED,
                                           "error": f"atlas hit an internal error: {type(error).__name__}: {error}"})
    finally:
        planfile.unlink(missing_ok=True)
    record = record.model_copy(update={"duration_seconds": time.monotonic() - started, "checked_at": utcnow()})
    record = report(ctx, target, record, previous)
    ctx.state.save_drift(record)
    metrics.record_drift_check(record.status, record.duration_seconds)
    record_check(ctx, record, user=user, trigger=trigger)
    log.info("drift check of %s %s at %s: %s", record.repo, record.project.label, record.sha[:7], record.status)
    said, detail = str(record.status).replace("_", " "), check_detail(record)
    job.say(f"{record.project.label}: {said}{f': {detail}' if detail != said else ''} "
            f"({record.duration_seconds:.1f} s)")
    return record


def _plan(ctx: CommandContext, target: DriftTarget, workdir: Path, planfile: Path, joblog: JobLog,
          record: DriftRecord, cancel: CancelToken | None = None) -> DriftRecord:
    """Plan the project (refresh on) into `planfile`; the record says in sync, drifted (and how) or failed."""
    settings, project = target.settings, target.project
    try:
        runner = ctx.runner_for(settings, workdir / project.dir)
        version = runner.version()
    except TerraformError as unusable:
        return record.model_copy(update={"error": f"terraform version {settings.terraform_version!r}: {unusable}"
                                         if settings.terraform_version else str(unusable)})
    context = StepContext.for_pull(target.pull, project, user_name=DRIFT_USER, terraform_version=version)
    stage = settings.workflow.plan
    plan_step = next((step for step in stage.steps if step.name is StepName.PLAN), None)
    if plan_step is not None and all(step.name in _TERRAFORM_PLAN_STEPS for step in stage.steps):
        changed, output, error = _detailed_plan(runner, stage, plan_step, workdir, project, planfile, joblog,
                                                context, target.sha, cancel)
    else:
        # A workflow of the repository's own (run, env steps): run it as pull requests do; the plan decides.
        result = run_stage(stage, command=CommandName.PLAN, runner=runner, workdir=workdir, project=project,
                           planfile=planfile, log=joblog, context=context, cancel=cancel)
        changed, output, error = None, result.output, result.error
        if result.ok and not planfile.is_file():
            error = "the project's plan workflow saved no plan file, so atlas cannot tell whether it drifted"
    if error is not None:
        return record.model_copy(update={"output": output, "error": error})
    if changed is False:
        # Nothing to describe or apply: the structured plan is not needed.
        return record.model_copy(update={"status": DriftStatus.IN_SYNC, "summary": PlanSummary(), "output": output})
    document = show_json(runner, workdir, project, planfile, joblog)
    if changed is None:
        changed = plan_changes_anything(document)
    summary = summarise_plan(document)
    status = DriftStatus.DRIFTED if changed else DriftStatus.IN_SYNC
    return record.model_copy(update={"status": status, "summary": summary, "output": output,
                                     "resources": resources_from_plan(document) if changed else []})


INIT_MARKER = "atlas-drift-init"
"""The file in a project's `.terraform` saying at which commit and how the drift working copy initialised it."""

_TERRAFORM_PLAN_STEPS = frozenset({StepName.INIT, StepName.PLAN, StepName.SHOW})
"""Plan stages of only these steps are terraform's own, run here with `plan -detailed-exitcode`."""


def _detailed_plan(
    runner: TerraformRunner, stage: Stage, plan_step: Step, workdir: Path, project: Project, planfile: Path,
    joblog: JobLog, context: StepContext, sha: str, cancel: CancelToken | None = None,
) -> tuple[bool | None, str, str | None]:
    """`init` (and the workspace) by runtime.steps, then `plan -detailed-exitcode -out`: (changes?, output, error).

    `init` is skipped when this working copy initialised the project at the same commit the same way
    (the usual case: the default branch did not move since the last check), since it would do nothing.
    """
    project_dir = workdir / project.dir
    inits = tuple(step for step in stage.steps if step.name is StepName.INIT) or (Step(name=StepName.INIT),)
    marker = project_dir / ".terraform" / INIT_MARKER
    initialised = f"{sha} {project.workspace} {runner.binary} {[step.extra_args for step in inits]}"
    if not (marker.is_file() and marker.read_text() == initialised):
        marker.unlink(missing_ok=True)
        init = run_stage(Stage(steps=inits), command=CommandName.PLAN, runner=runner, workdir=workdir,
                         project=project, planfile=planfile, log=joblog, context=context, cancel=cancel)
        if not init.ok:
            return None, init.output, init.error or "terraform init failed"
        if marker.parent.is_dir():  # a project without providers, modules or backend has no .terraform
            marker.write_text(initialised)
    var_file = Path("env") / f"{project.workspace}.tfvars"
    var_file_args = [f"-var-file={var_file}"] if (project_dir / var_file).is_file() else []
    result = runner.run(["plan", "-input=false", "-no-color", "-refresh=true", "-detailed-exitcode",
                         f"-out={planfile}", *plan_step.extra_args, *var_file_args], project_dir, joblog,
                        scope=RunScope(writable=(workdir, planfile.parent)), cancel=cancel)
    output = clean_plan_output(result.output)
    if result.cancelled or result.timed_out:
        return None, output, f"terraform plan {'timed out' if result.timed_out else 'was cancelled'}"
    if result.exit_code not in (0, 2):
        marker.unlink(missing_ok=True)  # the next check initialises again, in case that is what is wrong
        errors = _errors(output)
        first = next((line.lstrip("│ ") for line in errors.splitlines() if "Error: " in line), "")
        return None, output, f"terraform plan failed (exit code {result.exit_code}): {first}".strip() + f"\n\n{errors}"
    return result.exit_code == 2, output, None


def plan_changes_anything(show: Mapping[str, Any]) -> bool:
    """Whether a plan changes a resource or an output: what `plan -detailed-exitcode` answers with exit code 2."""
    return bool(planned_changes(show))


def resources_from_plan(show: Mapping[str, Any]) -> list[ResourceDrift]:
    """Each resource (and root output) the plan changes: what it would do, and the attributes that differ.

    An attribute differs when its live value (after refresh) is not what the default branch wants;
    values terraform knows only after apply are left out, being consequences rather than causes.
    """
    wanted = planned_changes(show)
    live = planned_changes(_before_as_after(show))
    outside = {str(entry.get("address", "")) for entry in show.get("resource_drift") or []}
    resources: list[ResourceDrift] = []
    for address in sorted(wanted):
        change = wanted[address]
        differences: list[AttributeDrift] = []
        if "delete" not in change.actions and "create" not in change.actions and address in live:
            differences = [
                AttributeDrift(path=format_path(d.path), live=format_value(d.reviewed), wanted=format_value(d.new))
                for d in attribute_differences(live[address], change) if d.new is not UNKNOWN
            ][:MAX_DIFFERENCES]
        resources.append(ResourceDrift(address=address, actions=change.actions,
                                       changed_outside=address.split(" (deposed", 1)[0] in outside,
                                       differences=tuple(differences)))
    return resources


def _before_as_after(show: Mapping[str, Any]) -> dict[str, Any]:
    """The plan JSON with each change's `before` put where `after` was, so planned_changes reads live values."""

    def swapped(change: Mapping[str, Any]) -> dict[str, Any]:
        return {**change, "after": change.get("before"), "after_unknown": False,
                "after_sensitive": change.get("before_sensitive", False)}

    return {
        "resource_changes": [{**resource, "change": swapped(resource.get("change") or {})}
                             for resource in show.get("resource_changes") or []],
        "output_changes": {name: swapped(change) for name, change in (show.get("output_changes") or {}).items()},
    }


def _errors(output: str) -> str:
    """Terraform's error messages: the output from the first `Error:` on, or all of it."""
    lines = output.splitlines()
    for index, line in enumerate(lines):
        if line.lstrip("│ ").startswith("Error: "):
            return "\n".join(lines[index:]).strip() + "\n"
    return output
