"""The GitLab test world: a project on the GitLab emulator holding a terraform fixture, an atlas serving it,
and the hooks and notes a user's actions send. A pytest plugin (tests/conftest.py) for its fixtures.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.atlas_plugin import FIXTURES, RunningAtlas
from tests.gitlab_emulator import MERGE_REQUEST_HOOK, NOTE_HOOK, GitLabEmulator, deliver, merge_request_hook, note_hook

PATH = "platform/network/infra"
GITLAB_SECRET = "gitlab-hook-secret"
APP_CHANGE = {
    "app/main.tf": (FIXTURES / "multi-project/app/main.tf").read_text().replace("replicas = 2", "replicas = 3")
}


def fixture_files(fixture: str, state_dir: Path) -> dict[str, str | bytes]:
    """A terraform fixture's files, its state kept in `state_dir` (outside every clone)."""
    root = FIXTURES / fixture
    files: dict[str, str | bytes] = {}
    for item in sorted(root.rglob("*")):
        relative = item.relative_to(root)
        if item.is_file() and relative.parts[0] != "expected":
            files[relative.as_posix()] = item.read_text().replace("__STATE_DIR__", str(state_dir))
    return files


@pytest.fixture
def gitlab_project(gitlab_emulator: GitLabEmulator, state_dir: Path) -> Callable[..., str]:
    def create(path: str = PATH, fixture: str = "multi-project") -> str:
        gitlab_emulator.create_project(path, fixture_files(fixture, state_dir))
        return path

    return create


@pytest.fixture
def gitlab_atlas(
    start_atlas: Callable[..., RunningAtlas], gitlab_emulator: GitLabEmulator
) -> Callable[..., RunningAtlas]:
    """An atlas serving the emulated GitLab (and, unless `github=False`, the emulated GitHub too)."""

    def start(*, github: bool = True, **overrides: Any) -> RunningAtlas:
        values: dict[str, Any] = {
            "gitlab_token": gitlab_emulator.token,
            "gitlab_hostname": gitlab_emulator.base_url,
            "gitlab_webhook_secret": GITLAB_SECRET,
        }
        if not github:
            values.update(gh_token=None, gh_webhook_secret=None, gh_user=None)
        values.update(overrides)
        return start_atlas(**values)

    return start


def send(atlas: RunningAtlas, event: str, payload: dict[str, Any] | bytes, *, secret: str | None = GITLAB_SECRET,
         event_uuid: str | None = None) -> requests.Response:
    return deliver(f"{atlas.url}/events", event, payload, secret=secret, event_uuid=event_uuid)


def mr_hook(atlas: RunningAtlas, emulator: GitLabEmulator, action: str = "open", *, iid: int = 1,
            path: str = PATH, **kwargs: Any) -> requests.Response:
    return send(atlas, MERGE_REQUEST_HOOK, merge_request_hook(emulator, path, iid, action, **kwargs))


def comment(atlas: RunningAtlas, emulator: GitLabEmulator, body: str, *, author: str = "bob", iid: int = 1,
            path: str = PATH) -> requests.Response:
    note = emulator.add_note(path, iid, body, author)
    return send(atlas, NOTE_HOOK, note_hook(emulator, path, iid, note))


def notes_by_atlas(emulator: GitLabEmulator, iid: int = 1, path: str = PATH) -> list[str]:
    return [n["body"] for n in emulator.notes(path, iid) if n["author"] == emulator.bot.username]


def statuses(emulator: GitLabEmulator, sha: str, name: str = "atlas/plan", path: str = PATH) -> list[tuple[str, str]]:
    return [(s["status"], s["description"]) for s in emulator.statuses(path, sha) if s["name"] == name]


def app_change(replicas: int) -> dict[str, str | bytes | None]:
    main_tf = (FIXTURES / "multi-project/app/main.tf").read_text()
    return {"app/main.tf": main_tf.replace("replicas = 2", f"replicas = {replicas}")}


def open_and_plan(atlas: RunningAtlas, emulator: GitLabEmulator, branch: str, changes: dict[str, Any],
                  *, author: str = "alice", path: str = PATH) -> int:
    """A merge request opened and autoplanned; its iid."""
    iid = emulator.open_merge_request(path, branch, changes, author=author).iid
    assert mr_hook(atlas, emulator, iid=iid, path=path).status_code == 202
    atlas.wait_idle()
    return iid


def lock_holders(atlas: RunningAtlas) -> dict[str, str]:
    """`repo:dir/workspace` → `repo#number` of the pull or merge request holding its lock."""
    locks = atlas.app.config["ATLAS_CONTEXT"].locks.all()
    return {f"{lock.repo}:{lock.project.dir}/{lock.project.workspace}": lock.pull_key for lock in locks}


def app_replicas(state_dir: Path) -> int:
    state = json.loads((state_dir / "multi-project/app.tfstate").read_text())
    [service] = [r for r in state["resources"] if r["name"] == "service"]
    replicas: int = service["instances"][0]["attributes"]["input"]["value"]["replicas"]
    return replicas
