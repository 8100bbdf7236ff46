"""GitLab end to end: merge request and note hooks over HTTP to a real atlas, against the GitLab emulator.

The same plan, apply, lock and merge flows as on GitHub: atlas answers a GitLab project through
python-gitlab and clones it over git smart HTTP with the `oauth2` token header, whichever host a
repository is on.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.atlas_plugin import FIXTURES, RunningAtlas
from tests.gitlab_emulator import MERGE_REQUEST_HOOK, NOTE_HOOK, GitLabEmulator, deliver, merge_request_hook, note_hook
from tests.gitlab_emulator.webhooks import draft_change

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


# --- the webhook edge ------------------------------------------------------------------------------


def test_a_delivery_with_a_wrong_or_missing_gitlab_token_is_refused_with_401(
    gitlab_atlas: Callable[..., RunningAtlas], gitlab_emulator: GitLabEmulator, gitlab_project: Callable[..., str],
) -> None:
    atlas = gitlab_atlas()
    gitlab_project()
    gitlab_emulator.open_merge_request(PATH, "more-replicas", APP_CHANGE)
    payload = merge_request_hook(gitlab_emulator, PATH, 1, "open")

    wrong = send(atlas, MERGE_REQUEST_HOOK, payload, secret="guess")
    missing = send(atlas, MERGE_REQUEST_HOOK, payload, secret=None)

    assert wrong.status_code == 401 and "X-Gitlab-Token is not this server's" in wrong.text
    assert missing.status_code == 401 and "missing X-Gitlab-Token" in missing.text
    atlas.wait_idle()
    assert gitlab_emulator.notes(PATH, 1) == []


def test_bad_gitlab_payloads_get_400_with_the_reason(
    gitlab_atlas: Callable[..., RunningAtlas], gitlab_emulator: GitLabEmulator, gitlab_project: Callable[..., str],
) -> None:
    atlas = gitlab_atlas()
    gitlab_project()
    gitlab_emulator.open_merge_request(PATH, "more-replicas", APP_CHANGE)
    payload = merge_request_hook(gitlab_emulator, PATH, 1, "open")
    payload["object_attributes"]["iid"] = "one"

    not_json = send(atlas, MERGE_REQUEST_HOOK, b"{not json")
    wrong_type = send(atlas, MERGE_REQUEST_HOOK, payload)
    wrong_kind = send(atlas, MERGE_REQUEST_HOOK, {"object_kind": "push"})
    other = send(atlas, "Pipeline Hook", {"object_kind": "pipeline"})

    assert not_json.status_code == 400 and "body is not valid JSON" in not_json.text
    assert wrong_type.status_code == 400 and "object_attributes.iid should be a number" in wrong_type.text
    assert wrong_kind.status_code == 400 and "object_kind" in wrong_kind.text
    assert other.status_code == 200 and "'Pipeline Hook' is not one atlas acts on" in other.text


def test_a_project_outside_the_allowlist_is_refused_by_its_nested_path(
    gitlab_atlas: Callable[..., RunningAtlas], gitlab_emulator: GitLabEmulator, gitlab_project: Callable[..., str],
) -> None:
    atlas = gitlab_atlas(repo_allowlist="127.0.0.1/platform/network/*,!127.0.0.1/platform/network/secret")
    gitlab_project()
    gitlab_project("platform/network/secret")
    gitlab_emulator.open_merge_request(PATH, "a", APP_CHANGE)
    gitlab_emulator.open_merge_request("platform/network/secret", "b", APP_CHANGE)

    allowed = mr_hook(atlas, gitlab_emulator)
    refused = mr_hook(atlas, gitlab_emulator, path="platform/network/secret")

    assert allowed.status_code == 202, allowed.text
    assert refused.status_code == 403
    assert "127.0.0.1/platform/network/secret is not in this server's --repo-allowlist" in refused.text
    atlas.wait_idle()


# --- autoplan ----------------------------------------------------------------------------------------


def test_an_opened_merge_request_gets_a_plan_note_and_statuses_with_gitlab_settings_alone(
    gitlab_atlas: Callable[..., RunningAtlas], gitlab_emulator: GitLabEmulator, gitlab_project: Callable[..., str],
) -> None:
    atlas = gitlab_atlas(github=False)
    gitlab_project()
    mr = gitlab_emulator.open_merge_request(PATH, "more-replicas", APP_CHANGE)

    response = mr_hook(atlas, gitlab_emulator)
    assert response.status_code == 202, response.text
    atlas.wait_idle()

    [body] = notes_by_atlas(gitlab_emulator)
    assert "Ran Plan for dir: `app` workspace: `default`" in body
    assert "Plan: 1 to add, 0 to change, 0 to destroy." in body
    assert "`db`" not in body
    assert "atlas apply -d app" in body
    assert statuses(gitlab_emulator, mr.sha) == [("running", "Planning…"), ("success", "1/1 projects planned")]
    assert statuses(gitlab_emulator, mr.sha, "atlas/plan: app/default") == [
        ("success", "Plan: 1 to add, 0 to change, 0 to destroy.")]
    # The token went to git only as a header: nothing of it in the mirror's or the copy's config.
    repos = atlas.settings.data_dir / "repos"
    for config in repos.rglob("config"):
        assert gitlab_emulator.token not in config.read_text()
    assert gitlab_emulator.token not in atlas.log_text()


def test_a_module_change_plans_every_root_that_uses_it(
    gitlab_atlas: Callable[..., RunningAtlas], gitlab_emulator: GitLabEmulator, gitlab_project: Callable[..., str],
) -> None:
    atlas = gitlab_atlas()
    gitlab_project()
    label = (FIXTURES / "multi-project/modules/label/main.tf").read_text()
    gitlab_emulator.open_merge_request(PATH, "label-format", {
        "modules/label/main.tf": label.replace('"${var.environment}-${var.name}"', '"${var.name}-${var.environment}"'),
    })

    assert mr_hook(atlas, gitlab_emulator).status_code == 202
    atlas.wait_idle()

    [body] = notes_by_atlas(gitlab_emulator)
    assert "Ran Plan for 2 projects" in body
    assert "dir: `app` workspace: `default`" in body and "dir: `db` workspace: `default`" in body


def test_an_update_with_new_commits_plans_again_and_one_without_does_not(
    gitlab_atlas: Callable[..., RunningAtlas], gitlab_emulator: GitLabEmulator, gitlab_project: Callable[..., str],
) -> None:
    atlas = gitlab_atlas()
    gitlab_project()
    first = gitlab_emulator.open_merge_request(PATH, "more-replicas", APP_CHANGE).sha
    assert mr_hook(atlas, gitlab_emulator).status_code == 202
    atlas.wait_idle()

    retitled = mr_hook(atlas, gitlab_emulator, "update", changes={"title": {"previous": "a", "current": "b"}})
    assert retitled.status_code == 200 and "without new commits" in retitled.text
    second = gitlab_emulator.push(PATH, 1, {"app/main.tf": APP_CHANGE["app/main.tf"].replace("replicas = 3",
                                                                                           "replicas = 4")})
    assert mr_hook(atlas, gitlab_emulator, "update", oldrev=first).status_code == 202
    atlas.wait_idle()

    assert len(notes_by_atlas(gitlab_emulator)) == 2
    assert statuses(gitlab_emulator, second)[-1] == ("success", "1/1 projects planned")


def test_a_redelivered_event_uuid_is_acknowledged_and_not_run_again(
    gitlab_atlas: Callable[..., RunningAtlas], gitlab_emulator: GitLabEmulator, gitlab_project: Callable[..., str],
) -> None:
    atlas = gitlab_atlas()
    gitlab_project()
    gitlab_emulator.open_merge_request(PATH, "more-replicas", APP_CHANGE)
    payload = merge_request_hook(gitlab_emulator, PATH, 1, "open")
    uuid = "0f8a2a3c-1d4e-4b5f-9a6b-7c8d9e0f1a2b"

    first = send(atlas, MERGE_REQUEST_HOOK, payload, event_uuid=uuid)
    again = send(atlas, MERGE_REQUEST_HOOK, payload, event_uuid=uuid)
    atlas.wait_idle()

    assert first.status_code == 202
    assert again.status_code == 200 and "already accepted delivery" in again.text
    assert len(notes_by_atlas(gitlab_emulator)) == 1


def test_a_draft_merge_request_is_planned_once_it_is_marked_ready(
    gitlab_atlas: Callable[..., RunningAtlas], gitlab_emulator: GitLabEmulator, gitlab_project: Callable[..., str],
) -> None:
    atlas = gitlab_atlas()
    gitlab_project()
    gitlab_emulator.open_merge_request(PATH, "more-replicas", APP_CHANGE, draft=True)

    draft = mr_hook(atlas, gitlab_emulator)
    assert draft.status_code == 200 and "is a draft" in draft.text
    gitlab_emulator.set_draft(PATH, 1, False)
    ready = mr_hook(atlas, gitlab_emulator, "update", changes=draft_change(True, False))
    assert ready.status_code == 202, ready.text
    atlas.wait_idle()

    [body] = notes_by_atlas(gitlab_emulator)
    assert "Ran Plan for dir: `app`" in body


# --- comment commands --------------------------------------------------------------------------------


@pytest.mark.parametrize("configured_user", [True, False], ids=["gitlab-user", "read-from-the-token"])
def test_atlas_ignores_its_own_notes_and_answers_others(
    gitlab_atlas: Callable[..., RunningAtlas], gitlab_emulator: GitLabEmulator, gitlab_project: Callable[..., str],
    configured_user: bool,
) -> None:
    atlas = gitlab_atlas(gitlab_user=gitlab_emulator.bot.username if configured_user else None)
    gitlab_project()
    gitlab_emulator.open_merge_request(PATH, "more-replicas", APP_CHANGE)

    own = comment(atlas, gitlab_emulator, "atlas help", author=gitlab_emulator.bot.username)
    assert own.status_code == 200 and "note is atlas's own" in own.text
    other = comment(atlas, gitlab_emulator, "atlas help")
    assert other.status_code == 202, other.text
    atlas.wait_idle()

    [answer] = [body for body in notes_by_atlas(gitlab_emulator) if body != "atlas help"]
    assert "atlas plan" in answer and "atlas apply" in answer
    # The command's note got atlas's award emoji, as a GitHub comment gets its reaction; atlas's own did not.
    awards = {n["author"]: n["awards"] for n in gitlab_emulator.notes(PATH, 1) if n["body"] == "atlas help"}
    assert awards == {"bob": [("eyes", gitlab_emulator.bot.username)], gitlab_emulator.bot.username: []}
