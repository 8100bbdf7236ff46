"""The comment that reports a policy check: per project and policy set, the verdict, its failures and warnings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from atlas.models import Project
from atlas.policy.approvals import PolicyStanding, SetStanding, describe_owners
from atlas.policy.results import PolicyOutcome
from atlas.render.comments import footer, project_title, render_template

_MAX_MESSAGES = 50
"""Per set and kind: a plan that breaks a rule 500 times is told so, not in 500 lines."""


@dataclass(frozen=True)
class _SetSection:
    name: str
    icon: str
    verdict: str
    approvals: str
    failures: list[str]
    warnings: list[str]
    errors: list[str]

    @classmethod
    def of(cls, standing: SetStanding) -> _SetSection:
        result = standing.result
        if result.outcome is PolicyOutcome.PASSED:
            icon, verdict = ("⚠️", "passed with warnings") if result.warnings else ("✅", "passed")
        elif result.outcome is PolicyOutcome.FAILED:
            icon, verdict = "❌", f"failed ({_count(len(result.failures), 'failure')})"
        else:
            icon, verdict = "❌", "could not be evaluated"
        approvals = ""
        if not result.passed:
            who = ", ".join(f"@{user}" for user in standing.approvers)
            approvals = (f", approved by {who}" if standing.approved
                         else f", {len(standing.approvers)}/{standing.required} approvals"
                              + (f" (by {who})" if who else "")
                              + f"; can approve: {describe_owners(standing.owners)}")
        return cls(
            name=result.policy_set, icon=icon, verdict=verdict, approvals=approvals,
            failures=_capped([_inline(m.message) for m in result.failures]),
            warnings=_capped([_inline(m.message) for m in result.warnings]),
            errors=_capped([_inline(str(p)) for p in result.errors]),
        )


@dataclass(frozen=True)
class _ProjectSection:
    title: str
    sets: list[_SetSection]
    blocking: str
    passed: bool


def render_policy_check_comment(
    checks: Sequence[tuple[Project, PolicyStanding]],
    *,
    command_prefix: str = "atlas",
    job_url: str | None = None,
    head_sha: str = "",
) -> str:
    sections = []
    for project, standing in checks:
        blocking = ""
        if standing.blocking:
            names = ", ".join(f"`{s.result.policy_set}`" for s in standing.blocking)
            blocking = (f"**Apply is blocked** by {names}: an owner can approve with "
                        f"`{command_prefix} approve_policies`, or push a change that passes.")
        sections.append(_ProjectSection(
            title=project_title(project), sets=[_SetSection.of(s) for s in standing.sets], blocking=blocking,
            passed=standing.allows_apply))
    return render_template(
        "policy_check.md.j2", sections=sections, passed_count=sum(1 for s in sections if s.passed),
        footer=footer(head_sha, job_url))


def _inline(text: str) -> str:
    """One list item: a policy's message on one line, its backticks unable to open a code span across items."""
    return " ".join(text.split()).replace("`", "'")


def _capped(messages: list[str]) -> list[str]:
    if len(messages) <= _MAX_MESSAGES:
        return messages
    return [*messages[:_MAX_MESSAGES], f"… and {len(messages) - _MAX_MESSAGES} more (see the job log)"]


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"
