"""The `gitlab_emulator` fixture: a started GitLab emulator per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gitlab_emulator.server import GitLabEmulator


@pytest.fixture
def gitlab_emulator(tmp_path: Path) -> Iterator[GitLabEmulator]:
    """A started GitLab emulator keeping its repositories under this test's tmp_path."""
    from tests.conftest import require_binary

    require_binary("git", "install git 2.38 or newer (e.g. `apt-get install git`)")
    emulator = GitLabEmulator(tmp_path / "gitlab").start()
    try:
        yield emulator
    finally:
        emulator.stop()
