"""GitLab end to end: merge request and note hooks over HTTP to a real atlas, against the GitLab emulator.

The same plan, apply, lock and merge flows as on GitHub: atlas answers a GitLab project through
python-gitlab and clones it over git smart HTTP with the `oauth2` token header, whichever host a
repository is on.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.atlas_plugin import FIXTURES, RunningAtlas
from tests.gitlab_emulator import MERGE_REQUEST_HOOK, GitLabEmulator, merge_request_hook
from tests.gitlab_emulator.webhooks import draft_change
from tests.gitlab_world import (
    APP_CHANGE,
    PATH,
    app_change,
    app_replicas,
    comment,
    fixture_files,
    lock_holders,
    mr_hook,
    notes_by_atlas,
    open_and_plan,
    send,
    statuses,
)

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


def test_atlas_apply_in_a_note_applies_the_plan_once_the_approval_rules_are_met(
    gitlab_atlas: Callable[..., RunningAtlas], gitlab_emulator: GitLabEmulator, gitlab_project: Callable[..., str],
    state_dir: Path,
) -> None:
    atlas = gitlab_atlas(apply_requirements="approved")
    gitlab_project()
    gitlab_emulator.add_member(PATH, "bob", "developer")
    gitlab_emulator.add_approval_rule(PATH, "infra", 1, eligible=["carol"])
    iid = open_and_plan(atlas, gitlab_emulator, "more-replicas", app_change(3))

    assert comment(atlas, gitlab_emulator, "atlas apply", iid=iid).status_code == 202
    atlas.wait_idle()
    refused = notes_by_atlas(gitlab_emulator, iid)[-1]
    assert "approved" in refused and not (state_dir / "multi-project/app.tfstate").exists()

    gitlab_emulator.approve(PATH, iid, "carol")
    assert comment(atlas, gitlab_emulator, "atlas apply", iid=iid).status_code == 202
    atlas.wait_idle()

    applied = notes_by_atlas(gitlab_emulator, iid)[-1]
    assert "Apply complete! Resources: 1 added, 0 changed, 0 destroyed." in applied
    assert app_replicas(state_dir) == 3
    sha = gitlab_emulator.merge_request(PATH, iid).sha
    assert statuses(gitlab_emulator, sha, "atlas/apply")[-1] == ("success", "1/1 projects applied")


def test_a_user_without_developer_access_may_not_apply(
    gitlab_atlas: Callable[..., RunningAtlas], gitlab_emulator: GitLabEmulator, gitlab_project: Callable[..., str],
    state_dir: Path,
) -> None:
    atlas = gitlab_atlas()
    gitlab_project()
    gitlab_emulator.add_member(PATH, "rita", "reporter")
    iid = open_and_plan(atlas, gitlab_emulator, "more-replicas", app_change(3))

    assert comment(atlas, gitlab_emulator, "atlas apply", author="rita", iid=iid).status_code == 202
    atlas.wait_idle()

    assert "rita" in notes_by_atlas(gitlab_emulator, iid)[-1]
    assert not (state_dir / "multi-project/app.tfstate").exists()


def test_a_second_merge_request_is_told_who_holds_the_lock_and_gets_it_when_the_first_closes(
    gitlab_atlas: Callable[..., RunningAtlas], gitlab_emulator: GitLabEmulator, gitlab_project: Callable[..., str],
) -> None:
    atlas = gitlab_atlas()
    gitlab_project()
    first = open_and_plan(atlas, gitlab_emulator, "three", app_change(3))
    second = open_and_plan(atlas, gitlab_emulator, "five", app_change(5))

    told = notes_by_atlas(gitlab_emulator, second)[-1]
    assert "locked by pull request" in told and f"/merge_requests/{first}" in told
    assert lock_holders(atlas) == {f"gitlab:{PATH}:app/default": f"gitlab:{PATH}#{first}"}

    gitlab_emulator.close_merge_request(PATH, first)
    assert mr_hook(atlas, gitlab_emulator, "close", iid=first).status_code == 202
    atlas.wait_idle()

    assert "deleted its locks" in notes_by_atlas(gitlab_emulator, first)[-1]
    assert lock_holders(atlas) == {f"gitlab:{PATH}:app/default": f"gitlab:{PATH}#{second}"}
    assert "replicas = 5" in notes_by_atlas(gitlab_emulator, second)[-1]
    copies = atlas.settings.data_dir / "repos" / ".gitlab"
    assert not [p for p in copies.rglob("*.tf") if f"/{first}/" in str(p)], "the closed request's copies are gone"


def test_merging_applies_the_reviewed_plan_and_releases_the_locks(
    gitlab_atlas: Callable[..., RunningAtlas], gitlab_emulator: GitLabEmulator, gitlab_project: Callable[..., str],
    state_dir: Path,
) -> None:
    atlas = gitlab_atlas(apply_on_merge="true")
    gitlab_project()
    iid = open_and_plan(atlas, gitlab_emulator, "more-replicas", app_change(3))
    assert lock_holders(atlas) == {f"gitlab:{PATH}:app/default": f"gitlab:{PATH}#{iid}"}

    sha = gitlab_emulator.merge_merge_request(PATH, iid, by="bob")
    assert mr_hook(atlas, gitlab_emulator, "merge", iid=iid, user="bob").status_code == 202
    atlas.wait_idle()

    said = notes_by_atlas(gitlab_emulator, iid)[-1]
    assert "Apply complete! Resources: 1 added, 0 changed, 0 destroyed." in said
    assert app_replicas(state_dir) == 3
    assert statuses(gitlab_emulator, sha, "atlas/apply")[-1] == ("success", "1/1 projects applied after merge")
    assert lock_holders(atlas) == {}


def test_a_fork_merge_request_is_refused_unless_forks_are_allowed(
    gitlab_atlas: Callable[..., RunningAtlas], gitlab_emulator: GitLabEmulator, gitlab_project: Callable[..., str],
) -> None:
    atlas = gitlab_atlas()
    gitlab_project()
    gitlab_emulator.open_merge_request(PATH, "patch", app_change(9), author="mallory", from_fork=True)

    assert mr_hook(atlas, gitlab_emulator).status_code == 202
    atlas.wait_idle()

    [said] = notes_by_atlas(gitlab_emulator)
    assert "atlas does not run pull requests from forks" in said
    assert lock_holders(atlas) == {}


def test_one_atlas_serves_github_and_gitlab_and_their_locks_are_their_own(
    gitlab_atlas: Callable[..., RunningAtlas], gitlab_emulator: GitLabEmulator, gitlab_project: Callable[..., str],
    fixture_repo: Callable[..., Any], github_emulator: Any,
) -> None:
    atlas = gitlab_atlas()
    gitlab_project()
    fixture_repo("multi-project")
    pull = github_emulator.open_pull("acme/infra", "more-replicas", app_change(4))

    assert atlas.pull_event(pull).status_code == 202
    iid = open_and_plan(atlas, gitlab_emulator, "more-replicas", app_change(3))
    atlas.wait_idle()

    [on_github] = [c["body"] for c in github_emulator.comments("acme/infra", pull.number)
                   if c["user"] == github_emulator.bot_login]
    [on_gitlab] = notes_by_atlas(gitlab_emulator, iid)
    assert "replicas = 4" in on_github and "Plan: 1 to add" in on_github
    assert "replicas = 3" in on_gitlab and "Plan: 1 to add" in on_gitlab
    assert lock_holders(atlas) == {
        "acme/infra:app/default": f"acme/infra#{pull.number}",
        f"gitlab:{PATH}:app/default": f"gitlab:{PATH}#{iid}",
    }


def test_a_gitlab_project_and_a_github_repository_of_the_same_path_lock_and_unlock_apart(
    gitlab_atlas: Callable[..., RunningAtlas], gitlab_emulator: GitLabEmulator, tmp_path: Path,
    fixture_repo: Callable[..., Any], github_emulator: Any,
) -> None:
    atlas = gitlab_atlas()
    gitlab_state = tmp_path / "gitlab-tfstate"
    gitlab_state.mkdir()
    # Its state apart from the GitHub repository's, as two teams' backends would be.
    gitlab_emulator.create_project("acme/infra", fixture_files("multi-project", gitlab_state))
    fixture_repo("multi-project")
    pull = github_emulator.open_pull("acme/infra", "more-replicas", app_change(4))

    assert atlas.pull_event(pull).status_code == 202
    iid = open_and_plan(atlas, gitlab_emulator, "more-replicas", app_change(3), path="acme/infra")
    atlas.wait_idle()

    assert lock_holders(atlas) == {
        "acme/infra:app/default": f"acme/infra#{pull.number}",
        "gitlab:acme/infra:app/default": f"gitlab:acme/infra#{iid}",
    }
    [on_gitlab] = notes_by_atlas(gitlab_emulator, iid, path="acme/infra")
    assert "replicas = 3" in on_gitlab and "Plan: 1 to add" in on_gitlab
    index = requests.get(f"{atlas.url}/", timeout=10).text
    assert f"acme/infra#{pull.number}" in index and f"gitlab:acme/infra#{iid}" in index
    pull_page = requests.get(f"{atlas.url}/pulls/gitlab:acme/infra/{iid}", timeout=10)
    assert pull_page.status_code == 200 and "<td" in pull_page.text and ">app<" in pull_page.text

    gitlab_emulator.add_member("acme/infra", "bob", "developer")
    assert comment(atlas, gitlab_emulator, "atlas unlock", iid=iid, path="acme/infra").status_code == 202
    atlas.wait_idle()

    assert lock_holders(atlas) == {"acme/infra:app/default": f"acme/infra#{pull.number}"}
    [on_github] = [c["body"] for c in github_emulator.comments("acme/infra", pull.number)
                   if c["user"] == github_emulator.bot_login]
    assert "replicas = 4" in on_github and "Plan: 1 to add" in on_github


CHATTY_WORKFLOW = """
version: 3
projects:
- dir: app
  workflow: chatty
