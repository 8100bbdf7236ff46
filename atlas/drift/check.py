"""Drift detection and reconciliation: does the live infrastructure still match the default branch?

A drift check plans a project at its repository's default branch head, refresh on, in working
copies of its own (`<data-dir>/repos/OWNER/NAME/0/drift-WORKSPACE`, pull request 0 being no pull
request), without taking the project's lock. Terraform's own workflow runs `plan -detailed-exitcode`
(exit code 2: the plan changes something); a repository's custom plan workflow runs as it is and
the saved plan says whether it changes anything. The result is recorded as in sync, drifted (with
each resource that differs and how) or failed.

Reporting, for each project: a GitHub issue labelled `atlas-drift` opened when drift is found,
updated (and commented on) by every later check that still finds it, closed with a comment once
the project is back in sync; the `atlas/drift` commit status on the default branch head; the
`/drift` page and `atlas_drift_projects`; the audit log.

Remediation, where a project's `drift:` says `remediate: true`: the check's plan is applied to bring
the infrastructure back to git, holding the project's lock meanwhile, but only when no pull request
holds that lock and the plan destroys nothing (unless `remediate_destroy: true`).

Which repositories: those a repos.yaml entry with a `drift:` block matches (an exact id names one;
a `/regex/` matches the repositories atlas has seen pull requests of), within `--repo-allowlist`;
which projects: the repo config's (with autodiscovered ones as for pull requests), or every root
module without one, whose effective `drift:` is enabled.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import threading
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from atlas import metrics
from atlas.commands.context import CommandContext
from atlas.commands.locking import plan_for_new_holders
from atlas.commands.merge import show_json
from atlas.commands.repo_settings import RepoSettings, load_repo_settings
from atlas.config.raw import ConfigError
from atlas.config.server import ProjectSettings, ServerConfig
from atlas.config.workflow import Stage, Step, StepName
from atlas.models import (
    AttributeDrift,
    CommandName,
    DriftRecord,
    DriftStatus,
    PlanSummary,
    Project,
    PullRequest,
    Remediation,
    RemediationStatus,
    Repo,
    ResourceDrift,
    utcnow,
)
from atlas.render.comments import fence_for, format_diff
from atlas.runtime.joblog import JobLog
from atlas.runtime.plan_compare import (
    UNKNOWN,
    attribute_differences,
    describe_actions,
    format_path,
    format_value,
    planned_changes,
)
from atlas.runtime.plans import clean_plan_output, summarise_plan
from atlas.runtime.project_selection import select_projects
from atlas.runtime.projects import CONFIG_SUFFIXES, all_projects
from atlas.runtime.sandbox import RunScope
from atlas.runtime.steps import StepContext, run_stage
from atlas.runtime.terraform import TerraformError, TerraformRunner
from atlas.runtime.workingcopy import WorkingCopyError
from atlas.stores import audit
from atlas.stores.audit import AuditAction, AuditEntry
from atlas.stores.locks import lock_id_for
from atlas.vcs import ChangedFile, CommitState, Issue, VCSError

log = logging.getLogger(__name__)

ISSUE_LABEL = "atlas-drift"
"""The label of every drift issue; an open issue with it and the project's title is the project's issue."""

STATUS_CONTEXT = "atlas/drift"

DRIFT_USER = "atlas-drift"
"""Who a remediation holds the project's lock as."""

SCHEDULE_USER = "atlas"
"""Who scheduled checks are recorded as in the audit log."""

DRIFT_PULL_NUMBER = 0
"""The pull request number of the default branch: its working copies and a remediation's lock use it."""

MAX_DIFFERENCES = 20
"""Attributes listed per drifted resource; the plan in the issue has the rest."""

ISSUE_BODY_LIMIT = 60_000
"""Characters of an issue body or comment (GitHub allows 65,536); a longer plan is cut to fit."""


