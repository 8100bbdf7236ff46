"""The operator pages in a real headless Chromium: locks, the unlock action, live job output, basic auth."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from atlas.config.settings import SettingsError
from atlas.models import JobStatus, utcnow
from atlas.stores.jobs import JobRecord
from atlas.web.ansi import ansi_to_html, strip_ansi
from atlas.web.output import expire_job_output
from tests.atlas_plugin import RunningAtlas
from tests.commands_world import (
    DEVELOPER,
    REPO,
    app_change,
    last_bot_comment,
    lock_holders,
    open_and_plan,
)
from tests.emulator import EmulatedRepo, GitHubEmulator, webhook_payload

if TYPE_CHECKING:
    from tests.web_plugin import GatedTerraform

pytest_plugins = ["tests.web_plugin"]

Start = Callable[..., RunningAtlas]
Browser = Callable[..., WebDriver]

OPERATOR, PASSWORD = "operator", "a long web password"
"""The pages' actions need a web password; these tests log in with it."""


@pytest.fixture
def repo(fixture_repo: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator) -> EmulatedRepo:
    created = fixture_repo("multi-project")
    github_emulator.set_permission(REPO, DEVELOPER, "write")
    return created


def wait_for(browser: WebDriver, condition: Callable[[WebDriver], object], timeout: float = 30) -> None:
    WebDriverWait(browser, timeout, poll_frequency=0.05).until(condition)


def output_text(browser: WebDriver) -> str:
    return str(browser.find_element(By.ID, "output").text)