workflows:
  chatty:
    plan:
      steps:
      - init
      - run: seq 100000 160000
      - plan
"""


def test_a_plan_longer_than_githubs_limit_is_one_note_on_gitlab(
    gitlab_atlas: Callable[..., RunningAtlas], gitlab_emulator: GitLabEmulator, state_dir: Path, tmp_path: Path,
) -> None:
    repos = tmp_path / "repos.yaml"
    repos.write_text("repos:\n- id: /.*/\n  allowed_overrides: [workflow]\n  allow_custom_workflows: true\n")
    atlas = gitlab_atlas(repo_config=repos, max_comments_per_command=0)
    files = {**fixture_files("multi-project", state_dir), "atlantis.yaml": CHATTY_WORKFLOW}
    gitlab_emulator.create_project(PATH, files)

    iid = open_and_plan(atlas, gitlab_emulator, "chatty", app_change(3))

    [note] = notes_by_atlas(gitlab_emulator, iid)
    assert 65_536 < len(note) <= 1_000_000
    assert "\n100000" in note and "\n160000" in note and "Plan: 1 to add" in note


def test_the_api_plans_a_gitlab_project_named_by_its_type_and_nested_path(
    gitlab_atlas: Callable[..., RunningAtlas], gitlab_emulator: GitLabEmulator, gitlab_project: Callable[..., str],
) -> None:
    atlas = gitlab_atlas(api_secret="api-secret")
    gitlab_project()
    gitlab_emulator.open_merge_request(PATH, "more-replicas", app_change(3))
    body = {"Repository": PATH, "Ref": "more-replicas", "Type": "Gitlab", "PR": 1, "Paths": [{"Directory": "app"}]}

    response = requests.post(f"{atlas.url}/api/plan", json=body, headers={"X-Atlas-Token": "api-secret"}, timeout=120)

    assert response.status_code == 200, response.text
    assert "Plan: 1 to add" in json.dumps(response.json())


def test_automerge_merges_a_fully_applied_merge_request_and_deletes_its_branch(
    gitlab_atlas: Callable[..., RunningAtlas], gitlab_emulator: GitLabEmulator, gitlab_project: Callable[..., str],
    tmp_path: Path,
) -> None:
    repos = tmp_path / "repos.yaml"
    repos.write_text("repos:\n- id: /.*/\n  delete_source_branch_on_merge: true\n")
    atlas = gitlab_atlas(automerge=True, repo_config=repos)
    gitlab_project()
    gitlab_emulator.add_member(PATH, "bob", "developer")
    iid = open_and_plan(atlas, gitlab_emulator, "more-replicas", app_change(3))

    assert comment(atlas, gitlab_emulator, "atlas apply", iid=iid).status_code == 202
    atlas.wait_idle()

    said = notes_by_atlas(gitlab_emulator, iid)[-1]
    assert "Automatically merged because every project of this pull request was applied." in said
    assert "Deleted the branch `more-replicas`" in said
    assert gitlab_emulator.merge_request(PATH, iid).state == "merged"
    assert gitlab_emulator.branch_sha(PATH, "more-replicas") is None


def test_a_new_plan_folds_the_earlier_plan_note_and_resets_the_approvals(
    gitlab_atlas: Callable[..., RunningAtlas], gitlab_emulator: GitLabEmulator, gitlab_project: Callable[..., str],
) -> None:
    atlas = gitlab_atlas(hide_prev_plan_comments=True, discard_approval_on_plan=True)
    gitlab_project()
    first = gitlab_emulator.open_merge_request(PATH, "more-replicas", app_change(3)).sha
    assert mr_hook(atlas, gitlab_emulator).status_code == 202
    atlas.wait_idle()
    gitlab_emulator.approve(PATH, 1, "carol")

    gitlab_emulator.push(PATH, 1, app_change(4))
    assert mr_hook(atlas, gitlab_emulator, "update", oldrev=first).status_code == 202
    atlas.wait_idle()

    earlier, latest = notes_by_atlas(gitlab_emulator)
    assert earlier.startswith("<details><summary>Outdated: superseded by a later atlas run</summary>")
    assert "replicas = 3" in earlier
    assert not latest.startswith("<details>") and "replicas = 4" in latest
    assert gitlab_emulator.merge_request(PATH, 1).approvals == []
