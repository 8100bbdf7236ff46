"""Who may run comment commands: `--allow-users`/`--allow-teams`, else write permission."""

from __future__ import annotations

import fnmatch

from atlas.commands.context import CommandContext
from atlas.models import CommandName, Job

OPEN_TO_ANYONE = frozenset({CommandName.HELP, CommandName.VERSION, CommandName.REFUSE})
"""Commands that read nothing and change nothing, so anyone who can comment may ask."""


def refusal_for(job: Job, ctx: CommandContext) -> str | None:
    """The polite refusal for a command its author may not run, or None when they may."""
    user = job.requested_by or ""
    if job.command in OPEN_TO_ANYONE or is_allowed(user, job, ctx):
        return None
    settings = ctx.settings
    if settings.allow_users or settings.allow_teams:
        who = "the users and teams this atlas server allows (`--allow-users`, `--allow-teams`)"
    else:
        who = f"people with write permission on {job.pull.repo.full_name}"
    return (
        f"Sorry @{user}, `{job.command}` on this repository can only be run by {who}. "
        "Ask someone who can to run it, or ask an administrator for access."
    )


def is_allowed(user: str, job: Job, ctx: CommandContext) -> bool:
    settings = ctx.settings
    if not (settings.allow_users or settings.allow_teams):
        return ctx.vcs.permission(job.pull.repo, user).can_write
    if any(fnmatch.fnmatchcase(user.lower(), glob.lower()) for glob in settings.allow_users):
        return True
    for team in settings.allow_teams:
        org, _, slug = team.partition("/")
        if slug and ctx.vcs.is_team_member(org, slug, user):
            return True
    return False