def wait_for_running_job(atlas: RunningAtlas, printed: str) -> JobRecord:
    """The job running now, once its log shows `printed`."""
    state = atlas.app.config["ATLAS_STATE"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        running = state.jobs(statuses=(JobStatus.RUNNING,))
        if running:
            log_file = atlas.settings.data_dir / "jobs" / f"{running[0].job.id}.log"
            if log_file.exists() and printed in log_file.read_text():
                return running[0]  # type: ignore[no-any-return]
        time.sleep(0.05)
    pytest.fail(f"no running job printed {printed!r} within 60 s")


@pytest.mark.usefixtures("repo")
def test_the_front_page_lists_the_lock_a_plan_took_and_its_job(
    start_web_atlas: Start, github_emulator: GitHubEmulator, open_browser: Browser,
) -> None:
    atlas = start_web_atlas()
    pull = open_and_plan(atlas, github_emulator, "first", app_change(3))
    browser = open_browser()

    browser.get(f"{atlas.url}/")
    [row] = browser.find_elements(By.CSS_SELECTOR, "tr.lock")
    cells = {cell.get_attribute("data-label"): cell.text for cell in row.find_elements(By.TAG_NAME, "td")}
    assert cells["Repository"] == REPO
    assert cells["Project"] == "app"
    assert cells["Workspace"] == "default"
    assert cells["Pull request"] == f"{REPO}#{pull.number} on GitHub"
    assert cells["Locked by"] == DEVELOPER
    assert re.fullmatch(r"[0-9.]+ s ago", cells["Since"])
    github = row.find_element(By.LINK_TEXT, "on GitHub")
    assert github.get_attribute("href") == pull.html_url
    jobs = browser.find_element(By.ID, "jobs").text
    assert "Nothing is running." in jobs
    assert re.search(rf"autoplan {re.escape(REPO)}#{pull.number} succeeded {DEVELOPER}", jobs)

    row.find_element(By.LINK_TEXT, f"{REPO}#{pull.number}").click()
    wait_for(browser, lambda b: "/pulls/" in b.current_url)
    [project] = browser.find_elements(By.CSS_SELECTOR, "tr.project")
    cells = {cell.get_attribute("data-label"): cell.text for cell in project.find_elements(By.TAG_NAME, "td")}
    assert cells == {
        "Project": "app",
        "Workspace": "default",
        "State": "planned job",
        "Plan": "+1 ~0 -0 (1 to add, 0 to change, 0 to destroy)",
        "Lock": "held",
    }


@pytest.mark.usefixtures("repo")
def test_discarding_a_lock_asks_for_confirmation_then_releases_it_and_tells_the_pull_request(
    start_web_atlas: Start, github_emulator: GitHubEmulator, open_browser: Browser,
) -> None:
    atlas = start_web_atlas(web_username=OPERATOR, web_password=PASSWORD)
    first = open_and_plan(atlas, github_emulator, "first", app_change(3))
    second = open_and_plan(atlas, github_emulator, "second", app_change(5))
    browser = open_browser(username=OPERATOR, password=PASSWORD)

    browser.get(f"{atlas.url}/")
    browser.find_element(By.CSS_SELECTOR, "tr.lock").find_element(By.LINK_TEXT, "Details").click()
    wait_for(browser, lambda b: "/locks/" in b.current_url)
    lock_page = browser.current_url
    facts = browser.find_element(By.CSS_SELECTOR, "dl.facts").text
    assert f"{REPO}#{first.number}" in facts and "1 to add" in facts and f"{REPO}#{second.number}" in facts
    form = browser.find_element(By.CSS_SELECTOR, "form.danger-zone")
    assert f"The lock passes to #{second.number}" in form.text

    # Without the box ticked the browser does not send the form.
    form.find_element(By.CSS_SELECTOR, "button.danger").click()
    time.sleep(0.5)
    assert browser.current_url == lock_page
    assert lock_holders(atlas) == {"app/default": first.number}

    form.find_element(By.NAME, "confirm").click()
    form.find_element(By.CSS_SELECTOR, "button.danger").click()
    wait_for(browser, lambda b: "released=" in b.current_url)
    notice = browser.find_element(By.CSS_SELECTOR, ".notice").text
    assert notice == (
        f"Released the lock on {REPO} app (workspace default) held by #{first.number} and discarded its plan. "
        f"The lock passed to #{second.number}, which was waiting for it; atlas plans it next. "
        f"#{first.number} was told in a comment."
    )
    atlas.wait_idle()

    told = last_bot_comment(github_emulator, first)
    assert told.startswith(f"**Lock removed**: an operator (`{OPERATOR}`) released this pull request's lock on `app`")
    assert "discarded its plan" in told and f"The lock passed to #{second.number}" in told
    assert atlas.app.config["ATLAS_STATE"].plans(REPO, first.number) == []
    assert lock_holders(atlas) == {"app/default": second.number}
    assert "replicas = 5" in last_bot_comment(github_emulator, second)
    browser.get(f"{atlas.url}/")
    assert browser.find_element(By.CSS_SELECTOR, "tr.lock td[data-label='Pull request']").text.startswith(
        f"{REPO}#{second.number}")


@pytest.mark.usefixtures("repo")
def test_the_unlock_form_is_refused_without_its_csrf_token_or_for_a_lock_that_changed_hands(
    start_web_atlas: Start, github_emulator: GitHubEmulator,
) -> None:
    atlas = start_web_atlas(web_username=OPERATOR, web_password=PASSWORD)
    first = open_and_plan(atlas, github_emulator, "first", app_change(3))
    [lock] = atlas.app.config["ATLAS_CONTEXT"].locks.all()
    session = requests.Session()
    session.auth = (OPERATOR, PASSWORD)
    page = session.get(f"{atlas.url}/locks/{lock.id}", timeout=10)
    assert page.status_code == 200
    assert page.headers["X-Frame-Options"] == "DENY"
    token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text)
    holder = re.search(r'name="holder" value="([^"]+)"', page.text)
    assert token and holder
    form = {"confirm": "yes", "holder": holder.group(1)}
    unlock = f"{atlas.url}/locks/{lock.id}/unlock"

    assert session.post(unlock, data=form, timeout=10).status_code == 403
    assert session.post(unlock, data={**form, "csrf_token": "0" * 64}, timeout=10).status_code == 403
    # The right token from another browser (no cookie) is worthless.
    assert requests.post(unlock, data={**form, "csrf_token": token.group(1)}, auth=(OPERATOR, PASSWORD),
                         timeout=10).status_code == 403
    unconfirmed = session.post(unlock, data={"holder": holder.group(1), "csrf_token": token.group(1)}, timeout=10)
    assert unconfirmed.status_code == 400 and "Tick the box" in unconfirmed.text
    stale = session.post(unlock, data={**form, "holder": "99@2020-01-01T00:00:00+00:00",
                                       "csrf_token": token.group(1)}, timeout=10)
    assert stale.status_code == 409 and "changed since this page was loaded" in stale.text
    assert lock_holders(atlas) == {"app/default": first.number}

    done = session.post(unlock, data={**form, "csrf_token": token.group(1)}, timeout=10, allow_redirects=False)
    assert done.status_code == 303
    assert lock_holders(atlas) == {}
    # A second post of the same form finds the lock gone and releases nothing.
    assert session.post(unlock, data={**form, "csrf_token": token.group(1)}, timeout=10).status_code == 404


