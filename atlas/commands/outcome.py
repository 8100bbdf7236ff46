"""How a command ended: the job's outcome, and each project's phase, as the state store keeps them."""

from __future__ import annotations

from dataclasses import dataclass

from atlas.commands.context import CommandContext
from atlas.models import Job, JobStatus, Project, utcnow
from atlas.stores.pulls import ProjectPhase, ProjectState


@dataclass(frozen=True)
class CommandOutcome:
    status: JobStatus
    description: str


def record_phase(ctx: CommandContext, job: Job, project: Project, phase: ProjectPhase, detail: str,
                 *, head_sha: str | None = None) -> None:
    """Where `project` of the job's pull request stands now (at `head_sha`, by default its head)."""
    pull = job.pull
    ctx.state.set_project_state(pull.repo.key, pull.number, ProjectState(
        project=project, phase=phase, head_sha=head_sha or pull.head_sha, job_id=job.id,
        detail=detail.splitlines()[0] if detail else "", updated_at=utcnow(),
    ))
