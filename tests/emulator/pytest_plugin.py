"""Fixtures for tests that talk to GitHub: a running emulator and GitHub's recorded data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.emulator import recordings
from tests.emulator.server import GitHubEmulator


@pytest.fixture
def github_data_dir() -> Path:
    """tests/data/github: real webhook payloads and recorded API responses."""
    try:
        return recordings.github_data_dir()
    except FileNotFoundError as missing:
        pytest.fail(str(missing), pytrace=False)


@pytest.fixture
def github_emulator(tmp_path: Path, github_data_dir: Path) -> Iterator[GitHubEmulator]:
    """A started GitHub emulator keeping its repositories under this test's tmp_path."""
    from tests.conftest import require_binary

    require_binary("git", "install git 2.38 or newer (e.g. `apt-get install git`)")
    emulator = GitHubEmulator(tmp_path / "github").start()
    try:
        yield emulator
    finally:
        emulator.stop()
