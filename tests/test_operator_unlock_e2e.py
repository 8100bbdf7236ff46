"""An operator's "discard plan and unlock": `atlas locks unlock` and the lock page's button do the same thing.

Two servers, each with a pull request holding the `app` lock (with its plan) and one waiting for it;
one operator releases the first lock from the lock page, the other with the command line. What is
left must be the same: the lock passed on, the plan gone, one audit entry, one comment.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
import requests

from tests.atlas_plugin import RunningAtlas
from tests.commands_world import DEVELOPER, REPO, app_change, last_bot_comment, lock_holders, open_and_plan
from tests.emulator import EmulatedPull, EmulatedRepo, GitHubEmulator

pytest_plugins = ["tests.web_plugin"]

Start = Callable[..., RunningAtlas]

OPERATOR, PASSWORD = "operator", "a long web password"


@pytest.fixture
def repo(fixture_repo: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator) -> EmulatedRepo:
    created = fixture_repo("multi-project")
    github_emulator.set_permission(REPO, DEVELOPER, "write")
    return created


def discard_on_the_lock_page(atlas: RunningAtlas, lock_id: str) -> None:
    """Post the lock page's form as a logged-in browser does: its hidden fields, the box ticked."""
    session = requests.Session()
    session.auth = (OPERATOR, PASSWORD)
    page = session.get(f"{atlas.url}/locks/{lock_id}", timeout=30)
    assert page.status_code == 200, page.text
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text))
    assert {"holder", "csrf_token"} <= set(fields), page.text
    answer = session.post(f"{atlas.url}/locks/{lock_id}/unlock", data={**fields, "confirm": "yes"},
                          allow_redirects=False, timeout=30)
    assert answer.status_code == 303, answer.text


def unlock_with_the_cli(atlas: RunningAtlas, lock_id: str) -> None:
    """`atlas locks unlock LOCK_ID` on the server's data dir, run by the operator's account."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ATLAS_")}
    assert atlas.settings.gh_token is not None
    env.update(LOGNAME=OPERATOR, ATLAS_GH_TOKEN=atlas.settings.gh_token.get_secret_value(),
               ATLAS_GH_API_URL=atlas.settings.gh_api_url)
    result = subprocess.run(
        [sys.executable, "-m", "atlas", "locks", "unlock", lock_id, "--data-dir", str(atlas.settings.data_dir)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def released(atlas: RunningAtlas, emulator: GitHubEmulator, unlock: Callable[[RunningAtlas, str], None]
             ) -> tuple[str, dict[str, Any]]:
    """Plan a holder and a waiter, release the holder's lock with `unlock`: the trigger, and what is left
    (pull request numbers named by role, so that the two servers' results compare)."""
    holder = open_and_plan(atlas, emulator, f"holder-{atlas.settings.data_dir.name}", app_change(3))
    waiter = open_and_plan(atlas, emulator, f"waiter-{atlas.settings.data_dir.name}", app_change(5))
    state = atlas.app.config["ATLAS_STATE"]
    assert lock_holders(atlas) == {"app/default": holder.number}
    assert [plan.project.dir for plan in state.plans(REPO, holder.number)] == ["app"]
    [lock] = atlas.app.config["ATLAS_CONTEXT"].locks.all()

    unlock(atlas, lock.id)

    def by_role(text: str) -> str:
        return text.replace(f"#{holder.number}", "#HOLDER").replace(f"#{waiter.number}", "#WAITER")

    roles = {holder.number: "holder", waiter.number: "waiter"}
    [entry] = state.audit_entries(action="unlock")
    return entry.trigger, {
        "lock holders": {key: roles[number] for key, number in lock_holders(atlas).items()},
        "holder's plans": state.plans(REPO, holder.number),
        "audit": (entry.repo, entry.user, entry.outcome, roles[entry.pull_number], entry.project,
                  by_role(entry.detail)),
        "comment to the holder": by_role(last_bot_comment(emulator, holder)),
        "comments to the waiter": [body for body in emulator_comments(emulator, waiter) if "Lock removed" in body],
    }


def emulator_comments(emulator: GitHubEmulator, pull: EmulatedPull) -> list[str]:
    return [str(comment["body"]) for comment in emulator.comments(REPO, pull.number)]


@pytest.mark.usefixtures("repo")
def test_the_cli_unlock_and_the_lock_pages_discard_leave_the_same_result(
    start_web_atlas: Start, github_emulator: GitHubEmulator,
) -> None:
    on_the_page = start_web_atlas(web_username=OPERATOR, web_password=PASSWORD)
    on_the_command_line = start_web_atlas(web_username=OPERATOR, web_password=PASSWORD)

    web_trigger, web = released(on_the_page, github_emulator, discard_on_the_lock_page)
    cli_trigger, cli = released(on_the_command_line, github_emulator, unlock_with_the_cli)

    assert (web_trigger, cli_trigger) == ("web", "cli")
    assert web == cli
    assert web["lock holders"] == {"app/default": "waiter"}
    assert web["holder's plans"] == []
    assert web["audit"][1:] == (OPERATOR, "released", "holder", web["audit"][4],
                                "discarded 1 plan(s) and released the lock; handed over to #WAITER")
    assert web["comment to the holder"] == (
        f"**Lock removed**: an operator (`{OPERATOR}`) released this pull request's lock on `app` (workspace "
        "`default`), and discarded its plan of that project.\n\n"
        "The lock passed to #WAITER, which was waiting for it. Comment `atlas plan` to plan it here again."
    )
    assert web["comments to the waiter"] == []
