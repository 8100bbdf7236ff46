"""Test-wide setup: the real parts every test world is built from.

Fixtures live in plugin modules next to the part they build (the GitHub emulator, terraform
fixture repositories, the atlas server), so each test file asks only for what it uses.
"""

from __future__ import annotations

import os
import shutil

import pytest

pytest_plugins = [
    "tests.emulator.pytest_plugin",
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
