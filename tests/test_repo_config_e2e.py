"""Repo config (atlas.yaml / atlantis.yaml unchanged), repos.yaml, workflows and versions, end to end."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.atlas_plugin import FIXTURES, RunningAtlas
from tests.commands_world import (
    DEVELOPER,
    REPO,
    app_change,
    bot_comments,
    comment,
    db_change,
    last_bot_comment,
    lock_holders,
    open_and_plan,
    statuses,
)
from tests.conftest import require_binary
from tests.emulator import EmulatedRepo, GitHubEmulator
from tests.tf_release_server import ReleaseServer, serve_releases

Start = Callable[..., RunningAtlas]

ATLANTIS_YAML = """\
version: 3
automerge: false
parallel_plan: true
projects:
- name: app
  dir: app
  autoplan:
    when_modified: ["*.tf", "../modules/**/*.tf"]
- name: database
  dir: db
  autoplan:
    when_modified: ["*.tf", "../modules/**/*.tf"]
"""

CUSTOM_WORKFLOW_YAML = """\
version: 3
projects:
- dir: app
  workflow: audited
workflows:
  audited:
    plan:
      steps:
      - env:
          name: TF_VAR_environment
          value: staging
      - run: echo "checking $PROJECT_NAME in $WORKSPACE for pull request $PULL_NUM by $USER_NAME"
      - init
      - plan
