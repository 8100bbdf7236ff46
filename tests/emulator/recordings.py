"""The real GitHub data in tests/data/github: recorded API responses and webhook payloads.

The emulator shapes its answers after these so that what PyGithub and atlas read in tests is what
GitHub really sends, with only identifiers and URLs changed.
"""

from __future__ import annotations

import ast
import functools
import json
from pathlib import Path
from typing import Any

GITHUB_DATA_DIR = Path(__file__).resolve().parents[1] / "data" / "github"
"""GitHub's recorded payloads and responses, kept in the repository (their sources: its README.md)."""


def github_data_dir() -> Path:
    """`tests/data/github`, or an error that says what is missing."""
    path = GITHUB_DATA_DIR
    if not (path / "webhooks").is_dir() or not (path / "replay").is_dir():
        raise FileNotFoundError(
            f"GitHub test data not found at {path}: the emulator needs the real payloads in "
            "tests/data/github/webhooks and tests/data/github/replay (restore them from git)"
        )
    return path


@functools.cache
def _replay_records(filename: str) -> tuple[tuple[str, str, int, str], ...]:
    """(verb, path, status, body) of every exchange in a PyGithub replay file."""
    lines = (github_data_dir() / "replay" / filename).read_text().split("\n")
    records = []
    i = 0
    while i < len(lines):
        if not lines[i]:
            i += 1
            continue
        record = lines[i : i + 10]
        # Headers are parsed only to check that the record is whole.
        ast.literal_eval(record[8])
        records.append((record[1], record[4], int(record[7]), record[9]))
        i += 11
    return tuple(records)


def replay_body(filename: str, verb: str, path: str) -> Any:
    """A fresh copy of the JSON body GitHub answered to the first `verb path` recorded.

    The query string is ignored; a `path` ending in `/` matches any path under it.
    """
    for record_verb, recorded, _status, body in _replay_records(filename):
        recorded = recorded.split("?", 1)[0]
        matches = recorded.startswith(path) if path.endswith("/") else recorded == path
        if record_verb == verb and matches:
            return json.loads(body)
    raise LookupError(f"no {verb} {path} in {filename}")


@functools.cache
def _webhook_text(name: str) -> str:
    return (github_data_dir() / "webhooks" / f"{name}.json").read_text()


def webhook_body(name: str) -> dict[str, Any]:
    """A fresh copy of a recorded webhook payload, e.g. `pull_request.opened`."""
    body: dict[str, Any] = json.loads(_webhook_text(name))
    return body
