"""atlas's command line: `atlas COMMAND`, one module per subcommand under `atlas.cli`.

`catalog.SUMMARIES` lists the subcommands in the order `atlas --help` shows them; `main` parses the
command line and runs the one named. Only that subcommand's module is imported (and `atlas --help`
imports none), so a command starts with what it needs: `atlas version` without pydantic, the
settings model, flask or the queue.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from atlas import __version__
from atlas.cli.catalog import SUMMARIES, module_name
from atlas.cli.subcommand import EXIT_USAGE, ArgumentParser, HelpFormatter, Subcommand
from atlas.config.atlantis_keys import Where, refusal, unread_key
from atlas.config.setting_names import SettingsError
from atlas.runtime.sandbox import mark_undumpable

SUBCOMMANDS: dict[str, Subcommand] = {}
"""The subcommands loaded so far, by name (`load_subcommand` fills it)."""


def load_subcommand(name: str) -> Subcommand:
    """The `SUBCOMMAND` of `atlas.cli.NAME`, imported on first use."""
    if name not in SUBCOMMANDS:
        SUBCOMMANDS[name] = importlib.import_module(module_name(name)).SUBCOMMAND
    return SUBCOMMANDS[name]


def named_command(argv: Sequence[str]) -> str | None:
    """The subcommand a command line names: its first word that is not an option (atlas's own take no value)."""
    return next((word for word in argv if not word.startswith("-")), None)


def build_parser(argv: Sequence[str] | None = None) -> ArgumentParser:
    """The parser of the command line `argv`: the arguments of the subcommand it names, the others listed.

    Without `argv`, every subcommand's arguments (importing every subcommand).
    """
    wanted = set(SUMMARIES) if argv is None else {named_command(argv)}
    parser = ArgumentParser(
        prog="atlas",
        description="atlas: Terraform pull-request automation for GitHub.",
        formatter_class=HelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"atlas {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", dest="command", required=True)
    for name, summary in SUMMARIES.items():
        if name not in wanted:
            commands.add_parser(name, help=summary, add_help=False)
            continue
        subcommand = load_subcommand(name)
        subparser = commands.add_parser(
            subcommand.name,
            help=subcommand.summary,
            description=subcommand.description or subcommand.summary,
            epilog=subcommand.epilog,
            formatter_class=HelpFormatter,
            allow_abbrev=False,
        )
        subparser.set_defaults(run=subcommand.run, parser=subparser)
        subcommand.add_arguments(subparser)
    return parser


def unknown_arguments(unknown: Sequence[str]) -> str:
    """What is wrong with arguments atlas does not take: for an Atlantis flag atlas refuses, or takes under
    another name, the key table's reason; for anything else, argparse's words."""
    refused = []
    for argument in unknown:
        name = argument[2:].partition("=")[0] if argument.startswith("--") else ""
        key = unread_key(Where.SERVER, name) if name else None
        if key is not None:
            refused.append(refusal(key))
    if not refused:
        return f"unrecognized arguments: {' '.join(unknown)}"
    others = [a for a in unknown if a.startswith("-") and unread_key(Where.SERVER, a[2:].partition("=")[0]) is None]
    return "; ".join(refused + ([f"unrecognized arguments: {' '.join(others)}"] if others else []))


def main(argv: Sequence[str] | None = None) -> int:
    # Before any secret is read: other processes of this user must not read them from /proc.
    mark_undumpable()
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # reported by the subcommand's parser, so that the error points at its --help
        getattr(args, "parser", parser).error(unknown_arguments(unknown))
    try:
        status: int = args.run(args)
    except SettingsError as error:
        print(f"atlas: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    return status
