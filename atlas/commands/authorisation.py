"""Who may run comment commands: `--allow-users`/`--allow-teams`, else write permission; then, per
command, `--gh-team-allowlist` (GitHub) or `--gitlab-group-allowlist` (GitLab).

The first gate says who may talk to atlas on a repository at all. The team allowlist, when set,
further says which commands each team may run (`platform:plan, platform-leads:apply`): a user
passes it when `*` or one of the teams paired with the command counts them as a member. On GitHub
teams are slugs in the repository owner's organisation, or `ORG/SLUG`; on GitLab they are groups'
full paths (`platform/infra`), as Atlantis names them.
"""

from __future__ import annotations

import fnmatch

from atlas.commands.context import CommandContext
from atlas.config.team_rights import ANY, TeamRight, teams_for
from atlas.models import CommandName, Job, VCSHost
from atlas.vocabulary import spelling

OPEN_TO_ANYONE = frozenset({CommandName.HELP, CommandName.VERSION, CommandName.REFUSE})
"""Commands that read nothing and change nothing, so anyone who can comment may ask."""


def refusal_for(job: Job, ctx: CommandContext) -> str | None:
    """The polite refusal for a command its author may not run, or None when they may."""
    user = job.requested_by or ""
    if job.command in OPEN_TO_ANYONE:
        return None
    settings = ctx.settings
    if not is_allowed(user, job, ctx):
        if settings.allow_users or settings.allow_teams:
            who = "the users and teams this atlas server allows (`--allow-users`, `--allow-teams`)"
        else:
            who = f"people with write permission on {job.pull.repo.full_name}"
        return (
            f"Sorry @{user}, `{job.command}` on this repository can only be run by {who}. "
            "Ask someone who can to run it, or ask an administrator for access."
        )
    gitlab = job.pull.repo.vcs is VCSHost.GITLAB
    rights = settings.team_rights(job.pull.repo.vcs)
    if not rights:
        return None
    command = spelling(job.command)
    allowed_teams = teams_for(rights, command)
    if ANY in allowed_teams or any(_is_member(ctx, job, team, user) for team in allowed_teams):
        return None
    kind, flag = ("group", "--gitlab-group-allowlist") if gitlab else ("team", "--gh-team-allowlist")
    teams = ", ".join(f"`{team}`" for team in allowed_teams) or f"no {kind}"
    may = _commands_user_may_run(ctx, job, rights, user)
    also = f" You may run: {', '.join(f'`{name}`' for name in may)}." if may else ""
    return (
        f"Sorry @{user}, `{command}` needs membership of a {kind} this atlas server allows to run it "
        f"(`{flag}`: {teams}), and you are in none of them.{also} "
        f"Ask a member of one of those {kind}s to run it, or ask an administrator for access."
    )


def is_allowed(user: str, job: Job, ctx: CommandContext) -> bool:
    settings = ctx.settings
    if not (settings.allow_users or settings.allow_teams):
        return ctx.vcs.permission(job.pull.repo, user).can_write
    if any(fnmatch.fnmatchcase(user.lower(), glob.lower()) for glob in settings.allow_users):
        return True
    for team in settings.allow_teams:
        org, _, slug = team.partition("/")
        if slug and ctx.vcs_for(job.pull.repo).is_team_member(org, slug, user):
            return True
    return False


def _is_member(ctx: CommandContext, job: Job, team: str, user: str) -> bool:
    if job.pull.repo.vcs is VCSHost.GITLAB:
        return ctx.vcs_for(job.pull.repo).is_team_member(team, "", user)  # a group's full path
    org, slash, slug = team.partition("/")
    if not slash:
        org, slug = job.pull.repo.owner, team
    return ctx.vcs_for(job.pull.repo).is_team_member(org, slug, user)


def _commands_user_may_run(ctx: CommandContext, job: Job, rights: tuple[TeamRight, ...], user: str) -> list[str]:
    may: list[str] = []
    for right in rights:
        if right.command in may or right.command == ANY:
            continue
        if right.any_team or _is_member(ctx, job, right.team, user):
            may.append(right.command)
    return may
