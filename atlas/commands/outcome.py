"""How a command ended, as the job record keeps it."""

from __future__ import annotations

from dataclasses import dataclass

from atlas.models import JobStatus


@dataclass(frozen=True)
class CommandOutcome:
    status: JobStatus
    description: str
