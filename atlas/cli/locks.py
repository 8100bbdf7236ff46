"""`atlas locks list|unlock`: the project locks in the data directory, and an operator's release of one."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING

from atlas.cli.catalog import SUMMARIES
from atlas.cli.subcommand import HelpFormatter, Subcommand, add_settings_arguments, local_user, settings_from_args
from atlas.logs import configure_logging
from atlas.stores.locks import LockStore, ProjectLock

if TYPE_CHECKING:
    from atlas.commands.context import CommandContext


def add_locks_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(title="actions", metavar="ACTION", dest="locks_action", required=True)
    listing = actions.add_parser(
        "list",
        help="Print the locks and who waits for them.",
        usage="%(prog)s [-h] [--json] [--data-dir DIR] [--config FILE] [any server setting]",
        description=(
            "Print every project lock in the data directory: its id, repository, project dir and\n"
            "workspace, the pull request holding it, who caused it and since when, and the pull\n"
            "requests waiting for it, first in line first."
        ),
        formatter_class=HelpFormatter,
        allow_abbrev=False,
    )
    listing.add_argument("--json", action="store_true", help="Print the locks as a JSON array instead of a table.")
    add_settings_arguments(listing)
    unlock = actions.add_parser(
        "unlock",
        help="Release one lock, handing it over to the first pull request waiting for it.",
        usage="%(prog)s [-h] LOCK_ID [--data-dir DIR] [--gh-token TOKEN] [--config FILE] [any server setting]",
        description=(
            "Release the lock LOCK_ID (as `atlas locks list` shows it). If a pull request waits for\n"
            "the project, the lock passes to it at once and the atlas server plans it. With a GitHub\n"
            "token configured, the pull request that held the lock is told in a comment."
        ),
        formatter_class=HelpFormatter,
        allow_abbrev=False,
    )
    unlock.add_argument("lock_id", metavar="LOCK_ID", help="The id of the lock, from `atlas locks list`.")
    add_settings_arguments(unlock)
    for action_parser in (listing, unlock):
        # Errors in an action's arguments point at that action's --help.
        action_parser.set_defaults(parser=action_parser)


def run_locks(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    configure_logging(settings.log_level, settings.log_format, settings.secrets())
    from atlas.bootstrap import cli_context  # loaded by the subcommands that run commands only

    database = settings.data_dir / "atlas.db"
    # Reading must not create a data directory where there is none (a mistyped --data-dir).
    ctx = cli_context(settings) if settings.redis_url is not None or database.exists() else None
    store = ctx.locks if ctx is not None else None
    if args.locks_action == "list":
        return _list_locks(store, database, as_json=args.json)
    return _unlock(ctx, database, args.lock_id)


def _list_locks(store: LockStore | None, database: Path, *, as_json: bool) -> int:
    locks = store.all() if store is not None else []
    waiting = {lock.id: store.waiting(lock.repo, lock.project) for lock in locks} if store is not None else {}
    if as_json:
        print(json.dumps([lock.model_dump(mode="json") | {"waiting": waiting[lock.id]} for lock in locks], indent=2))
        return 0
    if not locks:
        print(f"No locks in {database}.")
        return 0
    header = ("LOCK ID", "REPO", "DIR", "WORKSPACE", "PR", "USER", "SINCE", "WAITING")
    rows = [
        (
            lock.id,
            lock.repo,
            lock.project.dir,
            lock.project.workspace,
            f"#{lock.pull_number}",
            lock.user,
            _since(lock),
            ", ".join(f"#{number}" for number in waiting[lock.id]) or "-",
        )
        for lock in locks
    ]
    widths = [max(len(row[column]) for row in (header, *rows)) for column in range(len(header))]
    for row in (header, *rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def _unlock(ctx: CommandContext | None, database: Path, lock_id: str) -> int:
    """The operator's "discard plan and unlock", as the lock page's button does it."""
    from atlas.commands.unlock import LockChanged, discard_and_unlock

    try:
        if ctx is None:
            raise LockChanged
        result = discard_and_unlock(ctx, lock_id, operator=local_user(), trigger="cli")
    except LockChanged:
        print(f"atlas: error: no lock with id {lock_id!r} in {database} (see 'atlas locks list')", file=sys.stderr)
        return 1
    lock = result.lock
    print(
        f"Released the lock on {lock.repo} {lock.project.dir} (workspace {lock.project.workspace}), "
        f"held by #{lock.pull_number} ({lock.user}) since {_since(lock)}."
    )
    if result.handed_over is not None:
        heir = result.handed_over
        print(f"Handed it over to #{heir.pull_number} ({heir.user}), which was waiting for it; atlas plans it next.")
    if result.told:
        print(f"Told {lock.pull_key} in a comment.")
    elif result.comment_error is not None:
        print(f"atlas: warning: the lock is released, but telling {lock.pull_key} failed: {result.comment_error}",
              file=sys.stderr)
    else:
        print(f"No GitHub token is configured (--gh-token), so {lock.pull_key} was not told in a comment.")
    return 0


def _since(lock: ProjectLock) -> str:
    return lock.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


SUBCOMMAND = Subcommand(
    name="locks",
    summary=SUMMARIES["locks"],
    run=run_locks,
    add_arguments=add_locks_arguments,
    description=(
        "Inspect and release project locks. A pull request locks each project it plans until it\n"
        "is merged or closed; other pull requests wait for it in a queue. These commands read\n"
        "the data directory (--data-dir) directly, so they work whether or not the server runs."
    ),
    epilog=(
        "examples:\n"
        "  atlas locks list --data-dir /var/lib/atlas\n"
        "  atlas locks unlock YWNtZS9pbmZyYS9hcHAvZGVmYXVsdA --data-dir /var/lib/atlas"
    ),
)
