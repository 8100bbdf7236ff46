"""A job's check runs (`--gh-checks`, App mode): one per project and command, beside the commit statuses.

Each is created `queued` once the job knows its projects, set `in_progress` with the job page as its
details when the project's turn comes, and completed with the result: `success`, `failure`,
`neutral` (a plan with no changes, or a project waiting for another pull request's lock),
`skipped` (nothing to do: a policy check of a plan that failed) or `cancelled`. A plan's summary is
its summary line, its text the output (cut at a line, with a pointer to the job page, past GitHub's
65,535 characters), and terraform's diagnostics become annotations on the files and lines they
name; a successful plan's run carries the Apply button. A policy check's run (`atlas/policy_check:
…`) says which sets passed, failed or were approved, as the policy check comment does.
Check runs report; they never decide: a failure to write one is logged and the job goes on.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from atlas.commands.context import CommandContext
from atlas.github.checks import (
    APPLY,
    APPLY_ACTION,
    PLAN,
    POLICY_CHECK,
    CheckAction,
    CheckConclusion,
    CheckOutput,
    CheckRuns,
    CheckStatus,
    ProjectCheck,
    annotations_from_diagnostics,
    diagnostics_from_json_lines,
    fenced,
)
from atlas.models import Job, Project, ProjectResult, ProjectStatus, VCSHost
from atlas.policy.approvals import PolicyStanding, SetStanding
from atlas.render.policy_check import render_policy_check_comment
from atlas.runtime.joblog import JobLog
from atlas.runtime.sandbox import RunScope
from atlas.vcs import VCSError

log = logging.getLogger(__name__)

CheckRunsFor = Callable[[str], CheckRuns]
"""The check runs API of a repository (`OWNER/NAME`), as the App's installation there."""

_HUMAN_DIAGNOSTIC = re.compile(
    r"^(?:│ )?(?P<severity>Error|Warning): (?P<summary>.+)\n(?:(?:│)?\s*\n)*(?:│ )?\s+on (?P<file>[^\s]+) line "
    r"(?P<line>\d+)",
    re.M,
)


