"""The latest drift check of each project, and the scheduler's slots that one process claims."""

from __future__ import annotations

from typing import Protocol

from atlas.models import DriftRecord


class DriftStore(Protocol):
    def save_drift(self, record: DriftRecord) -> None:
        """Keep the latest drift check of a project, replacing the one before."""
        ...

    def drift_records(self, repo: str | None = None) -> list[DriftRecord]:
        """The latest drift check of every project (of one repository), by repository, dir and workspace."""
        ...

    def claim_slot(self, key: str, ttl_seconds: float) -> bool:
        """True for the one caller, across processes, that claims `key` before it expires (a scheduled slot)."""
        ...
