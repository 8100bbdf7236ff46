"""Helpers for tests that drive atlas with pull request comments, as a developer would."""

from __future__ import annotations

from typing import Any

from tests.atlas_plugin import FIXTURES, RunningAtlas
from tests.emulator import EmulatedPull, GitHubEmulator, webhook_payload

REPO = "acme/infra"
DEVELOPER = "alice"


def app_change(replicas: int) -> dict[str, str | None]:
    main_tf = (FIXTURES / "multi-project/app/main.tf").read_text()
    return {"app/main.tf": main_tf.replace("replicas = 2", f"replicas = {replicas}")}


def db_change(environment: str) -> dict[str, str | None]:
    main_tf = (FIXTURES / "multi-project/db/main.tf").read_text()
    return {"db/main.tf": main_tf.replace('"production"', f'"{environment}"')}


def comment(atlas: RunningAtlas, pull: EmulatedPull, body: str, user: str = DEVELOPER, **kwargs: Any) -> int:
    """Post a comment on the pull request and deliver its webhook; returns the HTTP status."""
    payload = webhook_payload("issue_comment", pull, "created", body=body, commenter=user)
    return atlas.deliver("issue_comment", payload, **kwargs).status_code


def bot_comments(emulator: GitHubEmulator, pull: EmulatedPull) -> list[str]:
    """What atlas said on the pull request, oldest first."""
    return [c["body"] for c in emulator.comments(REPO, pull.number) if c["user"] == emulator.bot_login]


def last_bot_comment(emulator: GitHubEmulator, pull: EmulatedPull) -> str:
    said = bot_comments(emulator, pull)
    assert said, "atlas said nothing on the pull request"
    return said[-1]


def statuses(emulator: GitHubEmulator, sha: str, context: str) -> list[tuple[str, str]]:
    return [(s["state"], s["description"]) for s in emulator.statuses(REPO, sha) if s["context"] == context]


def lock_holders(atlas: RunningAtlas) -> dict[str, int]:
    """`dir/workspace` → the number of the pull request holding its lock."""
    locks = atlas.app.config["ATLAS_CONTEXT"].locks.all()
    return {f"{lock.project.dir}/{lock.project.workspace}": lock.pull_number for lock in locks}


def open_and_plan(atlas: RunningAtlas, emulator: GitHubEmulator, branch: str,
                  changes: dict[str, str | None], author: str = DEVELOPER) -> EmulatedPull:
    pull = emulator.open_pull(REPO, branch, changes, author=author)
    assert atlas.pull_event(pull).status_code == 202
    atlas.wait_idle()
    return pull
