"""What drift detection tells the configured webhooks (`--webhooks`): each check's findings (event `drift`)
and each remediation atlas ran (event `remediation`). Queued on the notifier: a slow or dead receiver
never holds up or fails a check."""

from __future__ import annotations

from collections.abc import Sequence

from atlas.commands.context import CommandContext
from atlas.drift.targets import DriftTarget
from atlas.models import DriftRecord, DriftStatus, Project, Remediation, RemediationStatus, Repo, new_id
from atlas.notify import DriftedProject, DriftNotification, ProjectRef, RemediationNotification, RepoRef


def notify_check(ctx: CommandContext, repo: Repo, records: Sequence[DriftRecord]) -> None:
    """The check of `repo`'s projects at its default branch: in sync, drifted (and by how much) or failed."""
    if not records:
        return
    ctx.notifier.notify(DriftNotification(
        repo=_repo_ref(repo),
        branch=repo.default_branch,
        check_id=new_id(),
        projects=tuple(_drifted(record) for record in records),
        url=f"{ctx.settings.atlas_url}/drift",
    ))


def notify_remediation(ctx: CommandContext, target: DriftTarget, remediation: Remediation) -> None:
    """A remediation that ran (applied or failed); one that waited for a lock or was refused did nothing."""
    if remediation.status not in (RemediationStatus.APPLIED, RemediationStatus.FAILED):
        return
    applied = remediation.status is RemediationStatus.APPLIED
    closing = [line.strip() for line in remediation.output.splitlines() if line.strip().startswith("Apply complete!")]
    if applied:
        summary = closing[-1] if closing else "Apply complete!"
    else:
        summary = next(iter(remediation.detail.strip().splitlines()), "terraform apply failed")
    ctx.notifier.notify(RemediationNotification(
        repo=_repo_ref(target.repo),
        branch=target.repo.default_branch,
        project=_project_ref(target.project),
        action="apply",
        success=applied,
        url=f"{ctx.settings.atlas_url}/drift",
        summary=summary,
    ))


def _drifted(record: DriftRecord) -> DriftedProject:
    summary = record.summary
    failed = record.status is DriftStatus.FAILED
    return DriftedProject(
        project=_project_ref(record.project),
        has_drift=record.drift_found,
        to_add=summary.add if summary else 0,
        to_change=summary.change if summary else 0,
        to_destroy=summary.destroy if summary else 0,
        summary=summary.line if summary and not failed else "",
        error=(record.error or "the check failed").strip().splitlines()[0] if failed else None,
    )


def _repo_ref(repo: Repo) -> RepoRef:
    return RepoRef(full_name=repo.full_name, host=repo.allowlist_id.partition("/")[0], url=repo.html_url)


def _project_ref(project: Project) -> ProjectRef:
    return ProjectRef(dir=project.dir, workspace=project.workspace, name=project.name)