class JobChecks:
    """The check runs of one job's projects; every method is a no-op without `--gh-checks`."""

    def __init__(self, job: Job, ctx: CommandContext, command: str, head_sha: str | None = None) -> None:
        """Runs on `head_sha` (the merge commit, for an apply on merge), else on the pull request's head."""
        self.job, self.ctx, self.command = job, ctx, command
        self.head_sha = head_sha or job.pull.head_sha
        self._runs: dict[Project, int] = {}
        self._completed: set[Project] = set()
        self._lock = threading.Lock()
        self._api: CheckRuns | None = None
        # Check runs are GitHub's; a GitLab merge request has its commit statuses only.
        if ctx.checks is not None and job.pull.repo.vcs is VCSHost.GITHUB:
            try:
                self._api = ctx.checks(job.pull.repo.full_name)
            except VCSError as error:
                log.warning("no check runs for this job: %s", error)

    @staticmethod
    def check_for(command: str, project: Project) -> ProjectCheck:
        return ProjectCheck(command=command, dir=project.dir, workspace=project.workspace,
                            project_name=project.name)

    def queue(self, projects: Iterable[Project]) -> None:
        """A `queued` run for each project (the job knows them now)."""
        for project in projects:

            def create(api: CheckRuns, project: Project = project) -> None:
                view = api.create(self.job.pull.repo.full_name, self.check_for(self.command, project),
                                  self.head_sha, details_url=self.ctx.job_url(self.job.id))
                with self._lock:
                    self._runs[project] = view.id

            self._write(project, create)

    def start(self, project: Project) -> None:
        run_id = self._run_id(project)
        if run_id is not None:
            self._write(project, lambda api: api.start(self.job.pull.repo.full_name, run_id,
                                                       details_url=self.ctx.job_url(self.job.id)))

    def complete(self, result: ProjectResult, annotations_from: tuple[Path, JobLog] | None = None) -> None:
        """Complete the project's run with `result`; a failed plan's diagnostics (read in the working
        copy `annotations_from` names) become annotations."""
        if self._run_id(result.project) is None:
            return
        conclusion, title = _conclusion(result, self.command)
        job_url = self.ctx.job_url(self.job.id)
        summary = (result.summary.line if result.summary else (result.error or title).splitlines()[0])
        summary += f"\n\nThe job's page: {job_url}"
        body = result.output or result.error or ""
        diagnostics: list[dict[str, Any]] = []
        if not result.ok and result.status is ProjectStatus.FAILED:
            diagnostics = diagnostics_of(self.ctx, result, annotations_from)
        output = CheckOutput(
            title=title, summary=summary, text=fenced(body, job_url=job_url) if body else None,
            annotations=tuple(annotations_from_diagnostics(diagnostics, result.project.dir)),
        )
        actions = (APPLY_ACTION,) if self.command == PLAN and conclusion is CheckConclusion.SUCCESS else ()
        self._finish(result.project, conclusion, output, actions)

    def complete_policy_check(self, project: Project, standing: PolicyStanding) -> None:
        """Complete the project's policy check run: success when its policies let it be applied."""
        job_url = self.ctx.job_url(self.job.id)
        sets = standing.sets
        if standing.allows_apply:
            conclusion = CheckConclusion.SUCCESS
            title = "Policies approved" if any(s.approved for s in sets) else "Policies passed"
        else:
            conclusion = CheckConclusion.FAILURE
            title = f"{len(standing.blocking)} of {len(sets)} policy sets block the apply"
        lines = [f"- {_set_line(s)}" for s in sets]
        summary = "\n".join([*lines, "", f"The job's page: {job_url}"]).strip()
        text = render_policy_check_comment([(project, standing)], command_prefix=self.ctx.settings.comment_prefix[0],
                                           job_url=job_url, head_sha=self.job.pull.head_sha)
        self._finish(project, conclusion, CheckOutput(title=title, summary=summary, text=text))

    def retire_apply_button(self, project: Project) -> None:
        """Take the Apply button off the project's latest plan run: its plan is applied, there is none to press."""
        repo, name = self.job.pull.repo.full_name, self.check_for(PLAN, project).name

        def retire(api: CheckRuns) -> None:
            for run in api.for_ref(repo, self.head_sha, check_name=name):
                if run.project is not None:
                    api.update(repo, run.id, actions=())

        self._write(project, retire)

    def conclude(self, project: Project, conclusion: CheckConclusion, title: str, summary: str) -> None:
        """Complete the project's run with `conclusion`, for an outcome that is no command's result."""
        job_url = self.ctx.job_url(self.job.id)
        self._finish(project, conclusion, CheckOutput(title=title, summary=f"{summary}\n\nThe job's page: {job_url}"))

    def skip(self, project: Project, why: str) -> None:
        """Complete the project's run as `skipped`, saying `why`."""
        self._finish(project, CheckConclusion.SKIPPED,
                     CheckOutput(title=f"{_label(self.command)} skipped", summary=why))

    def skip_rest(self, why: str) -> None:
        """Complete as `skipped` the runs the job has not completed."""
        for project in self._open():
            self.skip(project, why)

    def cancel_rest(self) -> None:
        """Complete as `cancelled` the runs of projects the job did not get to."""
        output = CheckOutput(title=f"{_label(self.command)} cancelled", summary="The job was cancelled.")
        for project in self._open():
            self._finish(project, CheckConclusion.CANCELLED, output)

    def _finish(self, project: Project, conclusion: CheckConclusion, output: CheckOutput,
                actions: tuple[CheckAction, ...] = ()) -> None:
        run_id = self._run_id(project)
        if run_id is None:
            return
        with self._lock:
            self._completed.add(project)
        job_url = self.ctx.job_url(self.job.id)
        self._write(project, lambda api: api.complete(
            self.job.pull.repo.full_name, run_id, conclusion, output, actions=actions, details_url=job_url))

    def _open(self) -> list[Project]:
        with self._lock:
            return [p for p in self._runs if p not in self._completed]

    def _run_id(self, project: Project) -> int | None:
        with self._lock:
            return self._runs.get(project)

    def _write(self, project: Project, action: Callable[[CheckRuns], object]) -> None:
        if self._api is None:
            return
        try:
            action(self._api)
        except VCSError as error:
            log.warning("could not update the %s check run of %s: %s", self.command, project.label, error)


