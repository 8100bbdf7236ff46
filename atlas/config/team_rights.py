"""Per-command team rights: `--gh-team-allowlist "platform:plan, platform-leads:apply"`, as Atlantis spells it.

Each entry is `TEAM:COMMAND`; `*` stands for any team or any command. A user may run a command
when one of their teams (or `*`) is paired with it. Pure: the caller says which teams a user is in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

ANY = "*"

ATLANTIS_COMMANDS = {"state": "state rm"}
"""Atlantis's command names that atlas spells differently (Atlantis's `state` covers `state rm`)."""


@dataclass(frozen=True)
class TeamRight:
    """One `TEAM:COMMAND` entry: the team's slug (or `ORG/SLUG`, or `*`) and the command (or `*`)."""

    team: str
    command: str

    def __str__(self) -> str:
        return f"{self.team}:{self.command}"

    @property
    def any_team(self) -> bool:
        return self.team == ANY

    def covers(self, command: str) -> bool:
        return self.command == ANY or self.command == command


def parse_team_rights(entries: Iterable[str], known_commands: Sequence[str]) -> tuple[TeamRight, ...]:
    """The entries as rights; ValueError naming the first that is not `TEAM:COMMAND` with a known command."""
    rights = []
    for entry in entries:
        team, colon, command = entry.strip().rpartition(":")
        team, command = team.strip(), " ".join(command.lower().replace("_", " ").split())
        command = ATLANTIS_COMMANDS.get(command, command)
        if not colon or not team or not command:
            raise ValueError(f'entry "{entry.strip()}" is not TEAM:COMMAND; write it like platform:plan or *:plan')
        if command != ANY and command not in known_commands:
            raise ValueError(
                f'entry "{entry.strip()}" names the unknown command "{command}"; known: {", ".join(known_commands)} '
                "or * for any"
            )
        rights.append(TeamRight(team, command))
    return tuple(rights)


def teams_for(rights: Sequence[TeamRight], command: str) -> tuple[str, ...]:
    """The teams `rights` let run `command` (`*` first when any team may)."""
    teams = [right.team for right in rights if right.covers(command)]
    return tuple(dict.fromkeys(sorted(teams, key=lambda team: team != ANY)))


def commands_for(rights: Sequence[TeamRight], teams: Iterable[str]) -> tuple[str, ...]:
    """The commands members of `teams` may run (for the refusal's "you may run")."""
    mine = {team.lower() for team in teams}
    return tuple(dict.fromkeys(right.command for right in rights if right.any_team or right.team.lower() in mine))