@pytest.mark.usefixtures("repo")
def test_without_a_web_password_the_pages_are_read_only_and_say_how_to_enable_actions(
    start_web_atlas: Start, github_emulator: GitHubEmulator,
) -> None:
    atlas = start_web_atlas()
    first = open_and_plan(atlas, github_emulator, "first", app_change(3))
    [lock] = atlas.app.config["ATLAS_CONTEXT"].locks.all()
    session = requests.Session()

    page = session.get(f"{atlas.url}/locks/{lock.id}", timeout=10)
    assert page.status_code == 200
    assert "<form" not in page.text.split("<h1", 1)[1]
    assert "These pages are read-only" in page.text and "--web-password" in page.text
    assert f"atlas locks unlock {lock.id}" in page.text

    refused = session.post(f"{atlas.url}/locks/{lock.id}/unlock", data={"confirm": "yes"}, timeout=10)
    assert refused.status_code == 403
    assert "--web-username and --web-password" in refused.text
    assert lock_holders(atlas) == {"app/default": first.number}


@pytest.mark.usefixtures("repo")
def test_impossible_ids_get_404_without_asking_the_store(start_web_atlas: Start) -> None:
    atlas = start_web_atlas()
    for path, says in [
        ("/pulls/acme/infra/" + "9" * 40, "cannot be a pull request number"),
        ("/pulls/acme/infra/0", "cannot be a pull request number"),
        ("/pulls/acme/in%20fra/1", "not the address of a repository"),
        ("/jobs/" + "9" * 400, "not the address of a job"),
        ("/jobs/%ED%A0%80", "not the address of a job"),
        ("/jobs/0123456789abcdef/output.txt", "no record of job"),
        ("/locks/%ff%fe", "not the address of a lock"),
        ("/locks/" + "A" * 3000, "not the address of a lock"),
    ]:
        response = requests.get(f"{atlas.url}{path}", timeout=10)
        assert response.status_code == 404, (path, response.status_code, response.text[:200])
        assert says in response.text, path


@pytest.mark.usefixtures("repo")
def test_a_job_that_wrote_nothing_says_so_rather_than_that_its_output_was_deleted(
    start_web_atlas: Start, github_emulator: GitHubEmulator,
) -> None:
    atlas = start_web_atlas()
    pull = github_emulator.open_pull(REPO, "asking", app_change(3), author=DEVELOPER)
    assert atlas.deliver("issue_comment", webhook_payload("issue_comment", pull, "created", body="atlas help",
                                                          commenter=DEVELOPER)).status_code == 202
    atlas.wait_idle()
    [record] = atlas.app.config["ATLAS_STATE"].jobs()

    page = requests.get(f"{atlas.url}/jobs/{record.job.id}", timeout=10)
    assert page.status_code == 200
    assert "This job wrote no output" in page.text
    assert "was deleted" not in page.text
    text = requests.get(f"{atlas.url}/jobs/{record.job.id}/output.txt", timeout=10)
    assert (text.status_code, text.text) == (200, "")


