"""The reaction atlas puts on a comment command, so its author sees it was taken up.

The server's `--emoji-reaction` goes on when a job starts, before anything else; a repository's own
`emoji_reaction` (atlantis.yaml) can only be known once the command has read that config from the
pull request, so it is added then. `none` puts no reaction. Losing a reaction is harmless: it is logged.
"""

from __future__ import annotations

import logging

from atlas.commands.context import CommandContext
from atlas.config.repo_settings import RepoSettings
from atlas.config.setting_types import NO_REACTION
from atlas.models import Job
from atlas.vcs import VCSError

log = logging.getLogger(__name__)


def acknowledge(job: Job, ctx: CommandContext) -> None:
    """The server's reaction on the job's comment (none for a job no comment asked for)."""
    _react(job, ctx, ctx.settings.emoji_reaction)


def react_for_repository(job: Job, ctx: CommandContext, repo: RepoSettings) -> None:
    """The repository's `emoji_reaction` on the job's comment, when it names one other than the server's."""
    config = repo.effective.repo_config
    reaction = config.emoji_reaction if config is not None else None
    if reaction is not None and reaction != ctx.settings.emoji_reaction:
        _react(job, ctx, reaction)


def _react(job: Job, ctx: CommandContext, reaction: str) -> None:
    if job.comment_id is None or reaction == NO_REACTION:
        return
    try:
        ctx.vcs.react(job.pull.repo, job.comment_id, reaction, job.pull.number)
    except VCSError as error:
        log.warning("could not react to comment %s: %s", job.comment_id, error)
