"""GitLab's Merge Request Hook and Note Hook payloads become the events GitHub's do, or say why not."""

from __future__ import annotations

from typing import Any

import pytest

from atlas.http.webhooks import gitlab_token_problem
from atlas.intake.events import CommentEvent, Ignored, PayloadError, PullRequestEvent
from atlas.intake.gitlab_events import MERGE_REQUEST_HOOK, NOTE_HOOK, parse_gitlab_event
from atlas.models import VCSHost
from tests.gitlab_emulator import GitLabEmulator, merge_request_hook, note_hook
from tests.gitlab_emulator.responses import example
from tests.gitlab_emulator.webhooks import draft_change

PATH = "platform/network/core"


@pytest.fixture
def world(gitlab_emulator: GitLabEmulator) -> GitLabEmulator:
    gitlab_emulator.create_project(PATH, {"main.tf": 'resource "terraform_data" "x" {}\n'})
    gitlab_emulator.open_merge_request(PATH, "feature/vpc", {"vpc/main.tf": "# vpc\n"}, author="alice")
    return gitlab_emulator


def _event(payload: dict[str, Any]) -> PullRequestEvent:
    event = parse_gitlab_event(MERGE_REQUEST_HOOK, payload)
    assert isinstance(event, PullRequestEvent), event
    return event


def test_the_documented_merge_request_hook_parses_as_an_opened_merge_request() -> None:
    event = _event(example("webhooks/merge_request"))
    assert event.action == "opened"
    assert event.repo.full_name == "gitlabhq/gitlab-test" and event.repo.vcs is VCSHost.GITLAB
    assert event.repo.allowlist_id == "example.com/gitlabhq/gitlab-test"
    assert event.pull.number == 1
    assert event.pull.head_sha == "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"
    assert (event.pull.head_ref, event.pull.base_ref) == ("ms-viewport", "master")
    assert event.pull.is_fork is False and event.sender == "root"


def test_open_of_a_merge_request_in_nested_groups_names_the_whole_path(world: GitLabEmulator) -> None:
    event = _event(merge_request_hook(world, PATH, 1, "open"))
    mr = world.merge_request(PATH, 1)
    assert event.action == "opened"
    assert event.repo.full_name == PATH
    assert event.repo.allowlist_id == f"127.0.0.1/{PATH}"
    assert event.repo.clone_url == f"{world.base_url}/{PATH}.git"
    assert event.repo.private is True
    assert event.pull.head_sha == mr.sha and event.pull.head_ref == "feature/vpc"
    assert event.pull.author == "alice" and event.sender == "alice"


def test_reopen_autoplans_and_update_with_oldrev_is_a_synchronize(world: GitLabEmulator) -> None:
    assert _event(merge_request_hook(world, PATH, 1, "reopen")).action == "reopened"
    before = world.merge_request(PATH, 1).sha
    after = world.push(PATH, 1, {"vpc/main.tf": "# vpc v2\n"})
    event = _event(merge_request_hook(world, PATH, 1, "update", oldrev=before))
    assert event.action == "synchronize"
    assert event.pull.head_sha == after


def test_update_without_new_commits_is_ignored(world: GitLabEmulator) -> None:
    payload = merge_request_hook(world, PATH, 1, "update", changes={"title": {"previous": "a", "current": "b"}})
    ignored = parse_gitlab_event(MERGE_REQUEST_HOOK, payload)
    assert isinstance(ignored, Ignored) and "without new commits" in ignored.reason


def test_taking_the_draft_mark_off_is_ready_for_review(world: GitLabEmulator) -> None:
    world.set_draft(PATH, 1, True)
    draft = _event(merge_request_hook(world, PATH, 1, "open"))
    assert draft.pull.is_draft is True
    assert draft.pull.title == "Draft: Update infrastructure"
    world.set_draft(PATH, 1, False)
    ready = _event(merge_request_hook(world, PATH, 1, "update", changes=draft_change(True, False)))
    assert ready.action == "ready_for_review" and ready.pull.is_draft is False


def test_close_is_closed_unmerged_and_merge_is_closed_merged(world: GitLabEmulator) -> None:
    world.close_merge_request(PATH, 1)
    closed = _event(merge_request_hook(world, PATH, 1, "close"))
    assert (closed.action, closed.merged, closed.pull.is_open) == ("closed", False, False)
    world.reopen_merge_request(PATH, 1)
    sha = world.merge_merge_request(PATH, 1, by="bob")
    merged = _event(merge_request_hook(world, PATH, 1, "merge", user="bob"))
    assert (merged.action, merged.merged) == ("closed", True)
    assert merged.merge_commit_sha == sha and merged.pull.merged is True
    assert merged.sender == "bob"