@dataclass(frozen=True)
class DriftTarget:
    """One project to check: its repository at the default branch head and its effective settings."""

    repo: Repo
    sha: str
    settings: ProjectSettings

    @property
    def project(self) -> Project:
        return self.settings.project

    @property
    def pull(self) -> PullRequest:
        """The default branch as a pull request numbered 0, for working copies, locks and run steps."""
        return PullRequest(repo=self.repo, number=DRIFT_PULL_NUMBER, head_sha=self.sha,
                           head_ref=self.repo.default_branch, base_ref=self.repo.default_branch, base_sha=self.sha,
                           author=DRIFT_USER, html_url=f"{self.repo.html_url}/tree/{self.repo.default_branch}")


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


# --- which repositories and projects --------------------------------------------------------------


def candidate_repos(ctx: CommandContext) -> dict[str, str]:
    """`owner/name` → `HOST/OWNER/NAME` of every allowed repository a repos.yaml drift block applies to."""
    config = ctx.server_config
    found: dict[str, str] = {}
    for entry in config.repos:
        if entry.drift is None:
            continue
        if entry.id.startswith("/") and entry.id.endswith("/") and len(entry.id) >= 2:
            for repo in ctx.state.known_repos():
                if entry.id_matches(repo.allowlist_id):
                    found.setdefault(repo.full_name, repo.allowlist_id)
        elif entry.id.count("/") >= 2:
            found.setdefault(entry.id.split("/", 1)[1], entry.id)
    return {name: repo_id for name, repo_id in sorted(found.items())
            if ctx.settings.repo_allowed(repo_id) and _drift_possible(config, repo_id)}


def _drift_possible(config: ServerConfig, repo_id: str) -> bool:
    """Drift is on for the repository, or its projects may turn it on (`allowed_overrides: [drift]`)."""
    policy = config.for_repo(repo_id)
    return policy.drift.enabled or "drift" in policy.allowed_overrides


def scheduled_repos(ctx: CommandContext, known: Mapping[str, Collection[str]] | None = None) -> dict[str, set[str]]:
    """`owner/name` → the cron schedules its drift-enabled projects are checked on.

    Only repositories whose projects may set their own `drift:` are read at their default branch
    head; for the others repos.yaml says everything. A repository being checked right now keeps
    the schedules in `known` (the last answer), rather than waiting for its check to end.
    """
    table: dict[str, set[str]] = {}
    for full_name, repo_id in candidate_repos(ctx).items():
        policy = ctx.server_config.for_repo(repo_id)
        fallback = {policy.drift.schedule or ctx.settings.drift_schedule} if policy.drift.enabled else set()
        if "drift" not in policy.allowed_overrides:
            if fallback:
                table[full_name] = fallback
            continue
        try:
            repo = ctx.vcs.get_repo(full_name)
            sha = ctx.vcs.branch_head(repo, repo.default_branch)
            with _exclusive(_lock_path(ctx, repo), wait=False) as free:
                if free:
                    workdir = _checkout(ctx, repo, sha, "default", _repo_log(ctx, repo))
                    targets, _ = _targets_at(ctx, repo, sha, workdir, name=None)
        except (VCSError, WorkingCopyError, ConfigError) as error:
            log.warning("cannot read the drift settings of %s at its default branch: %s", full_name, error)
            schedules = fallback
        else:
            if free:
                schedules = {target.settings.drift.schedule or ctx.settings.drift_schedule for target in targets}
            else:
                schedules = set((known or {}).get(full_name, fallback))
        if schedules:
            table[full_name] = schedules
    return table


def _targets_at(
    ctx: CommandContext, repo: Repo, sha: str, workdir: Path, *, name: str | None
) -> tuple[list[DriftTarget], list[Project]]:
    """The projects to check at the head checked out in `workdir`, and those found with drift off.

    A project named (`--project`) is checked whether or not its drift detection is on.
    """
    settings = load_repo_settings(ctx, _head_pull(repo, sha), workdir)
    found = [settings.project(project) for project in projects_at_head(workdir, settings)]
    if name is not None:
        return [DriftTarget(repo, sha, s) for s in found if _names(s.project, name)], []
    enabled = [DriftTarget(repo, sha, s) for s in found if s.drift.enabled]
    return enabled, [s.project for s in found if not s.drift.enabled]


