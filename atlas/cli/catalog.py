"""The `atlas` subcommands by name, in the order `atlas --help` lists them, with their one-line summaries.

Kept apart from the subcommands' modules so that `atlas --help` prints the list without importing
any of them, and `atlas NAME` imports `atlas.cli.NAME` alone: each subcommand loads only what it needs.
"""

from __future__ import annotations

SUMMARIES: dict[str, str] = {
    "server": "Run the atlas server that receives GitHub webhooks.",
    "version": "Print atlas's version and the version of terraform it finds.",
    "locks": "List the project locks, or release one.",
    "worker": "Run worker processes that take jobs from Redis (with --redis-url).",
    "projects": "Show which projects a pull request with given changes would plan, and why.",
    "config": "Check atlas.yaml, atlantis.yaml or repos.yaml files.",
    "drift": "Check for drift between the live infrastructure and the default branch.",
    "policy": "Try policies locally: atlas policy test POLICY_DIR PLAN.json.",
}
"""Subcommand name → summary; a new subcommand is a module `atlas.cli.NAME` with a `SUBCOMMAND`, listed here."""


def module_name(command: str) -> str:
    """The module that defines the `SUBCOMMAND` of `atlas COMMAND`."""
    return f"atlas.cli.{command}"