def test_approval_actions_are_ignored(world: GitLabEmulator) -> None:
    for action in ("approved", "unapproved", "approval", "unapproval"):
        ignored = parse_gitlab_event(MERGE_REQUEST_HOOK, merge_request_hook(world, PATH, 1, action))
        assert isinstance(ignored, Ignored) and action in ignored.reason


def test_a_fork_merge_request_is_a_fork_with_the_forks_clone_url(gitlab_emulator: GitLabEmulator) -> None:
    gitlab_emulator.create_project(PATH, {"main.tf": "\n"})
    gitlab_emulator.open_merge_request(PATH, "patch", {"x.tf": "\n"}, author="mallory", from_fork=True)
    event = _event(merge_request_hook(gitlab_emulator, PATH, 1, "open"))
    assert event.pull.is_fork is True
    assert event.pull.head_clone_url == f"{gitlab_emulator.base_url}/mallory/core.git"


def test_a_note_on_a_merge_request_is_a_comment_command(world: GitLabEmulator) -> None:
    note = world.add_note(PATH, 1, "atlas plan -d vpc", "bob")
    event = parse_gitlab_event(NOTE_HOOK, note_hook(world, PATH, 1, note), bot_username="atlas-bot")
    assert isinstance(event, CommentEvent)
    assert (event.repo.full_name, event.number, event.comment_id) == (PATH, 1, note.id)
    assert (event.body, event.commenter, event.commenter_is_bot) == ("atlas plan -d vpc", "bob", False)
    assert event.pull_stub.number == 1


def test_the_documented_note_hook_parses() -> None:
    event = parse_gitlab_event(NOTE_HOOK, example("webhooks/note.merge_request"))
    assert isinstance(event, CommentEvent)
    assert (event.number, event.comment_id, event.body) == (1, 1244, "This MR needs work.")


def test_atlas_own_notes_system_notes_and_edits_are_ignored(world: GitLabEmulator) -> None:
    own = world.add_note(PATH, 1, "Ran Plan for 1 project", "atlas-bot")
    ignored = parse_gitlab_event(NOTE_HOOK, note_hook(world, PATH, 1, own), bot_username="ATLAS-BOT")
    assert isinstance(ignored, Ignored) and "own" in ignored.reason
    system = world.add_note(PATH, 1, "added 1 commit", "alice", system=True)
    assert isinstance(parse_gitlab_event(NOTE_HOOK, note_hook(world, PATH, 1, system)), Ignored)
    edited = world.add_note(PATH, 1, "atlas apply", "bob")
    assert isinstance(parse_gitlab_event(NOTE_HOOK, note_hook(world, PATH, 1, edited, action="update")), Ignored)


def test_a_note_by_a_project_access_token_user_is_a_bots(world: GitLabEmulator) -> None:
    note = world.add_note(PATH, 1, "atlas plan", "project_278964_bot_3f2a1c")
    event = parse_gitlab_event(NOTE_HOOK, note_hook(world, PATH, 1, note))
    assert isinstance(event, CommentEvent) and event.commenter_is_bot is True


def test_notes_on_issues_and_commits_are_ignored() -> None:
    payload = example("webhooks/note.merge_request")
    payload["object_attributes"]["noteable_type"] = "Issue"
    ignored = parse_gitlab_event(NOTE_HOOK, payload)
    assert isinstance(ignored, Ignored) and "Issue" in ignored.reason


def test_other_gitlab_events_are_ignored() -> None:
    ignored = parse_gitlab_event("Push Hook", {"object_kind": "push"})
    assert isinstance(ignored, Ignored) and "Push Hook" in ignored.reason


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: p.pop("object_attributes"), "payload has no object_attributes"),
        (lambda p: p["object_attributes"].update(iid="1"), "object_attributes.iid should be a number"),
        (lambda p: p["object_attributes"].update(iid=0), "outside"),
        (lambda p: p["project"].update(path_with_namespace="no-group"), "is not group[/subgroup…]/project"),
        (lambda p: p["project"].update(web_url="http://[::1"), "is not a URL"),
        (lambda p: p.update(object_kind="note"), "object_kind"),
        (lambda p: p["object_attributes"].pop("last_commit"), "last_commit"),
    ],
)
def test_malformed_merge_request_hooks_say_what_is_wrong(mutate: Any, message: str) -> None:
    payload = example("webhooks/merge_request")
    mutate(payload)
    with pytest.raises(PayloadError, match=message.replace("[", r"\[").replace("(", r"\(")):
        parse_gitlab_event(MERGE_REQUEST_HOOK, payload)


def test_the_webhook_token_is_compared_exactly() -> None:
    assert gitlab_token_problem("s3cret", "s3cret") is None
    assert "is not this server's" in str(gitlab_token_problem("s3cre", "s3cret"))
    assert "missing X-Gitlab-Token" in str(gitlab_token_problem(None, "s3cret"))
    assert gitlab_token_problem("s3crét", "s3cret") is not None
