"""A local GitHub for end-to-end tests: REST API, GraphQL minimizeComment and git over HTTP.

Start it with the `github_emulator` fixture (tests/emulator/pytest_plugin.py), build repositories
and pull requests with its methods, and point atlas at `emulator.api_url` with `emulator.token`.
"""

from __future__ import annotations

from tests.emulator.payloads import webhook_payload
from tests.emulator.server import EmulatorError, GitHubEmulator
from tests.emulator.state import EmulatedPull, EmulatedRepo, RequestRecord
from tests.emulator.webhooks import deliver, sign

__all__ = [
    "EmulatedPull",
    "EmulatedRepo",
    "EmulatorError",
    "GitHubEmulator",
    "RequestRecord",
    "deliver",
    "sign",
    "webhook_payload",
]
