"""Per-project answers the commands need: apply-on-merge mode, apply order, dependencies.

Each answer combines the server's settings with the repository's config where it has one.
"""

from __future__ import annotations

from collections.abc import Sequence

from atlas.context import CommandContext
from atlas.models import Project, PullRequest


def apply_on_merge_mode(ctx: CommandContext, pull: PullRequest, project: Project) -> str:
    """`false`, `true`, `always` or `only` for this project of this pull request."""
    return ctx.settings.apply_on_merge


def ordered_for_apply(ctx: CommandContext, pull: PullRequest, projects: Sequence[Project]) -> list[Project]:
    """Projects in the order they must apply (execution order groups, then dependencies first)."""
    return list(projects)


def depends_on(ctx: CommandContext, pull: PullRequest, project: Project) -> list[Project]:
    """The projects this project's apply waits for."""
    return []