def projects_at_head(workdir: Path, repo: RepoSettings) -> list[Project]:
    """Every project of the checked-out head: the repo config's for its branch (autodiscovered ones as
    configured), or every root module without a repo config."""
    roots = all_projects(workdir)
    if not repo.has_repo_config:
        return roots
    effective = repo.effective
    configured = [s.project for s in effective.projects
                  if (s.config is None or s.config.branch_matches(repo.base_branch))
                  and (workdir / s.project.dir).is_dir()]
    configured_dirs = {s.project.dir for s in effective.projects}
    # Every root "changed" makes select_projects autodiscover exactly as for a pull request (mode, ignore_paths).
    every_root = [ChangedFile(filename=f"{root.dir}/{_config_file(workdir / root.dir)}") for root in roots]
    discovered = [match.project for match in select_projects(workdir, every_root, effective,
                                                             base_branch=repo.base_branch, manual=True)
                  if match.project.dir not in configured_dirs]
    return configured + discovered


def _config_file(directory: Path) -> str:
    return next(entry.name for entry in sorted(directory.iterdir()) if entry.name.endswith(CONFIG_SUFFIXES))


def _names(project: Project, name: str) -> bool:
    """Whether `--project NAME` means this project: its name, its dir, or DIR/WORKSPACE."""
    wanted = name.strip().strip("/") or "."
    return wanted in (project.name, project.dir, f"{project.dir}/{project.workspace}", project.label)


def _head_pull(repo: Repo, sha: str) -> PullRequest:
    return PullRequest(repo=repo, number=DRIFT_PULL_NUMBER, head_sha=sha, head_ref=repo.default_branch,
                       base_ref=repo.default_branch, base_sha=sha, author=DRIFT_USER)


# --- running checks -------------------------------------------------------------------------------


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
    full_name: str,
    *,
    project: str | None = None,
    schedule: str | None = None,
    trigger: str,
    user: str,
) -> RepoCheck:
    """Check one repository's projects at its default branch head, report each and set `atlas/drift`."""
    check = RepoCheck(repo=full_name)
    repo: Repo | None = None
    try:
        repo = ctx.vcs.get_repo(full_name)
        if not ctx.settings.repo_allowed(repo.allowlist_id):
            check.error = f"{repo.allowlist_id} is not in --repo-allowlist, so atlas does not check it"
            return check
        check.sha = ctx.vcs.branch_head(repo, repo.default_branch)
        with _exclusive(_lock_path(ctx, repo)):
            workdir = _checkout(ctx, repo, check.sha, "default", _repo_log(ctx, repo))
            targets, check.not_enabled = _targets_at(ctx, repo, check.sha, workdir, name=project)
            if schedule is not None:
                targets = [t for t in targets if (t.settings.drift.schedule or ctx.settings.drift_schedule) == schedule]
            workdirs = {"default": workdir}
            for workspace in sorted({t.project.workspace for t in targets} - {"default"}):
                workdirs[workspace] = _checkout(ctx, repo, check.sha, workspace, _repo_log(ctx, repo))
            check.records = _check_all(ctx, targets, workdirs, trigger=trigger, user=user)
    except ConfigError as error:
        check.error = f"the repo config at {check.sha[:7]} is invalid: {error}"
    except (VCSError, WorkingCopyError) as error:
        check.error = str(error)
    if check.error is not None:
        log.warning("drift check of %s failed: %s", full_name, check.error)
        audit.record(ctx, AuditEntry(action=AuditAction.DRIFT_CHECK, repo=full_name, user=user, trigger=trigger,
                                     outcome=DriftStatus.FAILED.value, sha=check.sha, detail=check.error))
    if repo is not None and check.sha:
        _set_repo_status(ctx, repo, check.sha, error=check.error)
    return check


