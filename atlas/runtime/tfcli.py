"""Terraform's machine-readable answers, asked and read in one place: `version -json` and `show -json`.

Terraform may print a warning around the JSON (a deprecated flag, a provider notice), so the
document is found among the lines rather than sliced out of the text.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

VERSION_TIMEOUT_SECONDS = 60.0
"""How long `terraform version` may take (it starts quickly, but a loaded machine is slow)."""


class UnreadableOutput(Exception):
    """Terraform ran but did not print the JSON asked for; the message carries what it printed."""


def read_version(binary: str | Path, env: Mapping[str, str], timeout: float = VERSION_TIMEOUT_SECONDS) -> str:
    """The version `binary version -json` reports, e.g. `1.11.4`.

    Raises OSError or subprocess.TimeoutExpired when it cannot be run, UnreadableOutput when it
    does not say. `env` must already be scrubbed of secrets: the binary may be anyone's.
    """
    completed = subprocess.run(
        [str(binary), "version", "-json"], env=dict(env), stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=timeout, check=False,
    )
    try:
        return str(json.loads(completed.stdout)["terraform_version"])
    except (ValueError, KeyError, TypeError):
        raise UnreadableOutput(completed.stdout + completed.stderr) from None


def show_args(planfile: Path, extra: Sequence[str] = ()) -> list[str]:
    """The arguments of `terraform show -json [extra] PLANFILE`."""
    return ["show", "-json", *extra, str(planfile)]


def plan_document(output: str) -> dict[str, Any]:
    """The JSON plan in `show -json` output, even with a warning printed around it; UnreadableOutput if none."""
    for candidate in (output, *(line for line in output.splitlines() if line.startswith("{"))):
        try:
            document = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(document, dict):
            return document
    raise UnreadableOutput(output)
