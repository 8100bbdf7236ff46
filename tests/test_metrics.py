"""`GET /metrics`: Prometheus text that prometheus_client's own parser reads, counting what atlas did."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from atlas import __version__, metrics
from atlas.github.client import GitHubClient
from atlas.models import Repo
from atlas.vcs import VCSClient, VCSError
from tests.atlas_plugin import RunningAtlas
from tests.commands_world import DEVELOPER, REPO, app_change, open_and_plan
from tests.emulator import EmulatedRepo, GitHubEmulator

pytest_plugins = ["tests.web_plugin"]

Start = Callable[..., RunningAtlas]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def repo(fixture_repo: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator) -> EmulatedRepo:
    created = fixture_repo("multi-project")
    github_emulator.set_permission(REPO, DEVELOPER, "write")
    return created


def scrape(atlas: RunningAtlas) -> Samples:
    """Every sample of the server's /metrics, by name and labels."""
    response = requests.get(f"{atlas.url}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    # One charset parameter: strict scrapers refuse a duplicated one.
    assert response.headers["Content-Type"].count("charset") == 1, response.headers["Content-Type"]
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.mark.usefixtures("repo")
def test_deliveries_are_counted_by_event_and_result(start_web_atlas: Start, github_emulator: GitHubEmulator) -> None:
    atlas = start_web_atlas()
    before = scrape(atlas)
    pull = github_emulator.open_pull(REPO, "first", app_change(3), author=DEVELOPER)
    assert atlas.deliver("ping", {"zen": "Design for failure.", "hook_id": 1}).status_code == 200
    assert atlas.pull_event(pull, delivery_id="delivery-1").status_code == 202
    assert atlas.pull_event(pull, delivery_id="delivery-1").status_code == 200
    assert atlas.pull_event(pull, secret="not the secret").status_code == 401
    assert atlas.deliver("pull_request", b"{not json").status_code == 400
    assert atlas.deliver("made_up_event_" + "x" * 200, {"zen": "x"}).status_code == 200
    atlas.wait_idle()
    after = scrape(atlas)

    def counted(event: str, result: str) -> float:
        labels = {"event": event, "result": result}
        return value(after, "atlas_deliveries_total", **labels) - value(before, "atlas_deliveries_total", **labels)

    assert counted("ping", "ping") == 1
    assert counted("pull_request", "queued") == 1
    assert counted("pull_request", "duplicate") == 1
    assert counted("pull_request", "bad_signature") == 1
    assert counted("pull_request", "bad_payload") == 1
    assert counted("other", "ignored") == 1


@pytest.mark.usefixtures("repo")
def test_gauges_are_read_from_the_queue_and_stores_when_scraped(
    start_web_atlas: Start, github_emulator: GitHubEmulator,
) -> None:
    atlas = start_web_atlas()
    samples = scrape(atlas)
    assert value(samples, "atlas_locks_held") == 0
    open_and_plan(atlas, github_emulator, "first", app_change(3))
    samples = scrape(atlas)
    assert value(samples, "atlas_locks_held") == 1
    assert value(samples, "atlas_queue_depth") == 0
    assert value(samples, "atlas_jobs_running") == 0
    assert value(samples, "atlas_build_info", version=__version__) == 1
    assert value(samples, "process_open_fds") > 0


@pytest.mark.usefixtures("repo")
def test_a_plan_counts_its_github_calls(start_web_atlas: Start, github_emulator: GitHubEmulator) -> None:
    atlas = start_web_atlas()
    before = scrape(atlas)
    open_and_plan(atlas, github_emulator, "first", app_change(3))
    after = scrape(atlas)
    for method in ("post_comment", "set_status", "changed_files"):
        calls = value(after, "atlas_github_api_calls_total", method=method)
        assert calls > value(before, "atlas_github_api_calls_total", method=method), method


@pytest.mark.usefixtures("repo")
def test_a_plan_is_counted_as_a_job_with_its_terraform_runs(
    start_web_atlas: Start, github_emulator: GitHubEmulator,
) -> None:
    """Needs run_job to call metrics.record_job and TerraformRunner.run to call metrics.record_terraform."""
    atlas = start_web_atlas()
    before = scrape(atlas)
    open_and_plan(atlas, github_emulator, "first", app_change(3))
    after = scrape(atlas)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("atlas_jobs_total", command="autoplan", outcome="succeeded") == 1
    assert grew("atlas_job_duration_seconds_count", command="autoplan") == 1
    assert grew("atlas_job_duration_seconds_sum", command="autoplan") > 0
    assert grew("atlas_terraform_duration_seconds_count", command="init") == 1
    assert grew("atlas_terraform_duration_seconds_count", command="plan") == 1
    assert grew("atlas_terraform_duration_seconds_bucket", command="plan", le="+Inf") == 1


@pytest.mark.usefixtures("repo")
def test_the_github_client_counts_its_calls_and_failures(github_emulator: GitHubEmulator) -> None:
    github = GitHubClient(github_emulator.token, github_emulator.api_url, max_retries=0)
    client: VCSClient = github
    pull = github_emulator.open_pull(REPO, "first", app_change(3), author=DEVELOPER)
    repo = Repo(full_name=REPO, clone_url="", html_url=f"{github_emulator.base_url}/{REPO}")

    def counts() -> tuple[float, float]:
        labels = {"method": "get_pull"}
        calls = metrics.REGISTRY.get_sample_value("atlas_github_api_calls_total", labels) or 0.0
        errors = metrics.REGISTRY.get_sample_value("atlas_github_api_errors_total", labels) or 0.0
        return calls, errors

    calls, errors = counts()
    assert client.get_pull(repo, pull.number).number == pull.number
    with pytest.raises(VCSError):
        client.get_pull(repo, 999)
    assert counts() == (calls + 2, errors + 1)
    github.close()


def test_label_values_come_from_closed_sets() -> None:
    """Whatever a sender puts in a header, or a workflow runs, cannot add series without bound."""
    metrics.record_delivery("x" * 1000, "ignored")
    metrics.record_delivery(None, "bad_payload")
    metrics.record_terraform("rm -rf /", 0.1)
    metrics.record_github_call("__class__", ok=True)
    families = {family.name: family for family in text_string_to_metric_families(
        metrics.exposition(metrics.REGISTRY).decode())}
    events = {sample.labels["event"] for sample in families["atlas_deliveries"].samples}
    assert events <= metrics.GITHUB_EVENTS | {"other", "none"}
    commands = {sample.labels["command"] for sample in families["atlas_terraform_duration_seconds"].samples}
    assert commands <= metrics.TERRAFORM_COMMANDS | {"other"}
    methods = {sample.labels["method"] for sample in families["atlas_github_api_calls"].samples}
    assert methods <= metrics.VCS_METHODS | {"other"}