@pytest.mark.usefixtures("repo")
def test_a_job_page_shows_output_arriving_while_terraform_runs_and_all_of_it_afterwards(
    start_web_atlas: Start, gated_terraform: GatedTerraform, github_emulator: GitHubEmulator,
    open_browser: Browser, tmp_path: Path,
) -> None:
    atlas = start_web_atlas(terraform_bin=gated_terraform.path, reachable=(f"{gated_terraform.gates}:ro",))
    state = atlas.app.config["ATLAS_STATE"]
    pull = github_emulator.open_pull(REPO, "slow", app_change(3), author=DEVELOPER)
    assert atlas.pull_event(pull).status_code == 202
    running = wait_for_running_job(atlas, printed="plan step 1")

    browser = open_browser()
    browser.get(f"{atlas.url}/jobs/{running.job.id}")
    assert output_text(browser).endswith("plan step 1")
    assert browser.find_element(By.ID, "job-status").text == "running"

    gated_terraform.open(1)
    wait_for(browser, lambda b: output_text(b).endswith("plan step 4"))
    # Terraform waits at its second gate: the page grew while the job still runs.
    assert state.get_job(running.job.id).status is JobStatus.RUNNING
    browser.save_screenshot(str(tmp_path / "job-running.png"))

    gated_terraform.open(2)
    wait_for(browser, lambda b: b.find_element(By.ID, "job-status").text.startswith("succeeded"), timeout=120)
    live = output_text(browser)
    assert "Plan: 1 to add, 0 to change, 0 to destroy." in live
    assert [line for line in live.splitlines() if line.startswith("plan step")] == [
        f"plan step {i}" for i in range(1, 5)
    ]
    assert browser.find_element(By.ID, "live-note").text == "The job has finished."

    browser.refresh()
    assert output_text(browser) == live
    assert browser.find_element(By.ID, "output").get_attribute("data-stream") is None
    assert browser.find_elements(By.ID, "live-note") == []


@pytest.mark.usefixtures("repo")
def test_a_finished_jobs_output_comes_from_the_state_store_until_it_expires(
    start_web_atlas: Start, github_emulator: GitHubEmulator,
) -> None:
    atlas = start_web_atlas()
    open_and_plan(atlas, github_emulator, "first", app_change(3))
    ctx = atlas.app.config["ATLAS_CONTEXT"]
    [record] = ctx.state.jobs()
    log_file = atlas.settings.data_dir / "jobs" / f"{record.job.id}.log"
    # What run_job does when a job ends: keep its output in the state store.
    ctx.state.append_job_output(record.job.id, log_file.read_text())
    log_file.unlink()

    page = requests.get(f"{atlas.url}/jobs/{record.job.id}", timeout=10)
    assert page.status_code == 200 and "Plan: 1 to add, 0 to change, 0 to destroy." in page.text
    text = requests.get(f"{atlas.url}/jobs/{record.job.id}/output.txt", timeout=10)
    assert text.headers["Content-Type"].startswith("text/plain") and "$ terraform plan" in text.text

    assert expire_job_output(ctx, timedelta(days=30), now=utcnow() + timedelta(days=31)) == 1
    page = requests.get(f"{atlas.url}/jobs/{record.job.id}", timeout=10)
    assert "The output of this job was deleted: atlas keeps job output for 30 days." in page.text