def _check_all(
    ctx: CommandContext, targets: Sequence[DriftTarget], workdirs: Mapping[str, Path], *, trigger: str, user: str
) -> list[DriftRecord]:
    """Check every target; those sharing a dir and workspace one after another (they share `.terraform`)."""
    lanes: dict[tuple[str, str], list[DriftTarget]] = {}
    for target in targets:
        lanes.setdefault((target.project.dir, target.project.workspace), []).append(target)

    previous = {(r.project.dir, r.project.workspace, r.project.name): r
                for r in ctx.state.drift_records(targets[0].repo.full_name)} if targets else {}

    def run_lane(lane: list[DriftTarget]) -> list[DriftRecord]:
        return [check_project(ctx, t, workdirs[t.project.workspace], trigger=trigger, user=user,
                              previous=previous.get((t.project.dir, t.project.workspace, t.project.name)))
                for t in lane]

    if not lanes:
        return []
    workers = max(1, min(len(lanes), ctx.settings.parallel_pool_size))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="atlas-drift") as pool:
        results = list(pool.map(run_lane, lanes.values()))
    return [record for lane in results for record in lane]


def check_project(
    ctx: CommandContext, target: DriftTarget, workdir: Path, *, trigger: str, user: str,
    previous: DriftRecord | None = None,
) -> DriftRecord:
    """Plan one project at the head, remediate if it may, report, and record the result everywhere.

    `previous` is the project's last check: when it was in sync and fully reported, no issue can be
    open, so a check still in sync asks GitHub nothing.
    """
    started = time.monotonic()
    project_log = _project_log(ctx, target)
    # A directory per project: the plan runs confined to the working copy and this directory.
    component = _component(target.project)
    planfile = _drift_path(ctx, target.repo, "plans", f"{component}/{component}.tfplan")
    planfile.parent.mkdir(parents=True, exist_ok=True)
    record = DriftRecord(repo=target.repo.full_name, project=target.project, sha=target.sha,
                         status=DriftStatus.FAILED, trigger=trigger)
    try:
        record = _plan(ctx, target, workdir, planfile, project_log, record)
        if record.status is DriftStatus.DRIFTED and target.settings.drift.remediate:
            record = _remediate(ctx, target, workdir, planfile, project_log, record, user=user, trigger=trigger)
    except Exception as error:  # one project's surprise must not stop the others' checks
        log.exception("drift check of %s %s failed unexpectedly", target.repo.full_name, target.project.label)
        record = record.model_copy(update={"status": DriftStatus.FAILED,
                                           "error": f"atlas hit an internal error: {type(error).__name__}: {error}"})
    finally:
        planfile.unlink(missing_ok=True)
    record = record.model_copy(update={"duration_seconds": time.monotonic() - started, "checked_at": utcnow()})
    record = _report(ctx, target, record, previous)
    ctx.state.save_drift(record)
    metrics.record_drift_check(record.status, record.duration_seconds)
    audit.record(ctx, AuditEntry(
        action=AuditAction.DRIFT_CHECK, repo=record.repo, user=user, trigger=trigger,
        outcome=DriftStatus.DRIFTED.value if record.drift_found else record.status.value, sha=record.sha,
        project=record.project, detail=_check_detail(record), plan=record.output if record.drift_found else "",
    ))
    log.info("drift check of %s %s at %s: %s", record.repo, record.project.label, record.sha[:7], record.status)
    return record


def _plan(ctx: CommandContext, target: DriftTarget, workdir: Path, planfile: Path, joblog: JobLog,
          record: DriftRecord) -> DriftRecord:
    """Plan the project (refresh on) into `planfile`; the record says in sync, drifted (and how) or failed."""
    settings, project = target.settings, target.project
    try:
        runner = ctx.terraform_for(settings.terraform_version)
        version = runner.version()
    except TerraformError as unusable:
        return record.model_copy(update={"error": f"terraform version {settings.terraform_version!r}: {unusable}"})
    context = StepContext.for_pull(target.pull, project, user_name=DRIFT_USER, terraform_version=version)
    stage = settings.workflow.plan
    plan_step = next((step for step in stage.steps if step.name is StepName.PLAN), None)
    if plan_step is not None and all(step.name in _TERRAFORM_PLAN_STEPS for step in stage.steps):
        changed, output, error = _detailed_plan(runner, stage, plan_step, workdir, project, planfile, joblog,
                                                context, target.sha)
    else:
        # A workflow of the repository's own (run, env steps): run it as pull requests do; the plan decides.
        result = run_stage(stage, command=CommandName.PLAN, runner=runner, workdir=workdir, project=project,
                           planfile=planfile, log=joblog, context=context)
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
    joblog: JobLog, context: StepContext, sha: str,
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
                         project=project, planfile=planfile, log=joblog, context=context)
        if not init.ok:
            return None, init.output, init.error or "terraform init failed"
        if marker.parent.is_dir():  # a project without providers, modules or backend has no .terraform
            marker.write_text(initialised)
    var_file = Path("env") / f"{project.workspace}.tfvars"
    var_file_args = [f"-var-file={var_file}"] if (project_dir / var_file).is_file() else []
    result = runner.run(["plan", "-input=false", "-no-color", "-refresh=true", "-detailed-exitcode",
                         f"-out={planfile}", *plan_step.extra_args, *var_file_args], project_dir, joblog,
                        scope=RunScope(writable=(workdir, planfile.parent)))
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


