"""Plan and apply requirements (`approved`, `mergeable`, `undiverged`): what must hold before running.

`policies_passed` is judged by the policy check (`commands.policy_check`), for applies only: named
before a plan or an import, where no policy check can have run, it is a refusal, not a pass.
"""

from __future__ import annotations

from collections.abc import Iterable

from atlas.commands.context import CommandContext
from atlas.models import PullRequest

EXPLANATIONS = {
    "approved": "the pull request needs an approving review from someone other than its author.",
    "mergeable": "GitHub says the pull request cannot be merged yet (conflicts, failing required checks or "
                 "missing reviews); fix that first.",
    "undiverged": "`{base}` has commits this pull request lacks; merge or rebase `{base}` into the branch so "
                  "the plan includes them.",
    "policies_passed": "policies judge a plan, so nothing can have passed them before a plan or an import: "
                       "the config should name `policies_passed` in `apply_requirements` only.",
}


def unmet(ctx: CommandContext, pull: PullRequest, requirements: Iterable[str],
          *, ignore_contexts: tuple[str, ...] = ()) -> list[str]:
    """A line for each requirement that does not hold, empty when all hold."""
    failures: list[str] = []
    for requirement in dict.fromkeys(requirements):
        if requirement == "approved":
            held = any(login.lower() != pull.author.lower() for login in ctx.vcs.approvals(pull.repo, pull.number))
        elif requirement == "mergeable":
            held = ctx.vcs.is_mergeable(pull.repo, pull.number, ignore_contexts=ignore_contexts)
        elif requirement == "undiverged":
            held = not ctx.working_copies.is_behind_base(pull.repo, pull.number, "default", pull.base_ref,
                                                         ctx.token_for(pull.repo))
        elif requirement == "policies_passed":
            held = False
        else:
            continue
        if not held:
            failures.append(f"**{requirement}**: " + EXPLANATIONS[requirement].format(base=pull.base_ref))
    return failures
