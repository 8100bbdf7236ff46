"""`atlas policy test POLICY_DIR PLAN.json`: judge a saved plan's JSON with a policy directory, as the server does.

For policy authors, before a set is in force: the same in-process evaluation (Rego v1, conftest's
`deny`/`violation`/`warn`, `main` unless `--namespace` names others), the same messages; the exit
status is 0 when the plan passes (warnings allowed), 1 when a policy fails or cannot be evaluated.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from atlas.cli.catalog import SUMMARIES
from atlas.cli.subcommand import EXIT_USAGE, Subcommand


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(title="actions", metavar="ACTION", dest="action", required=True)
    test = actions.add_parser("test", help="Judge PLAN.json (terraform show -json of a saved plan) with POLICY_DIR.")
    test.add_argument("policy_dir", metavar="POLICY_DIR", type=Path)
    test.add_argument("plan", metavar="PLAN.json", type=Path)
    test.add_argument("-n", "--namespace", action="append", default=None,
                      help="A Rego package to evaluate (repeatable; default: main).")
    test.add_argument("--all-namespaces", action="store_true", help="Evaluate every package the files declare.")


def run(args: argparse.Namespace) -> int:
    # Here, so that `atlas policy --help` does not load the Rego interpreter.
    from atlas.policy.engine import load_policy_set
    from atlas.policy.results import PolicyOutcome

    try:
        plan = args.plan.read_bytes()
    except OSError as error:
        print(f"atlas policy test: cannot read {args.plan}: {error.strerror or error}")
        return EXIT_USAGE
    namespaces = None if args.all_namespaces else tuple(args.namespace or ("main",))
    result = load_policy_set(args.policy_dir, namespaces=namespaces).evaluate(plan)
    for message in result.failures:
        print(f"FAIL - {message.namespace}.{message.rule}: {message.message}")
    for message in result.warnings:
        print(f"WARN - {message.namespace}.{message.rule}: {message.message}")
    for problem in result.errors:
        print(f"ERROR - {problem}")
    print(f"{result.policy_set}: {result.outcome.value} ({len(result.failures)} failures, "
          f"{len(result.warnings)} warnings, {len(result.errors)} errors)")
    return 0 if result.outcome is PolicyOutcome.PASSED else 1


SUBCOMMAND = Subcommand(
    name="policy",
    summary=SUMMARIES["policy"],
    run=run,
    add_arguments=add_arguments,
    description=__doc__,
)