"""


ALLOW_WORKFLOWS = "repos:\n- id: /.*/\n  allowed_overrides: [workflow]\n  allow_custom_workflows: true\n"


@pytest.fixture
def repo_with(github_emulator: GitHubEmulator, state_dir: Path) -> Callable[[dict[str, str]], EmulatedRepo]:
    """acme/infra from the multi-project fixture plus the given files (configs), alice may write."""

    def create(files: dict[str, str]) -> EmulatedRepo:
        repo = github_emulator.create_repo(REPO, source_dir=FIXTURES / "multi-project", files=files,
                                           substitutions={"__STATE_DIR__": str(state_dir)})
        github_emulator.set_permission(REPO, DEVELOPER, "write")
        return repo

    return create


def repos_yaml(tmp_path: Path, text: str) -> str:
    path = tmp_path / "repos.yaml"
    path.write_text(text)
    return str(path)


def test_atlantis_yaml_unchanged_selects_projects_by_when_modified(
    start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator,
) -> None:
    repo_with({"atlantis.yaml": ATLANTIS_YAML})
    atlas = start_atlas()
    label = (FIXTURES / "multi-project/modules/label/main.tf").read_text()
    changed = {"modules/label/main.tf": label.replace("${var.environment}-", "${var.environment}--")}
    pull = open_and_plan(atlas, github_emulator, "label", changed)
    said = last_bot_comment(github_emulator, pull)
    assert "Ran Plan for 2 projects" in said
    assert "`atlas apply -p app`" in said and "`atlas apply -p database`" in said
    contexts = {s["context"] for s in github_emulator.statuses(REPO, pull.head_sha)}
    assert {"atlas/plan", "atlas/plan: app", "atlas/plan: database"} <= contexts

    comment(atlas, pull, "atlas apply -p database")
    atlas.wait_idle()
    assert "Apply complete!" in last_bot_comment(github_emulator, pull)
    assert lock_holders(atlas) == {"app/default": pull.number, "db/default": pull.number}


def test_invalid_repo_config_gets_a_comment_naming_file_key_and_problem(
    start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator,
) -> None:
    repo_with({})
    atlas = start_atlas()
    broken = "version: 3\nprojects:\n- dir: app\n  autoplan:\n    when_modified: app/*.tf\n"
    pull = open_and_plan(atlas, github_emulator, "bad-config", {"atlas.yaml": broken, **app_change(3)})
    said = last_bot_comment(github_emulator, pull)
    assert "atlas.yaml" in said and "projects[0].autoplan.when_modified" in said
    assert lock_holders(atlas) == {}
    assert statuses(github_emulator, pull.head_sha, "atlas/plan")[-1][0] == "failure"


def test_an_absolute_project_dir_is_refused_with_the_reason(
    start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator,
) -> None:
    repo_with({"atlantis.yaml": "version: 3\nprojects:\n- dir: /etc\n"})
    atlas = start_atlas()
    pull = open_and_plan(atlas, github_emulator, "x", app_change(3))

    said = last_bot_comment(github_emulator, pull)
    assert 'atlantis.yaml: projects[0].dir: "/etc" is an absolute path: atlas only runs inside the repository' in said
    assert statuses(github_emulator, pull.head_sha, "atlas/plan")[-1][0] == "failure"


def test_custom_workflow_is_refused_unless_the_server_allows_it(
    start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator, tmp_path: Path,
) -> None:
    repo_with({"atlas.yaml": CUSTOM_WORKFLOW_YAML})
    atlas = start_atlas()
    pull = open_and_plan(atlas, github_emulator, "x", app_change(3))
    said = last_bot_comment(github_emulator, pull)
    assert "atlas.yaml: projects[0].workflow" in said and "allowed_overrides: [workflow]" in said

    # Allowed to choose a workflow, but not to define one that runs its own commands.
    config = repos_yaml(tmp_path, "repos:\n- id: /.*/\n  allowed_overrides: [workflow]\n")
    strict = start_atlas(repo_config=config)
    github_emulator.push(REPO, pull.number, app_change(4))
    strict.pull_event(github_emulator.pull(REPO, pull.number), "synchronize")
    strict.wait_idle()
    assert "allow_custom_workflows" in last_bot_comment(github_emulator, pull)
    assert lock_holders(atlas) == {}


def test_custom_workflow_steps_run_and_their_output_is_in_the_comment(
    start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator, tmp_path: Path,
) -> None:
    repo_with({"atlas.yaml": CUSTOM_WORKFLOW_YAML})
    config = repos_yaml(tmp_path, ALLOW_WORKFLOWS)
    atlas = start_atlas(repo_config=config)
    pull = open_and_plan(atlas, github_emulator, "x", app_change(3))
    said = last_bot_comment(github_emulator, pull)
    assert f"checking  in default for pull request {pull.number} by {DEVELOPER}" in said
    assert '"staging-app"' in said, "the env step's TF_VAR reached terraform"


def test_repos_yaml_requirements_cannot_be_overridden_unless_allowed(
    start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator, tmp_path: Path,
) -> None:
    repo_with({"atlas.yaml": "version: 3\nprojects:\n- dir: app\n  apply_requirements: []\n"})
    config = repos_yaml(tmp_path, "repos:\n- id: /.*/\n  apply_requirements: [approved]\n")
    atlas = start_atlas(repo_config=config)
    pull = open_and_plan(atlas, github_emulator, "x", app_change(3))
    said = last_bot_comment(github_emulator, pull)
    assert "apply_requirements" in said and "allowed_overrides" in said


def test_server_apply_requirements_from_repos_yaml_hold(
    start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator, tmp_path: Path,
) -> None:
    repo_with({})
    config = repos_yaml(tmp_path, "repos:\n- id: /.*/\n  apply_requirements: [approved]\n")
    atlas = start_atlas(repo_config=config)
    pull = open_and_plan(atlas, github_emulator, "x", app_change(3))
    comment(atlas, pull, "atlas apply")
    atlas.wait_idle()
    assert "**approved**" in last_bot_comment(github_emulator, pull)


def test_workflow_hooks_run_around_the_command_and_failures_are_reported(
    start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator, tmp_path: Path,
) -> None:
    repo_with({})
    # Hooks run in the sandbox: they write outside the working copy only where --sandbox-paths lets them.
    outbox = tmp_path / "hook-outbox"
    outbox.mkdir()
    marker = outbox / "pre-hook-ran"
    config = repos_yaml(tmp_path, f"""\
repos:
- id: /.*/
  pre_workflow_hooks:
  - run: echo "pre hook for $PULL_NUM" > {marker}
  post_workflow_hooks:
  - run: echo "cost report unavailable" >&2; exit 3
    description: cost report