# --- remediation ----------------------------------------------------------------------------------


def _remediate(ctx: CommandContext, target: DriftTarget, workdir: Path, planfile: Path, joblog: JobLog,
               record: DriftRecord, *, user: str, trigger: str) -> DriftRecord:
    """Apply the check's plan, if nothing forbids it, holding the project's lock meanwhile."""
    project, repo = target.project, target.repo
    remediation = _refusal(ctx, target, record)
    if remediation is None:
        attempt = ctx.locks.acquire(target.pull, [project], DRIFT_USER)
        if attempt.conflicts:
            remediation = _waiting(attempt.conflicts[0].pull_number)
        else:
            try:
                runner = ctx.terraform_for(target.settings.terraform_version)
                context = StepContext.for_pull(target.pull, project, user_name=DRIFT_USER)
                result = run_stage(target.settings.workflow.apply, command=CommandName.APPLY, runner=runner,
                                   workdir=workdir, project=project, planfile=planfile, log=joblog, context=context)
            finally:
                release = ctx.locks.release(lock_id_for(repo.full_name, project))
                plan_for_new_holders(ctx, release)
            if result.ok:
                remediation = Remediation(status=RemediationStatus.APPLIED, output=result.output,
                                          detail=f"applied the plan of {repo.default_branch} at {target.sha[:7]}")
            else:
                remediation = Remediation(status=RemediationStatus.FAILED, output=result.output,
                                          detail=(result.error or "terraform apply failed").strip())
    audit.record(ctx, AuditEntry(
        action=AuditAction.REMEDIATION, repo=repo.full_name, user=user, trigger=trigger,
        outcome=remediation.status.value, sha=target.sha, project=project, detail=remediation.detail,
        plan=record.output, output=remediation.output,
    ))
    update: dict[str, Any] = {"remediation": remediation}
    if remediation.status is RemediationStatus.APPLIED:
        update["status"] = DriftStatus.REMEDIATED
    log.info("remediation of %s %s: %s (%s)", repo.full_name, project.label, remediation.status, remediation.detail)
    return record.model_copy(update=update)


def _refusal(ctx: CommandContext, target: DriftTarget, record: DriftRecord) -> Remediation | None:
    """Why the plan may not be applied now (it destroys, or a pull request holds the lock), or None."""
    destroys = record.summary.destroy if record.summary is not None else 0
    if destroys and not target.settings.drift.remediate_destroy:
        return Remediation(status=RemediationStatus.REFUSED, detail=(
            f"the plan destroys {destroys} resource{'s' if destroys != 1 else ''}; atlas applies a plan that "
            "destroys only with `remediate_destroy: true`"))
    holder = ctx.locks.get(target.repo.full_name, target.project)
    if holder is not None:
        return _waiting(holder.pull_number)
    return None


def _waiting(pull_number: int) -> Remediation:
    if pull_number == DRIFT_PULL_NUMBER:
        return Remediation(status=RemediationStatus.WAITING, detail="another remediation of this project is running")
    return Remediation(status=RemediationStatus.WAITING, detail=(
        f"the project is locked by pull request #{pull_number}: remediation waits until that pull request is "
        "merged or closed (or unlocked), so that it does not apply underneath a change in review"))


