"""Whether a project's policy check lets it be applied: its results, weighed against owners' approvals.

A set that failed (or could not be evaluated) blocks the project until enough of the people who may
approve it have: `approve_count` distinct approvers, each an owner (top-level or of the set, by
login or team), and never the pull request's author when the set has `prevent_self_approve`. An
approval counts only for the head commit it was given at: a new plan clears it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from atlas.policy.results import PolicyOutcome, PolicySetResult
from atlas.policy.sets import PolicyOwners, PolicySets


class PolicyApproval(BaseModel):
    """One owner's approval of one failing policy set of one project, at one head commit."""

    model_config = ConfigDict(frozen=True)

    policy_set: str
    user: str
    head_sha: str


@dataclass(frozen=True)
class SetStanding:
    """How one policy set stands for one project: its result and the approvals it has."""

    result: PolicySetResult
    approvers: tuple[str, ...]
    """Distinct users whose approval counts (empty for a set that passed)."""
    required: int
    owners: PolicyOwners

    @property
    def blocking(self) -> bool:
        return not self.result.passed and len(self.approvers) < self.required

    @property
    def approved(self) -> bool:
        return not self.result.passed and not self.blocking

    def describe(self) -> str:
        """`name` (failed, 0/1 approvals; owners: …)."""
        kind = "could not be evaluated" if self.result.outcome is PolicyOutcome.ERROR else "failed"
        return (f"`{self.result.policy_set}` ({kind}, {len(self.approvers)}/{self.required} approvals; "
                f"can approve: {describe_owners(self.owners)})")


@dataclass(frozen=True)
class PolicyStanding:
    """A project's policy verdict with approvals applied."""

    sets: tuple[SetStanding, ...]

    @property
    def blocking(self) -> tuple[SetStanding, ...]:
        return tuple(s for s in self.sets if s.blocking)

    @property
    def allows_apply(self) -> bool:
        return not self.blocking


def standing(results: Sequence[PolicySetResult], approvals: Iterable[PolicyApproval], policies: PolicySets,
             *, head_sha: str, pull_author: str) -> PolicyStanding:
    """Weigh `results` (one per configured set) against the approvals recorded at `head_sha`.

    Who may approve (owners, teams) is checked when an approval is recorded (`atlas approve_policies`);
    here each approver counts once, and the author never for a set that prevents self-approval.
    """
    current = [a for a in approvals if a.head_sha == head_sha]
    sets: list[SetStanding] = []
    for result in results:
        policy_set = policies.get(result.policy_set)
        if policy_set is None:
            # A set removed from repos.yaml since the check: it is no longer in force.
            continue
        users: list[str] = []
        if not result.passed:
            for approval in current:
                if approval.policy_set != result.policy_set:
                    continue
                if approval.user.casefold() in (u.casefold() for u in users):
                    continue
                if policy_set.prevent_self_approve and approval.user.casefold() == pull_author.casefold():
                    continue
                users.append(approval.user)
        sets.append(SetStanding(result=result, approvers=tuple(users), required=policy_set.required_approvals,
                                owners=policies.approvers(policy_set)))
    return PolicyStanding(sets=tuple(sets))


def describe_owners(owners: PolicyOwners) -> str:
    """`@alice, @bob or a member of team platform`; who may approve, for refusals."""
    people = [f"@{user}" for user in owners.users] + [f"a member of team `{team}`" for team in owners.teams]
    if not people:
        return "nobody (add owners to the set in repos.yaml)"
    if len(people) == 1:
        return people[0]
    return ", ".join(people[:-1]) + " or " + people[-1]


def refusal(project_label: str, blocking: Sequence[SetStanding], *, command_prefix: str = "atlas") -> str:
    """Why a project cannot be applied, naming the failing sets and who can approve them."""
    lines = [f"- {s.describe()}" for s in blocking]
    return (f"{project_label} failed its policy check, so it cannot be applied:\n\n" + "\n".join(lines)
            + f"\n\nAn owner can comment `{command_prefix} approve_policies` to approve the failures, or push a "
            "change that passes the policies.")