""")
    atlas = start_atlas(repo_config=config, reachable=(outbox,))
    pull = open_and_plan(atlas, github_emulator, "x", app_change(3))
    assert marker.read_text().strip() == f"pre hook for {pull.number}"
    said = last_bot_comment(github_emulator, pull)
    assert "post-workflow hook `cost report` failed (exit code 3)" in said
    assert "cost report unavailable" in said


def test_workflow_hooks_with_commands_run_only_for_those_commands(
    start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator, tmp_path: Path,
) -> None:
    repo_with({})
    outbox = tmp_path / "hook-outbox"
    outbox.mkdir()
    config = repos_yaml(tmp_path, f"""\
repos:
- id: /.*/
  pre_workflow_hooks:
  - run: echo plan >> {outbox / "plan-hook"}
    commands: plan
  post_workflow_hooks:
  - run: echo apply >> {outbox / "apply-hook"}
    commands: apply
""")
    atlas = start_atlas(repo_config=config, reachable=(outbox,))
    pull = open_and_plan(atlas, github_emulator, "x", app_change(3))
    assert (outbox / "plan-hook").read_text() == "plan\n"
    assert not (outbox / "apply-hook").exists(), "an apply-only hook ran for a plan"
    comment(atlas, pull, "atlas apply")
    atlas.wait_idle()
    assert "Apply complete" in last_bot_comment(github_emulator, pull)
    assert (outbox / "apply-hook").read_text() == "apply\n"
    assert (outbox / "plan-hook").read_text() == "plan\n", "a plan-only hook ran for an apply"


def test_failing_pre_workflow_hook_stops_the_plan_with_fail_on_pre_workflow_hook_error(
    start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator, tmp_path: Path,
) -> None:
    repo_with({})
    config = repos_yaml(tmp_path, "repos:\n- id: /.*/\n  pre_workflow_hooks:\n  - run: exit 1\n")
    atlas = start_atlas(repo_config=config, fail_on_pre_workflow_hook_error=True)
    pull = open_and_plan(atlas, github_emulator, "x", app_change(3))
    assert "pre-workflow hook `exit 1` failed" in last_bot_comment(github_emulator, pull)
    assert statuses(github_emulator, pull.head_sha, "atlas/plan")[-1] == ("failure", "a pre-workflow hook failed")


def test_depends_on_makes_apply_wait_for_the_named_project(
    start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator,
) -> None:
    repo_with({"atlas.yaml": "version: 3\nprojects:\n- name: database\n  dir: db\n"
                             "- name: app\n  dir: app\n  depends_on: [database]\n"})
    atlas = start_atlas()
    pull = open_and_plan(atlas, github_emulator, "both", {**app_change(3), **db_change("staging")})
    comment(atlas, pull, "atlas apply -p app")
    atlas.wait_idle()
    said = last_bot_comment(github_emulator, pull)
    assert "`app` depends on `database`, which is not applied yet" in said
    comment(atlas, pull, "atlas apply -p database")
    atlas.wait_idle()
    comment(atlas, pull, "atlas apply -p app")
    atlas.wait_idle()
    assert "Apply complete!" in last_bot_comment(github_emulator, pull)


def test_execution_order_groups_apply_in_order_and_abort_on_failure(
    start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator,
) -> None:
    repo_with({"atlas.yaml": "version: 3\nabort_on_execution_order_fail: true\nprojects:\n"
                             "- dir: app\n  execution_order_group: 1\n- dir: db\n  execution_order_group: 2\n"})
    atlas = start_atlas()
    failing_app = (FIXTURES / "multi-project/app/main.tf").read_text() + (
        'resource "terraform_data" "hook" {\n  provisioner "local-exec" {\n    command = "exit 1"\n  }\n}\n')
    pull = open_and_plan(atlas, github_emulator, "both", {"app/main.tf": failing_app, **db_change("staging")})
    comment(atlas, pull, "atlas apply")
    atlas.wait_idle()
    said = last_bot_comment(github_emulator, pull)
    assert "were not applied" in said and "abort_on_execution_order_fail" in said
    assert statuses(github_emulator, pull.head_sha, "atlas/apply")[-1] == ("failure", "0/2 projects applied")


def test_repo_locks_disabled_takes_no_lock(
    start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator, tmp_path: Path,
) -> None:
    repo_with({"atlas.yaml": "version: 3\nprojects:\n- dir: app\n  repo_locks:\n    mode: disabled\n"})
    allowing = repos_yaml(tmp_path, "repos:\n- id: /.*/\n  allowed_overrides: [repo_locks]\n")
    atlas = start_atlas(repo_config=allowing)
    first = open_and_plan(atlas, github_emulator, "first", app_change(3))
    second = open_and_plan(atlas, github_emulator, "second", app_change(4))
    assert lock_holders(atlas) == {}
    assert "Plan: 1 to add" in last_bot_comment(github_emulator, first)
    assert "Plan: 1 to add" in last_bot_comment(github_emulator, second)


def test_import_and_state_rm_run_and_discard_the_plan(
    start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator, state_dir: Path,
) -> None:
    repo_with({})
    atlas = start_atlas(allow_commands="plan,apply,unlock,import,state rm")
    pull = open_and_plan(atlas, github_emulator, "x", app_change(3))
    comment(atlas, pull, "atlas apply")
    atlas.wait_idle()

    comment(atlas, pull, "atlas state rm -d app terraform_data.service")
    atlas.wait_idle()
    said = last_bot_comment(github_emulator, pull)
    assert "Ran State rm for dir: `app`" in said and "Removed terraform_data.service" in said
    state = json.loads((state_dir / "multi-project/app.tfstate").read_text())
    assert [r["name"] for r in state["resources"]] == []

    comment(atlas, pull, "atlas import -d app terraform_data.service 5d3f9a1c-0000-4000-8000-000000000001")
    atlas.wait_idle()
    said = last_bot_comment(github_emulator, pull)
    assert "Ran Import for dir: `app`" in said and "Import successful" in said


def test_import_is_off_unless_allowed(
    start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator,
) -> None:
    repo_with({})
    atlas = start_atlas()
    pull = github_emulator.open_pull(REPO, "x", app_change(3), author=DEVELOPER)
    comment(atlas, pull, "atlas import -d app terraform_data.service abc")
    atlas.wait_idle()
    assert "not enabled" in last_bot_comment(github_emulator, pull)


@pytest.fixture
def releases(tmp_path: Path) -> Iterator[ReleaseServer]:
    real = require_binary("terraform", "install Terraform 1.11 from https://developer.hashicorp.com/terraform/install")
    with serve_releases(tmp_path / "releases", ("1.6.6", "1.11.4"), real) as server:
        yield server


def test_project_terraform_version_is_downloaded_verified_and_used(
    start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator,
    releases: ReleaseServer, tmp_path: Path,
) -> None:
    repo_with({"atlas.yaml": (
        "version: 3\nprojects:\n- dir: app\n  terraform_version: '~> 1.6.0'\n  workflow: versioned\n"
        "workflows:\n  versioned:\n    plan:\n      steps:\n"
        "      - run: terraform version\n      - init\n      - plan\n")})
    config = repos_yaml(tmp_path, ALLOW_WORKFLOWS)
    atlas = start_atlas(repo_config=config, tf_download_url=releases.url)
    pull = open_and_plan(atlas, github_emulator, "x", app_change(3))
    said = last_bot_comment(github_emulator, pull)
    assert "Terraform v1.6.6" in said
    assert "Plan: 1 to add" in said
    assert releases.count(releases.zip_name("1.6.6")) == 1


def test_a_version_that_cannot_be_had_fails_the_project_with_a_clear_comment(
    start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator,
    releases: ReleaseServer,
) -> None:
    repo_with({"atlas.yaml": "version: 3\nprojects:\n- dir: app\n  terraform_version: 1.4.6\n"})
    atlas = start_atlas(tf_download=False)
    pull = open_and_plan(atlas, github_emulator, "x", app_change(3))
    said = last_bot_comment(github_emulator, pull)
    assert "1.4.6" in said and "--tf-download=false" in said


def _set_by(where: str, key: str, value: str) -> tuple[dict[str, str], str]:
    """The repository's files and the repos.yaml text that set `key`, in repos.yaml or in the repository's config."""
    if where == "repos.yaml":
        return {}, f"repos:\n- id: /.*/\n  {key}: {value}\n"
    return ({"atlas.yaml": f"version: 3\nprojects:\n- dir: app\n  {key}: {value}\n"},
            f"repos:\n- id: /.*/\n  allowed_overrides: [{key}]\n")


WHERE = pytest.mark.parametrize("where", ["repos.yaml", "repo config"])


@WHERE
def test_plan_requirements_refuse_a_plan_until_they_are_met(
    where: str, start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator,
    tmp_path: Path,
) -> None:
    files, server = _set_by(where, "plan_requirements", "[approved]")
    repo_with(files)
    atlas = start_atlas(repo_config=repos_yaml(tmp_path, server))
    pull = open_and_plan(atlas, github_emulator, "x", app_change(3))
    said = last_bot_comment(github_emulator, pull)
    assert "atlas did not plan" in said and "requires, before plan" in said and "**approved**" in said
    assert lock_holders(atlas) == {}


@WHERE
def test_import_requirements_refuse_an_import_until_they_are_met(
    where: str, start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator,
    tmp_path: Path,
) -> None:
    files, server = _set_by(where, "import_requirements", "[approved]")
    repo_with(files)
    atlas = start_atlas(allow_commands="plan,apply,unlock,import", repo_config=repos_yaml(tmp_path, server))
    pull = open_and_plan(atlas, github_emulator, "x", app_change(3))
    comment(atlas, pull, "atlas import -d app terraform_data.service 5d3f9a1c-0000-4000-8000-000000000001")
    atlas.wait_idle()
    said = last_bot_comment(github_emulator, pull)
    assert "atlas did not import" in said and "requires, before import" in said and "**approved**" in said


@WHERE
def test_silence_pr_comments_plans_without_a_comment_but_with_its_status(
    where: str, start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator,
    tmp_path: Path,
) -> None:
    files, server = _set_by(where, "silence_pr_comments", "[plan]")
    repo_with(files)
    atlas = start_atlas(repo_config=repos_yaml(tmp_path, server))
    pull = open_and_plan(atlas, github_emulator, "x", app_change(3))
    assert bot_comments(github_emulator, pull) == []
    assert statuses(github_emulator, pull.head_sha, "atlas/plan")[-1][0] == "success"


def test_repos_yaml_allowed_workflows_refuse_a_workflow_the_repository_may_not_choose(
    start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator, tmp_path: Path,
) -> None:
    repo_with({"atlas.yaml": "version: 3\nprojects:\n- dir: app\n  workflow: green\n"})
    config = repos_yaml(tmp_path, """\
