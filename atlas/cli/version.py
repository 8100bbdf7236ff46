"""`atlas version`: atlas's version and the terraform it finds."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess

from atlas import __version__
from atlas.cli.catalog import SUMMARIES
from atlas.cli.subcommand import Subcommand
from atlas.config.setting_names import ENV_PREFIX
from atlas.runtime.tfcli import UnreadableOutput, read_version


def terraform_version(binary: str) -> str | None:
    """The version of the terraform `binary`, or None when it cannot be run."""
    path = shutil.which(binary)
    if path is None:
        return None
    # terraform must not see atlas's settings, which include its secrets.
    env = {key: value for key, value in os.environ.items() if not key.startswith(ENV_PREFIX)}
    try:
        version = read_version(path, env, timeout=30)
    except (OSError, subprocess.SubprocessError, UnreadableOutput):
        return None
    return f"{version} ({path})"


def run_version(args: argparse.Namespace) -> int:
    print(f"atlas {__version__}")
    binary = os.environ.get(f"{ENV_PREFIX}TERRAFORM_BIN") or "terraform"
    version = terraform_version(binary)
    print(f"terraform {version}" if version else f"terraform: {binary!r} not found or not runnable")
    return 0


SUBCOMMAND = Subcommand(
    name="version",
    summary=SUMMARIES["version"],
    run=run_version,
)