def cancel_interrupted(ctx: CommandContext, job: Job, why: str) -> None:
    """Complete as `cancelled` the check runs an interrupted job left open (those whose details are its job page),
    so that none stays in progress for ever."""
    pull = job.pull
    if ctx.checks is None or pull.repo.vcs is not VCSHost.GITHUB or not pull.head_sha:
        return
    job_url = ctx.job_url(job.id)
    try:
        api = ctx.checks(pull.repo.full_name)
        for run in api.for_ref(pull.repo.full_name, pull.head_sha, every=True):
            if run.project is None or run.status is CheckStatus.COMPLETED or run.details_url != job_url:
                continue
            api.complete(pull.repo.full_name, run.id, CheckConclusion.CANCELLED, CheckOutput(
                title=f"{_label(run.project.command)} interrupted",
                summary=f"{why}. Run it again with Re-run, or with a comment.\n\nThe job's page: {job_url}"))
    except VCSError as error:
        log.warning("could not complete the check runs of interrupted job %s: %s", job.id, error)


def _label(command: str) -> str:
    return "Policy check" if command == POLICY_CHECK else command.capitalize()


def _set_line(set_standing: SetStanding) -> str:
    name = f"`{set_standing.result.policy_set}`"
    if set_standing.blocking:
        return set_standing.describe()
    if set_standing.approved:
        return f"{name} failed, approved by {', '.join('@' + u for u in set_standing.approvers)}"
    return f"{name} passed"


def _conclusion(result: ProjectResult, command: str) -> tuple[CheckConclusion, str]:
    if result.status is ProjectStatus.LOCKED:
        return CheckConclusion.NEUTRAL, "Waiting for the lock"
    if result.status is ProjectStatus.SKIPPED:
        return CheckConclusion.NEUTRAL, f"{_label(command)} skipped"
    if not result.ok:
        return CheckConclusion.FAILURE, f"{_label(command)} failed"
    if command == PLAN and result.summary is not None and not result.summary.has_changes:
        return CheckConclusion.NEUTRAL, "No changes"
    if command == APPLY:
        return CheckConclusion.SUCCESS, "Applied"
    return CheckConclusion.SUCCESS, result.summary.line if result.summary else "Planned"


def diagnostics_of(ctx: CommandContext, result: ProjectResult,
                   where: tuple[Path, JobLog] | None) -> list[dict[str, Any]]:
    """terraform's diagnostics for a failed run: `terraform validate -json` in the working copy, else
    those its output prints (`Error: … on FILE line N`), in `-json`'s shape."""
    if where is not None:
        workdir, joblog = where
        run = ctx.terraform.run(["validate", "-json", "-no-color"], workdir / result.project.dir, joblog,
                                echo=False, scope=RunScope(readable=(workdir,)))
        found = diagnostics_from_json_lines(run.output.splitlines() or [run.output])
        if not found:
            found = diagnostics_from_json_lines([run.output.replace("\n", " ")])
        if found:
            return found
    return [
        {"severity": m["severity"].lower(), "summary": m["summary"].strip(),
         "range": {"filename": m["file"].rstrip(","), "start": {"line": int(m["line"])},
                   "end": {"line": int(m["line"])}}}
        for m in _HUMAN_DIAGNOSTIC.finditer(result.output or result.error or "")
    ]