repos:
- id: /.*/
  allowed_overrides: [workflow]
  allowed_workflows: [blue]
workflows:
  blue: {}
  green: {}
""")
    atlas = start_atlas(repo_config=config)
    pull = open_and_plan(atlas, github_emulator, "x", app_change(3))
    said = last_bot_comment(github_emulator, pull)
    assert 'workflow "green" is not allowed for this repository; allowed: blue' in said
    assert lock_holders(atlas) == {}


def test_repos_yaml_repo_config_file_is_the_config_atlas_reads(
    start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator, tmp_path: Path,
) -> None:
    # atlas.yaml at the root would plan app; the file repos.yaml names plans only db.
    repo_with({"atlas.yaml": "version: 3\nprojects:\n- dir: app\n",
               "ci/atlas-projects.yaml": "version: 3\nprojects:\n- dir: db\n"})
    config = repos_yaml(tmp_path, "repos:\n- id: /.*/\n  repo_config_file: ci/atlas-projects.yaml\n")
    atlas = start_atlas(repo_config=config)
    pull = open_and_plan(atlas, github_emulator, "x", {**app_change(3), **db_change("staging")})
    assert statuses(github_emulator, pull.head_sha, "atlas/plan: db/default")
    assert not statuses(github_emulator, pull.head_sha, "atlas/plan: app/default")


def test_shell_and_shell_args_choose_the_interpreter_of_run_steps_and_hooks(
    start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator, tmp_path: Path,
) -> None:
    require_binary("bash", "install bash (Debian package bash)")
    repo_with({"atlas.yaml": "version: 3\nprojects:\n- dir: app\n  workflow: bashed\n"})
    outbox = tmp_path / "hook-outbox"
    outbox.mkdir()
    config = repos_yaml(tmp_path, f"""\
