"""What a policy check found: per policy set, passed, failed or could not be evaluated."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class PolicyOutcome(StrEnum):
    """How one policy set judged one plan."""

    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    """The set could not be loaded or evaluated: it fails closed, like a failure."""


class PolicyProblem(BaseModel):
    """Why a policy set could not be loaded or evaluated, where atlas can tell: file (relative to
    the set's directory), line and column."""

    model_config = ConfigDict(frozen=True)

    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None

    def location(self) -> str:
        """`file:line:column` (as much of it as is known), or an empty string."""
        if self.file is None:
            return ""
        parts = [self.file] + [str(n) for n in (self.line, self.column) if n is not None]
        return ":".join(parts)

    def __str__(self) -> str:
        where = self.location()
        return f"{where}: {self.message}" if where else self.message


class PolicyMessage(BaseModel):
    """One failure (`deny`, `violation`) or warning (`warn`) a policy yielded."""

    model_config = ConfigDict(frozen=True)

    namespace: str
    rule: str
    message: str
    details: dict[str, Any] = Field(default_factory=dict)
    """The other keys of a rule that yields objects (`{"msg": ..., "resource": ...}`)."""


class PolicySetResult(BaseModel):
    """The verdict of one policy set on one plan."""

    model_config = ConfigDict(frozen=True)

    policy_set: str
    directory: str
    outcome: PolicyOutcome
    failures: tuple[PolicyMessage, ...] = ()
    warnings: tuple[PolicyMessage, ...] = ()
    errors: tuple[PolicyProblem, ...] = ()

    @property
    def passed(self) -> bool:
        return self.outcome is PolicyOutcome.PASSED


def overall_outcome(results: list[PolicySetResult]) -> PolicyOutcome:
    """A project's verdict over its policy sets: any error, else any failure, else passed."""
    outcomes = {result.outcome for result in results}
    if PolicyOutcome.ERROR in outcomes:
        return PolicyOutcome.ERROR
    if PolicyOutcome.FAILED in outcomes:
        return PolicyOutcome.FAILED
    return PolicyOutcome.PASSED