# --- reporting ------------------------------------------------------------------------------------


def issue_title(repo: str, project: Project) -> str:
    """`atlas drift: acme/infra app (default)`: how a project's drift issue is found again."""
    return f"atlas drift: {repo} {project.name or project.dir} ({project.workspace})"


def _report(ctx: CommandContext, target: DriftTarget, record: DriftRecord,
            previous: DriftRecord | None = None) -> DriftRecord:
    """Open, update, comment on or close the project's drift issue; a GitHub failure is logged, not raised."""
    repo = target.repo
    title = issue_title(repo.full_name, target.project)
    if record.status is DriftStatus.FAILED:
        # Not drift: an open issue stays as it is, and the page keeps pointing at it.
        return record.model_copy(update={"issue_number": previous.issue_number, "issue_url": previous.issue_url,
                                         "reported": previous.reported} if previous is not None else {})
    if (record.status is DriftStatus.IN_SYNC and previous is not None and previous.status is DriftStatus.IN_SYNC
            and previous.reported):
        return record
    try:
        issue = ctx.vcs.find_issue(repo, title, ISSUE_LABEL)
        if record.status is DriftStatus.IN_SYNC:
            if issue is not None:
                ctx.vcs.post_comment(repo, issue.number, fit_for_github(render_back_in_sync(record, repo)))
                ctx.vcs.close_issue(repo, issue.number)
            return record
        body = fit_for_github(render_issue_body(record, repo, atlas_url=ctx.settings.atlas_url))
        if issue is None:
            issue = ctx.vcs.create_issue(repo, title, body, [ISSUE_LABEL])
        else:
            ctx.vcs.update_issue(repo, issue.number, body)
            ctx.vcs.post_comment(repo, issue.number, fit_for_github(render_still_drifted(record)))
        if record.remediation is not None and record.remediation.status in (RemediationStatus.APPLIED,
                                                                             RemediationStatus.FAILED):
            ctx.vcs.post_comment(repo, issue.number, fit_for_github(render_remediation(record, repo)))
        if record.status is DriftStatus.REMEDIATED:
            ctx.vcs.close_issue(repo, issue.number)
        return record.model_copy(update=_issue_fields(issue))
    except VCSError as error:
        log.warning("could not report drift of %s %s on GitHub: %s", repo.full_name, target.project.label, error)
        return record.model_copy(update={"reported": False})


def _issue_fields(issue: Issue | None) -> dict[str, Any]:
    return {"issue_number": issue.number, "issue_url": issue.html_url} if issue is not None else {}


def render_issue_body(record: DriftRecord, repo: Repo, *, atlas_url: str = "") -> str:
    """The drift issue's body: always the latest check, with the plan in a collapsible diff block."""
    project = record.project
    lines = [
        f"**Drift detected** in `{record.repo}`, project `{project.dir}` (workspace `{project.workspace}`"
        + (f", name `{project.name}`" if project.name else "")
        + f"): the live infrastructure differs from `{repo.default_branch}` at {_commit_link(repo, record.sha)}.",
        "",
        f"Last checked {record.checked_at:%Y-%m-%d %H:%M:%S} UTC ({record.trigger or 'check'}). "
        + (record.summary.line if record.summary is not None else ""),
        "",
        "| Resource | What the plan does to bring it back | Changed outside terraform |",
        "|---|---|---|",
    ]
    lines += [f"| `{r.address}` | {describe_actions(r.actions)} | {'yes' if r.changed_outside else 'no'} |"
              for r in record.resources]
    differing = [r for r in record.resources if r.differences]
    if differing:
        lines += ["", f"What differs (live → wanted by `{repo.default_branch}`):", ""]
        for resource in differing:
            lines.append(f"- `{resource.address}`")
            lines += [f"  - `{d.path}`: `{d.live}` → `{d.wanted}`" for d in resource.differences]
    lines += ["", "**Remediation**: " + _remediation_text(record), "", _plan_block(record.output)]
    footer = "Updated by atlas at every drift check, and closed once the project is back in sync."
    if atlas_url:
        footer += f" [Every project's latest check]({atlas_url}/drift)."
    lines += ["", f"<sub>{footer}</sub>"]
    return "\n".join(lines) + "\n"


