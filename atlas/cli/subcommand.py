"""What every `atlas` subcommand is made of: the `Subcommand` record, the parser and its help format,
the server's settings as flags, and how a subcommand reports an error.

Each subcommand module defines one `SUBCOMMAND`: a function that adds its arguments and one that
runs it with the parsed arguments and returns the exit status. Subcommands that need settings call
`add_settings_arguments()` and `settings_from_args()`, so they share the server's flags.
"""

from __future__ import annotations

import argparse
import getpass
import re
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from atlas.config.setting_names import ALIASES, CONFIG_ENV

if TYPE_CHECKING:
    from atlas.config.settings import Settings

EXIT_USAGE = 2
"""Exit status for a wrong command line or setting, as argparse uses."""

README_SECTIONS = ("Connecting a GitHub repository", "TLS and reverse proxies")
"""The README sections `atlas server --help` points to (a test checks that they exist)."""

DOCS_POINTER = (
    "Every setting is described in config/server.example.yaml. How to create the token and the\n"
    f'webhook is in the README\'s "{README_SECTIONS[0]}" section; serving over TLS, behind a\n'
    f'proxy or not, in "{README_SECTIONS[1]}".'
)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps descriptions and epilogs as written and never splits `[env: X]` or `(default: Y)`."""

    _unbreakable = re.compile(r"\[env: [^\]]*\]|\(default: [^)]*\)")

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=34)

    def _split_lines(self, text: str, width: int) -> list[str]:

        text = " ".join(text.split())
        text = self._unbreakable.sub(lambda match: match.group().replace(" ", "\0"), text)
        lines = textwrap.wrap(text, width, break_on_hyphens=False, break_long_words=False)
        return [line.replace("\0", " ") for line in lines]


BARE_MEANS_TRUE = frozenset({"apply_on_merge"})
"""Settings that are not booleans but take true (and false) among their values, so that their bare
flag means true as a boolean's does: `--apply-on-merge` alone is `--apply-on-merge true`."""


class ArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line that points at `--help`."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


@dataclass(frozen=True)
class Subcommand:
    """One `atlas NAME` subcommand: how to add its arguments and how to run it."""

    name: str
    summary: str
    run: Callable[[argparse.Namespace], int]
    add_arguments: Callable[[argparse.ArgumentParser], None] = field(default=lambda parser: None)
    description: str | None = None
    epilog: str | None = None


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """Add a flag for every setting, grouped as in the example config, plus `--config`.

    Flags default to SUPPRESS so that only given flags override the environment and the file;
    values stay strings so that `load_settings()` reports a wrong one like any other source.
    """
    # Here, not at the top: the settings model costs over half a second to import, which only the
    # subcommands that take settings pay.
    from atlas.config.settings import Group, setting_infos

    groups = {group: parser.add_argument_group(f"{group.value} settings") for group in Group}
    aliases: dict[str, list[str]] = {}
    for alias, name in ALIASES.items():
        aliases.setdefault(name, []).append("--" + alias.replace("_", "-"))
    for info in setting_infos():
        help_text = f"{info.description} [env: {info.env}]"
        if info.shown_default is not None:
            help_text += f" (default: {info.shown_default})"
        help_text = help_text.replace("%", "%%")
        group = groups[info.group]
        flags = [info.flag, *aliases.get(info.name, [])]
        if info.is_bool or info.name in BARE_MEANS_TRUE:
            # True alone, as Atlantis's (Go) flags are: `--automerge`, `--automerge=false`, `--automerge false`.
            group.add_argument(*flags, dest=info.name, nargs="?", const="true", default=argparse.SUPPRESS,
                               metavar="true|false" if info.is_bool else info.metavar, help=help_text)
            if info.is_bool:
                group.add_argument(*(f"--no-{flag[2:]}" for flag in flags), dest=info.name, action="store_const",
                                   const="false", default=argparse.SUPPRESS, help=f"Same as {info.flag}=false.")
        else:
            group.add_argument(*flags, dest=info.name, metavar=info.metavar, default=argparse.SUPPRESS, help=help_text)
    groups[Group.SERVER].add_argument(
        "--config",
        metavar="FILE",
        type=Path,
        default=argparse.SUPPRESS,
        help=f"YAML file of settings, keyed by flag name without dashes. [env: {CONFIG_ENV}]",
    )


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The settings given by flags, `ATLAS_*` variables and the config file; SettingsError if wrong."""
    from atlas.config.settings import load_settings, setting_infos

    given = {info.name: getattr(args, info.name) for info in setting_infos() if hasattr(args, info.name)}
    return load_settings(given, config_file=getattr(args, "config", None))


def local_user() -> str:
    """Who runs this command on this host, for the audit log."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "cli"


def fail(message: str) -> int:
    print(f"atlas: error: {message}", file=sys.stderr)
    return 1


def count(number: int, singular: str, plural: str | None = None) -> str:
    return f"{number} {singular if number == 1 else plural or singular + 's'}"