repos:
- id: /.*/
  allowed_overrides: [workflow]
  pre_workflow_hooks:
  - run: 'echo "hook in ${{BASH_VERSION:+bash}} with $-" > {outbox / "shell"}'
    shell: bash
    shellArgs: -ec
workflows:
  bashed:
    plan:
      steps:
      - run:
          command: 'if [[ -n "$BASH_VERSION" ]]; then echo "step in bash with $-"; fi'
          shell: bash
          shellArgs: -euc
      - env:
          name: ENV_SHELL
          command: 'echo ${{BASH_VERSION:+bash}}'
          shell: bash
          shellArgs: -c
      - multienv:
          command: 'echo MULTI_SHELL=${{BASH_VERSION:+bash}}'
          shell: bash
          shellArgs: -c
      - run: echo "env step in $ENV_SHELL, multienv step in $MULTI_SHELL"
      - init
      - plan
""")
    atlas = start_atlas(repo_config=config, reachable=(outbox,))
    pull = open_and_plan(atlas, github_emulator, "x", app_change(3))
    hook_line = (outbox / "shell").read_text()
    assert hook_line.startswith("hook in bash with ") and "e" in hook_line.split(" with ")[1]
    said = last_bot_comment(github_emulator, pull)
    assert "step in bash with " in said
    flags = said.split("step in bash with ")[1].split()[0]
    assert "e" in flags and "u" in flags
    assert "env step in bash, multienv step in bash" in said


def _timed_workflow_config(outbox: Path, parallel: bool) -> str:
    flag = "true" if parallel else "false"
    timed = (f"date +%s.%N > {outbox}/$COMMAND_NAME-start-$PROJECT_NAME; sleep 1; "
             f"date +%s.%N > {outbox}/$COMMAND_NAME-end-$PROJECT_NAME")
    return f"""\