def render_still_drifted(record: DriftRecord) -> str:
    """The comment of a later check that still finds the drift."""
    count = len(record.resources)
    return (f"Drift check at `{record.sha[:7]}` ({record.checked_at:%Y-%m-%d %H:%M:%S} UTC, "
            f"{record.trigger or 'check'}): **still drifted**, {count} resource{'s' if count != 1 else ''} "
            f"differ{'s' if count == 1 else ''}. {record.summary.line if record.summary else ''}\n\n"
            f"**Remediation**: {_remediation_text(record)}\n\nThe issue's description shows this check's plan.\n")


def render_remediation(record: DriftRecord, repo: Repo) -> str:
    """The comment that records a remediation: the plan applied and terraform's output."""
    remediation = record.remediation
    assert remediation is not None
    if remediation.status is RemediationStatus.APPLIED:
        head = (f"**Remediated**: atlas applied the plan of `{repo.default_branch}` at "
                f"{_commit_link(repo, record.sha)}, so the infrastructure matches it again. Closing this issue.")
    else:
        head = (f"**Remediation failed**: atlas applied the plan of `{repo.default_branch}` at "
                f"{_commit_link(repo, record.sha)}, and terraform failed. The project may be partly changed; "
                f"the next check plans it again.\n\n{remediation.detail}")
    output = remediation.output.strip() or "(no output)"
    fence = fence_for(output)
    return "\n".join([head, "", _plan_block(record.output, summary="Plan applied"), "",
                      "<details><summary>Apply output</summary>", "", f"{fence}text", output, fence, "",
                      "</details>", ""])


def render_back_in_sync(record: DriftRecord, repo: Repo) -> str:
    return (f"**Back in sync**: the drift check at {_commit_link(repo, record.sha)} "
            f"({record.checked_at:%Y-%m-%d %H:%M:%S} UTC) found that the infrastructure matches "
            f"`{repo.default_branch}` again. Closing this issue.\n")


def _remediation_text(record: DriftRecord) -> str:
    remediation = record.remediation
    if remediation is None:
        return ("not enabled for this project (`remediate: true` in its `drift:` settings lets atlas apply "
                "the default branch's plan).")
    words = {
        RemediationStatus.APPLIED: "applied.",
        RemediationStatus.FAILED: "the apply failed.",
        RemediationStatus.WAITING: f"waits: {remediation.detail}.",
        RemediationStatus.REFUSED: f"not applied: {remediation.detail}.",
    }
    return words[remediation.status]


def _plan_block(output: str, summary: str = "Plan") -> str:
    text = format_diff(output.strip() or "(terraform printed nothing)")
    fence = fence_for(text)
    return "\n".join([f"<details><summary>{summary}</summary>", "", f"{fence}diff", text, fence, "", "</details>"])


def _commit_link(repo: Repo, sha: str) -> str:
    return f"[`{sha[:7]}`]({repo.html_url}/commit/{sha})"


def fit_for_github(body: str, limit: int = ISSUE_BODY_LIMIT) -> str:
    """A body GitHub accepts: while too long, the longest fenced block loses its end (and stays closed)."""
    for _ in range(8):
        if len(body) <= limit:
            return body
        blocks = list(re.finditer(r"^(`{3,})(\w*)\n(.*?)^\1$", body, re.MULTILINE | re.DOTALL))
        if not blocks:
            break
        longest = max(blocks, key=lambda match: len(match.group(3)))
        content = longest.group(3)
        kept = content[: max(len(content) - (len(body) - limit + 200), 0)]
        if len(kept) == len(content):
            break
        cut = f"{kept.rstrip()}\n… ({len(content) - len(kept)} characters cut; the audit log keeps more)\n"
        body = body[: longest.start(3)] + cut + body[longest.end(3):]
    return body if len(body) <= limit else body[:limit] + "\n\n… (cut)\n"


