"""atlas's command line: `atlas COMMAND`, one module per subcommand under `atlas.cli`.

`SUBCOMMANDS` lists them in the order `atlas --help` shows them; `main` parses the command line and
runs the one named.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from atlas import __version__
from atlas.cli import config, drift, locks, policy, projects, server, version, worker
from atlas.cli.subcommand import EXIT_USAGE, ArgumentParser, HelpFormatter, Subcommand
from atlas.config.settings import SettingsError
from atlas.runtime.sandbox import mark_undumpable

SUBCOMMANDS: dict[str, Subcommand] = {
    module.SUBCOMMAND.name: module.SUBCOMMAND
    for module in (server, version, locks, worker, projects, config, drift, policy)
}
"""Every `atlas` subcommand by name; a new one is a module with a `SUBCOMMAND`, listed here."""


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="atlas",
        description="atlas: Terraform pull-request automation for GitHub.",
        formatter_class=HelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"atlas {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", dest="command", required=True)
    for subcommand in SUBCOMMANDS.values():
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


def main(argv: Sequence[str] | None = None) -> int:
    # Before any secret is read: other processes of this user must not read them from /proc.
    mark_undumpable()
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # reported by the subcommand's parser, so that the error points at its --help
        getattr(args, "parser", parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        status: int = args.run(args)
    except SettingsError as error:
        print(f"atlas: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    return status