def test_basic_auth_guards_the_pages_but_not_events_or_healthz(
    start_web_atlas: Start, open_browser: Browser,
) -> None:
    password = "correct horse battery staple"
    atlas = start_web_atlas(web_username="operator", web_password=password)
    for path in ("/", "/locks/YWNtZS9pbmZyYS9hcHAvZGVmYXVsdA", "/jobs/0123456789abcdef", "/status", "/metrics",
                 "/assets/atlas.css", "/pulls/acme/infra/1"):
        refused = requests.get(f"{atlas.url}{path}", timeout=10)
        assert refused.status_code == 401, path
        assert refused.headers["WWW-Authenticate"] == 'Basic realm="atlas", charset="UTF-8"'
    assert requests.get(f"{atlas.url}/", auth=("operator", "wrong"), timeout=10).status_code == 401
    assert requests.get(f"{atlas.url}/", auth=("someone", password), timeout=10).status_code == 401
    assert requests.get(f"{atlas.url}/", auth=("operator", password), timeout=10).status_code == 200
    assert requests.get(f"{atlas.url}/healthz", timeout=10).status_code == 200
    pong = atlas.deliver("ping", {"zen": "Keep it logically awesome.", "hook_id": 1})
    assert (pong.status_code, pong.text) == (200, "pong\n")

    browser = open_browser(username="operator", password=password)
    browser.get(f"{atlas.url}/")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Locks 0"
    # The stylesheet came through the same credentials.
    header = browser.find_element(By.CSS_SELECTOR, "header.bar")
    assert header.value_of_css_property("background-color") == "rgba(36, 41, 47, 1)"
    assert password not in atlas.log_text()


@pytest.mark.usefixtures("repo")
def test_the_pages_fit_a_phone_screen(
    start_web_atlas: Start, github_emulator: GitHubEmulator, open_browser: Browser, tmp_path: Path,
) -> None:
    atlas = start_web_atlas()
    pull = open_and_plan(atlas, github_emulator, "first", app_change(3))
    ctx = atlas.app.config["ATLAS_CONTEXT"]
    [lock] = ctx.locks.all()
    [record] = ctx.state.jobs()
    shots = tmp_path / "screenshots"
    shots.mkdir()
    pages = {
        "index": "/",
        "lock": f"/locks/{lock.id}",
        "job": f"/jobs/{record.job.id}",
        "pull": f"/pulls/{REPO}/{pull.number}",
    }
    for width, height in ((390, 844), (1280, 900)):
        browser = open_browser(width, height)
        for name, path in pages.items():
            browser.get(f"{atlas.url}{path}")
            viewport = browser.execute_script("return window.innerWidth")
            page_width = browser.execute_script("return document.documentElement.scrollWidth")
            assert page_width <= viewport, f"{path} is {page_width} px wide on a {viewport} px screen"
            browser.save_screenshot(str(shots / f"{name}-{width}.png"))
        if width == 390:
            # On a phone each lock is a card of labelled lines, not a squeezed table row.
            browser.get(f"{atlas.url}/")
            assert not browser.find_element(By.CSS_SELECTOR, "thead").is_displayed()
            cell = browser.find_element(By.CSS_SELECTOR, "tr.lock td[data-label='Repository']")
            label = browser.execute_script("return getComputedStyle(arguments[0], '::before').content", cell)
            assert (cell.value_of_css_property("display"), label) == ("flex", '"Repository"')


def test_terminal_colours_become_spans_and_other_escapes_disappear() -> None:
    line = "\x1b[1m\x1b[32m+\x1b[0m resource \x1b[31m<b>gone</b>\x1b[39m\x1b[K done\r"
    assert str(ansi_to_html(line)) == (
        '<span class="ansi-bold ansi-fg-green">+</span> resource '
        '<span class="ansi-fg-red">&lt;b&gt;gone&lt;/b&gt;</span> done'
    )
    assert strip_ansi(line) == "+ resource <b>gone</b> done"
    assert str(ansi_to_html("\x1b[38;5;196mred\x1b[0m \x1b[1;4;97;41mloud\x1b[22;24;39;49m")) == (
        'red <span class="ansi-bold ansi-underline ansi-fg-bright-white ansi-bg-red">loud</span>'
    )
    assert str(ansi_to_html("plain & simple")) == "plain &amp; simple"


def test_a_web_password_without_a_username_is_refused_rather_than_leaving_the_pages_open(
    start_web_atlas: Start,
) -> None:
    # Refused by init_app, or by the settings once they check it themselves.
    with pytest.raises((ValueError, SettingsError), match="web-username"):
        start_web_atlas(web_password="lonely")
