"""A local GitLab for tests: REST API v4, webhook deliveries and git over smart HTTP.

Start it with the `gitlab_emulator` fixture (tests/gitlab_emulator/pytest_plugin.py), build
projects and merge requests with its methods, point python-gitlab or atlas at
`emulator.base_url` with `emulator.token`, and deliver hooks with `webhooks.deliver`.
"""

from __future__ import annotations

from tests.gitlab_emulator.server import EmulatorError, GitLabEmulator
from tests.gitlab_emulator.state import MergeRequest, Note, Project, Refused, RequestRecord
from tests.gitlab_emulator.webhooks import MERGE_REQUEST_HOOK, NOTE_HOOK, deliver, merge_request_hook, note_hook

__all__ = [
    "MERGE_REQUEST_HOOK",
    "NOTE_HOOK",
    "EmulatorError",
    "GitLabEmulator",
    "MergeRequest",
    "Note",
    "Project",
    "Refused",
    "RequestRecord",
    "deliver",
    "merge_request_hook",
    "note_hook",
]
