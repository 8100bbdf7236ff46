"""Test-wide setup: the real parts every test world is built from.

Fixtures live in plugin modules next to the part they build (the GitHub emulator, terraform
fixture repositories, the atlas server), so each test file asks only for what it uses.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from atlas.runtime.sandbox import INSTALL_HINT, HostPath, Sandbox, SandboxError, choose_sandbox

# The worlds import each other (a GitLab world starts an atlas from atlas_plugin), so a plugin can be
# imported before pytest registers it; marking them first keeps their asserts' explanations.
pytest.register_assert_rewrite("tests.atlas_plugin", "tests.scale_world")

pytest_plugins = [
    "tests.emulator.pytest_plugin",
    "tests.gitlab_emulator.pytest_plugin",
    "tests.gitlab_world",
    "tests.atlas_plugin",
    "tests.redis_plugin",
    "tests.web_plugin",
    "tests.s3_plugin",
]

# A CLI config file named by the environment but missing makes terraform print a warning into
# every output, and so into every comment; a test must not depend on the machine's shell profile.
if not os.path.exists(os.environ.get("TF_CLI_CONFIG_FILE", "/nonexistent-atlas")):
    os.environ.pop("TF_CLI_CONFIG_FILE", None)


def require_binary(name: str, install_hint: str) -> str:
    """The path of a binary the test needs, or a failure that says how to install it."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not on PATH: {install_hint}", pytrace=False)
    return path


def require_sandbox(*reachable: Path) -> Sandbox:
    """The bubblewrap sandbox that atlas servers under test run with (`--sandbox required`), with
    `reachable` as its `--sandbox-paths` (read-write), or a failure that says what to install or enable."""
    try:
        return choose_sandbox("required", host_paths=[HostPath(path) for path in reachable])
    except SandboxError as error:
        pytest.fail(f"the tests run pull-request code in bubblewrap: {error} ({INSTALL_HINT})", pytrace=False)