def _check_detail(record: DriftRecord) -> str:
    if record.status is DriftStatus.FAILED:
        return (record.error or "failed").splitlines()[0]
    if not record.drift_found:
        return "in sync"
    addresses = ", ".join(r.address for r in record.resources[:5])
    more = f" and {len(record.resources) - 5} more" if len(record.resources) > 5 else ""
    text = f"{len(record.resources)} resource(s) differ: {addresses}{more}"
    if record.remediation is not None:
        text += f"; remediation {record.remediation.status}"
    return text


def _set_repo_status(ctx: CommandContext, repo: Repo, sha: str, *, error: str | None = None) -> None:
    """`atlas/drift` on the head: from the latest check of every project at that commit."""
    records = [record for record in ctx.state.drift_records(repo.full_name) if record.sha == sha]
    failed = sum(1 for record in records if record.status is DriftStatus.FAILED)
    drifted = sum(1 for record in records if record.status is DriftStatus.DRIFTED)
    remediated = sum(1 for record in records if record.status is DriftStatus.REMEDIATED)
    if error is not None:
        state, description = CommitState.ERROR, f"drift check failed: {error}"
    elif not records:
        return
    elif failed:
        state, description = CommitState.ERROR, f"{failed} of {len(records)} drift checks failed"
    elif drifted:
        state, description = CommitState.FAILURE, f"{drifted} of {len(records)} projects drifted"
    else:
        state = CommitState.SUCCESS
        description = f"{len(records)} project{'s' if len(records) != 1 else ''} in sync"
        if remediated:
            description += f" ({remediated} remediated)"
    try:
        ctx.vcs.set_status(repo, sha, state, STATUS_CONTEXT, description, target_url=f"{ctx.settings.atlas_url}/drift")
    except VCSError as failure:
        log.warning("could not set %s on %s@%s: %s", STATUS_CONTEXT, repo.full_name, sha[:7], failure)


def _errors(output: str) -> str:
    """Terraform's error messages: the output from the first `Error:` on, or all of it."""
    lines = output.splitlines()
    for index, line in enumerate(lines):
        if line.lstrip("│ ").startswith("Error: "):
            return "\n".join(lines[index:]).strip() + "\n"
    return output


# --- where checks keep their files, and one check of a repository at a time ------------------------


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _component(project: Project) -> str:
    parts = [project.dir, project.workspace, *([project.name] if project.name else [])]
    return "--".join(_UNSAFE.sub("_", part) for part in parts)


def _drift_path(ctx: CommandContext, repo: Repo, kind: str, name: str) -> Path:
    return ctx.settings.data_dir / "drift" / kind / repo.owner / repo.name / name


def _lock_path(ctx: CommandContext, repo: Repo) -> Path:
    return _drift_path(ctx, repo, "locks", "repo.lock")


def _repo_log(ctx: CommandContext, repo: Repo) -> JobLog:
    return JobLog(_drift_path(ctx, repo, "logs", "checkout.log"), redactor=ctx.settings.secrets())


def _project_log(ctx: CommandContext, target: DriftTarget) -> JobLog:
    """The project's check log, started afresh: `<data-dir>/drift/logs/OWNER/NAME/PROJECT.log`."""
    path = _drift_path(ctx, target.repo, "logs", _component(target.project) + ".log")
    path.unlink(missing_ok=True)
    return JobLog(path, redactor=ctx.settings.secrets())


def _checkout(ctx: CommandContext, repo: Repo, sha: str, workspace: str, joblog: JobLog) -> Path:
    return ctx.working_copies.checkout(repo, DRIFT_PULL_NUMBER, f"drift-{workspace}", sha, ctx.token, log=joblog)


_THREAD_LOCKS: dict[Path, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


@contextlib.contextmanager
def _exclusive(path: Path, *, wait: bool = True) -> Iterator[bool]:
    """Hold `path` against other threads and processes (checks of one repository share working copies).

    Yields whether it is held: with `wait=False`, False at once when someone else holds it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with _THREAD_LOCKS_GUARD:
        thread_lock = _THREAD_LOCKS.setdefault(path, threading.Lock())
    if not thread_lock.acquire(blocking=wait):
        yield False
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)
    finally:
        thread_lock.release()
