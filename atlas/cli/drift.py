"""`atlas drift run`: check now, in this process, whether the live infrastructure matches the default branch."""

from __future__ import annotations

import argparse
import logging
import re
from typing import TYPE_CHECKING

from atlas.cli.catalog import SUMMARIES
from atlas.cli.subcommand import (
    HelpFormatter,
    Subcommand,
    add_settings_arguments,
    count,
    fail,
    local_user,
    settings_from_args,
)
from atlas.config.settings import SettingsError, require_github_auth
from atlas.models import DriftStatus
from atlas.startup import prepare_process

if TYPE_CHECKING:
    from atlas.drift.check import RepoCheck

log = logging.getLogger(__name__)


def add_drift_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(title="actions", metavar="ACTION", dest="drift_action", required=True)
    run = actions.add_parser(
        "run",
        help="Check now whether the live infrastructure matches the default branch.",
        usage="%(prog)s [-h] [--repo OWNER/NAME] [--project PROJECT] [--config FILE] [any server setting]",
        description=(
            "Plan every drift-enabled project (repos.yaml drift: blocks, repo config overrides) at its\n"
            "repository's default branch head, report to GitHub exactly as a scheduled check does (drift\n"
            "issue, atlas/drift status), remediate where enabled, and print a summary. Takes the server's\n"
            "flags, ATLAS_* variables and config file.\n"
            "\n"
            "Exit status: 0 when everything is in sync, 2 when drift was found (remediated or not),\n"
            "1 when a check failed or could not run."
        ),
        formatter_class=HelpFormatter,
        allow_abbrev=False,
    )
    run.add_argument(
        "--repo",
        metavar="OWNER/NAME",
        action="append",
        default=[],
        help="Check this repository (repeat for more), not every repository a repos.yaml drift: block applies to.",
    )
    run.add_argument(
        "--project",
        metavar="PROJECT",
        help="Check only this project (its name, dir, or DIR/WORKSPACE), even if its drift detection is off.",
    )
    add_settings_arguments(run)
    run.set_defaults(parser=run)


def run_drift(args: argparse.Namespace) -> int:
    from atlas.config.raw import ConfigError

    bad = [name for name in args.repo if not re.fullmatch(r"[^/\s]+/[^/\s]+", name)]
    if bad:
        return fail(f"--repo takes OWNER/NAME, not {bad[0]!r}")
    try:
        settings = settings_from_args(args)
        require_github_auth(settings, "drift checks read repositories and report on GitHub")
        sandbox = prepare_process(settings)
        if sandbox.warning:
            log.warning("SECURITY: %s", sandbox.warning)
        from atlas.bootstrap import cli_context  # loaded by the subcommands that run commands only

        ctx = cli_context(settings)
    except (SettingsError, ConfigError) as error:
        # Not the usage status 2, which here means that drift was found.
        return fail(str(error))
    from atlas.drift.check import exit_code, run_checks

    checks = run_checks(ctx, repos=args.repo, project=args.project, trigger="cli", user=local_user())
    if not checks:
        print("No repository has drift detection on: give a repos.yaml entry (--repo-config) a drift: block, "
              "or name a repository with --repo.")
        return 0
    for check in checks:
        _print_drift_check(check)
    records = [record for check in checks for record in check.records]
    counts = {status: sum(1 for record in records if record.status is status) for status in DriftStatus}
    print(f"{count(len(records), 'project')} checked: "
          + ", ".join(f"{count} {status.value.replace('_', ' ')}" for status, count in counts.items()) + ".")
    return exit_code(checks)


def _print_drift_check(check: RepoCheck) -> None:
    where = f" at {check.sha[:7]}" if check.sha else ""
    if check.error is not None:
        print(f"{check.repo}{where}: check failed: {check.error}")
    elif not check.records:
        print(f"{check.repo}{where}: no project to check.")
    else:
        print(f"{check.repo}{where}:")
    width = max((len(f"{r.project.name or r.project.dir} ({r.project.workspace})") for r in check.records), default=0)
    for record in check.records:
        label = f"{record.project.name or record.project.dir} ({record.project.workspace})"
        line = f"  {label.ljust(width)}  {record.status.value.replace('_', ' ').ljust(10)}"
        if record.error:
            line += f"  {record.error.splitlines()[0]}"
        elif record.resources:
            line += f"  {', '.join(r.address for r in record.resources)}"
        if record.remediation is not None:
            line += f"; remediation {record.remediation.status.value}: {record.remediation.detail}"
        if record.issue_url:
            line += f" ({record.issue_url})"
        print(line.rstrip())
    if check.not_enabled:
        names = ", ".join(p.name or p.dir for p in check.not_enabled)
        print(f"  drift detection is off for {names}; name one with --project to check it anyway.")


SUBCOMMAND = Subcommand(
    name="drift",
    summary=SUMMARIES["drift"],
    run=run_drift,
    add_arguments=add_drift_arguments,
    description=(
        "Drift detection: whether the live infrastructure still matches each repository's default\n"
        "branch. The server checks on the schedules of repos.yaml's drift: blocks; `atlas drift run`\n"
        "checks now, in its own process."
    ),
    epilog=(
        "examples:\n"
        "  atlas drift run --config /etc/atlas/server.yaml\n"
        "  atlas drift run --repo acme/infra --project app"
    ),
)