version: 3
parallel_plan: {flag}
parallel_apply: {flag}
projects:
- {{name: app, dir: app, workflow: timed}}
- {{name: db, dir: db, workflow: timed}}
workflows:
  timed:
    plan:
      steps: [{{run: '{timed}'}}, init, plan]
    apply:
      steps: [{{run: '{timed}'}}, apply]
"""


def _overlapped(outbox: Path, command: str) -> bool:
    def at(edge: str, project: str) -> float:
        return float((outbox / f"{command}-{edge}-{project}").read_text())
    return at("start", "db") < at("end", "app") and at("start", "app") < at("end", "db")


@pytest.mark.parametrize("parallel", [True, False], ids=["parallel", "one-after-another"])
def test_parallel_plan_and_apply_run_a_pull_requests_projects_at_once_or_in_turn(
    parallel: bool, start_atlas: Start, repo_with: Callable[..., EmulatedRepo], github_emulator: GitHubEmulator,
    tmp_path: Path,
) -> None:
    outbox = tmp_path / "timings"
    outbox.mkdir()
    repo_with({"atlas.yaml": _timed_workflow_config(outbox, parallel)})
    atlas = start_atlas(repo_config=repos_yaml(tmp_path, ALLOW_WORKFLOWS), reachable=(outbox,))
    pull = open_and_plan(atlas, github_emulator, "x", {**app_change(3), **db_change("staging")})
    assert _overlapped(outbox, "plan") is parallel
    comment(atlas, pull, "atlas apply")
    atlas.wait_idle()
    assert "Apply complete" in last_bot_comment(github_emulator, pull)
    assert _overlapped(outbox, "apply") is parallel
