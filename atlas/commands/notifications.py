"""What a command tells the configured webhooks (`--webhooks`): each project's apply, with its result."""

from __future__ import annotations

from atlas.commands.context import CommandContext
from atlas.models import Job, ProjectResult
from atlas.notify import ApplyNotification, ProjectRef, PullRef, RepoRef


def apply_summary(result: ProjectResult) -> str:
    """Terraform's closing line of an apply (`Apply complete! …`), or the first line of why it failed."""
    if not result.ok:
        return (result.error or "apply failed").strip().splitlines()[0] if (result.error or "").strip() else \
            "apply failed"
    lines = [line.strip() for line in result.output.splitlines() if line.strip().startswith("Apply complete!")]
    return lines[-1] if lines else "Apply complete!"


def notify_apply(ctx: CommandContext, job: Job, result: ProjectResult, *, user: str, head_sha: str = "") -> None:
    """Queue the apply's notification; it never blocks or fails the apply (the notifier sends it later)."""
    pull = job.pull
    ctx.notifier.notify(ApplyNotification(
        repo=RepoRef(full_name=pull.repo.full_name, url=pull.repo.html_url),
        pull=PullRef(number=pull.number, url=pull.html_url, base_branch=pull.base_ref, head_branch=pull.head_ref,
                     head_commit=head_sha or pull.head_sha, author=pull.author, title=pull.title),
        project=ProjectRef(dir=result.project.dir, workspace=result.project.workspace, name=result.project.name),
        user=user,
        success=result.ok,
        url=ctx.job_url(job.id),
        summary=apply_summary(result),
    ))
