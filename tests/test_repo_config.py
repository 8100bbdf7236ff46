"""Repo configs (atlas.yaml, Atlantis's atlantis.yaml): what they mean, and what a wrong one reports."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest

from atlas.config.loading import load_repo_config, parse_repo_config
from atlas.config.raw import ConfigError
from atlas.config.server import RepoPolicy, apply_repo_config
from atlas.config.valid import DEFAULT_WHEN_MODIFIED, ApplyOnMerge, Drift, RepoConfig, RepoLocksMode
from atlas.config.workflow import DEFAULT_WORKFLOW, Stage, Step, StepName
from atlas.models import Project
from atlas.runtime.project_selection import select_projects
from atlas.vcs import ChangedFile

CORPUS = Path(__file__).resolve().parent / "atlantis_corpus"


def parse(text: str, file: str = "atlantis.yaml", **kwargs: Any) -> RepoConfig:
    return parse_repo_config(textwrap.dedent(text), file, **kwargs)


def error_of(text: str, file: str = "atlantis.yaml", **kwargs: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(text, file, **kwargs)
    return str(caught.value)


# --- what a valid config means --------------------------------------------------------------------


def test_a_project_gets_atlantis_defaults() -> None:
    config = parse(
        """
        version: 3
        projects:
        - dir: ./app/
        """
    )

    (project,) = config.projects
    assert project.project == Project(dir="app", workspace="default", name=None)
    assert project.autoplan_enabled is True
    assert project.when_modified == DEFAULT_WHEN_MODIFIED
    assert "**/.terraform.lock.hcl" in DEFAULT_WHEN_MODIFIED
    assert project.workflow is None
    assert project.apply_requirements is None  # not set: the server decides
    assert project.execution_order_group == 0
    assert config.workflows == {}
    assert config.automerge is None


def test_every_documented_key_is_read() -> None:
    config = parse(
        """
        version: 3
        automerge: true
        parallel_plan: true
        parallel_apply: false
        abort_on_execution_order_fail: true
        repo_locks: {mode: on_apply}
        apply_on_merge: always
        projects:
        - name: network
          branch: /main/
          dir: envs/prod/network
          workspace: prod
          terraform_version: v1.9.8
          autoplan:
            enabled: false
            when_modified: ["*.tf", "../../../modules/**/*.tf"]
          plan_requirements: [approved]
          apply_requirements: [mergeable, approved, undiverged]
          import_requirements: []
          workflow: prod
          execution_order_group: 2
          repo_locking: true
          repo_locks: {mode: disabled}
          silence_pr_comments: [apply]
          apply_on_merge: only
          drift: {schedule: "0 6 * * 1-5", remediate: true}
        - name: app
          dir: envs/prod/app
          depends_on: [network]
          apply_on_merge: false
        workflows:
          prod:
            plan:
              steps: [init, plan]
        """
    )

    network, app = config.projects
    assert (config.automerge, config.parallel_plan, config.parallel_apply) == (True, True, False)
    assert config.abort_on_execution_order_fail is True
    assert config.repo_locks_mode is RepoLocksMode.ON_APPLY
    assert config.apply_on_merge is ApplyOnMerge.ALWAYS
    assert network.project == Project(dir="envs/prod/network", workspace="prod", name="network")
    assert network.branch_matches("main") and not network.branch_matches("develop")
    assert network.terraform_version == "v1.9.8"
    assert network.autoplan_enabled is False
    assert network.when_modified == ("*.tf", "../../../modules/**/*.tf")
    assert network.plan_requirements == ("approved",)
    assert network.apply_requirements == ("mergeable", "approved", "undiverged")
    assert network.import_requirements == ()
    assert network.workflow == "prod"
    assert network.execution_order_group == 2
    assert network.repo_locks_mode is RepoLocksMode.DISABLED
    assert network.silence_pr_comments == ("apply",)
    assert network.apply_on_merge is ApplyOnMerge.ONLY
    assert Drift().merged(network.drift) == Drift(enabled=True, schedule="0 6 * * 1-5", remediate=True)
    assert app.depends_on == ("network",)
    assert app.apply_on_merge is ApplyOnMerge.OFF


def test_numbers_in_string_keys_keep_how_they_were_written() -> None:
    config = parse(
        """
        version: 3
        projects:
        - dir: 2024
          workspace: 10
          terraform_version: 1.10
        """
    )

    assert (config.projects[0].dir, config.projects[0].workspace) == ("2024", "10")
    assert config.projects[0].terraform_version == "1.10"


def test_yaml_anchors_and_merge_keys_work_as_in_atlantis() -> None:
    config = parse(
        """
        version: 3
        projects:
        - &base
          name: dev
          dir: app
          workspace: dev
          autoplan: {when_modified: ["*.tf"]}
        - <<: *base
          name: prod
          workspace: prod
        """
    )

    assert [(p.name, p.workspace, p.when_modified) for p in config.projects] == [
        ("dev", "dev", ("*.tf",)),
        ("prod", "prod", ("*.tf",)),
    ]


def test_an_empty_file_is_missing_its_version() -> None:
    assert error_of("") == "atlantis.yaml: version: is required: start the file with version: 3"


def test_version_2_is_read_as_atlantis_does() -> None:
    assert parse("version: 2\n").version == 2


def test_steps_in_every_documented_form_become_workflow_steps() -> None:
    config = parse(
        """
        version: 3
        workflows:
          custom:
            plan:
              steps:
              - init
              - init: {extra_args: ["-upgrade", 1]}
              - run: terraform fmt -check
              - run: {command: tflint, output: hide, shell: bash, shellArgs: ["-eu", "-c"]}
              - run: {command: make plan, output: strip_refreshing, shell: zsh, shellArgs: "-e -c"}
              - run: {command: ./audit.sh, output: [strip_refreshing, {filter_regex: 'key=\\S+'}, {filter_regex: x}]}
              - env: {name: REGION, value: eu-west-1}
              - env: {name: ACCOUNT, command: ./account.sh}
              - multienv: ./secrets.sh
              - multienv: {command: ./more.sh, output: hide}
              - plan: {extra_args: [-var-file=prod.tfvars]}
            apply:
              steps: [show, apply]
            import:
              steps: [init, {import: {extra_args: [-var-file=prod.tfvars]}}]
            state_rm:
              steps:
        """
    )

    workflow = config.workflows["custom"]
    assert workflow.name == "custom"
    assert workflow.plan.steps == (
        Step(name=StepName.INIT),
        Step(name=StepName.INIT, extra_args=("-upgrade", "1")),
        Step(name=StepName.RUN, command="terraform fmt -check"),
        Step(name=StepName.RUN, command="tflint", output="hide", shell="bash", shell_args=("-eu", "-c")),
        Step(name=StepName.RUN, command="make plan", output="strip_refreshing", shell="zsh", shell_args=("-e", "-c")),
        Step(name=StepName.RUN, command="./audit.sh", output="strip_refreshing", filter_regex=(r"key=\S+", "x")),
        Step(name=StepName.ENV, env_name="REGION", env_value="eu-west-1"),
        Step(name=StepName.ENV, env_name="ACCOUNT", command="./account.sh"),
        Step(name=StepName.MULTIENV, command="./secrets.sh"),
        Step(name=StepName.MULTIENV, command="./more.sh", output="hide"),
        Step(name=StepName.PLAN, extra_args=("-var-file=prod.tfvars",)),
    )
    assert workflow.apply == Stage(steps=(Step(name=StepName.SHOW), Step(name=StepName.APPLY)))
    assert workflow.import_.steps[1] == Step(name=StepName.IMPORT, extra_args=("-var-file=prod.tfvars",))
    assert workflow.state_rm == Stage(steps=())  # `steps:` left empty runs nothing, as Atlantis documents


def test_a_stage_a_workflow_omits_keeps_the_default_steps() -> None:
    workflow = parse(
        """
        version: 3
        workflows:
          plan-only:
            plan:
              steps: [init, {plan: {extra_args: [-lock=false]}}]
          nothing:
        """
    ).workflows

    assert workflow["plan-only"].apply == DEFAULT_WORKFLOW.apply
    assert workflow["plan-only"].import_ == DEFAULT_WORKFLOW.import_
    assert workflow["plan-only"].state_rm == DEFAULT_WORKFLOW.state_rm
    assert workflow["nothing"].plan == DEFAULT_WORKFLOW.plan


# --- every problem names the file, the key path and what is wrong ---------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "version: 3\nprojects:\n- dir: a\n  autoplan:\n    when_modified: '*.tf'\n",
            "atlantis.yaml: projects[0].autoplan.when_modified: must be a list of strings",
            id="when_modified-not-a-list",
        ),
        pytest.param(
            "version: 3\nprojects:\n- dir: a\n- dir: b\n  autoplan:\n    when_modified: [{a: b}]\n",
            "atlantis.yaml: projects[1].autoplan.when_modified: must be a list of strings",
            id="when_modified-item-not-a-string",
        ),
        pytest.param(
            "version: 3\nautomerge: notabool\n",
            'atlantis.yaml: automerge: must be true or false, got "notabool"',
            id="bool",
        ),
        pytest.param(
            "version: 3\nprojects:\n- dir: a\n  execution_order_group: first\n",
            'atlantis.yaml: projects[0].execution_order_group: must be an integer, got "first"',
            id="int",
        ),
        pytest.param(
            "version: 3\nprojects: app\n", "atlantis.yaml: projects: must be a list", id="projects-not-a-list"
        ),
        pytest.param(
            "version: 3\nprojects:\n- dir: a\n  autoplan: yes\n",
            "atlantis.yaml: projects[0].autoplan: must be a mapping with keys such as enabled, when_modified",
            id="autoplan-not-a-mapping",
        ),
        pytest.param(
            "version: 3\nprojects:\n- dir: a\n  workspce: prod\n",
            "atlantis.yaml: projects[0].workspce: unknown key; did you mean workspace?",
            id="unknown-key-close-to-a-known-one",
        ),
        pytest.param(
            "version: 3\nprojects:\n- dir: a\n  autoplan: {when: ['*.tf']}\n",
            "atlantis.yaml: projects[0].autoplan.when: unknown key; known keys here: enabled, when_modified",
            id="unknown-nested-key",
        ),
        pytest.param(
            "version: 3\nfrobnicate: true\n",
            "atlantis.yaml: frobnicate: unknown key; known keys here: version, automerge, parallel_plan, "
            "parallel_apply, abort_on_execution_order_fail, delete_source_branch_on_merge, emoji_reaction, projects, "
            "workflows, allowed_regexp_prefixes, autodiscover, repo_locks, silence_pr_comments, apply_on_merge",
            id="unknown-top-level-key",
        ),
        pytest.param(
            "version: 4\n", "atlantis.yaml: version: must be 3 (the Atlantis format atlas reads), got 4", id="version"
        ),
        pytest.param(
            "version: 3\nprojects:\n- name: app\n",
            "atlantis.yaml: projects[0].dir: is required",
            id="dir-missing",
        ),
        pytest.param(
            "version: 3\nprojects:\n- dir: ../other-repo\n",
            'atlantis.yaml: projects[0].dir: "../other-repo" leaves the repository: dir cannot contain ..',
            id="dir-leaves-the-repo",
        ),
        pytest.param(
            "version: 3\nprojects:\n- dir: envs/../../etc\n",
            'atlantis.yaml: projects[0].dir: "envs/../../etc" leaves the repository: dir cannot contain ..',
            id="dir-leaves-the-repo-midway",
        ),
        pytest.param(
            "version: 3\nprojects:\n- dir: envs/*\n",
            'atlantis.yaml: projects[0].dir: "envs/*" is a glob; atlas does not expand globs in dir, '
            "list each directory as a project",
            id="dir-glob",
        ),
        pytest.param(
            "version: 3\nprojects:\n- dir: a\n  name: my project\n",
            'atlantis.yaml: projects[0].name: "my project" is not allowed: use only letters, digits and - _ . ~ / '
            "(names appear in URLs and file names)",
            id="name-not-url-safe",
        ),
        pytest.param(
            "version: 3\nprojects:\n- name: app\n  dir: a\n- name: app\n  dir: b\n",
            'atlantis.yaml: projects[1].name: "app" is also the name of projects[0]; names must be unique',
            id="duplicate-name",
        ),
        pytest.param(
            "version: 3\nprojects:\n- dir: app\n- dir: ./app/\n  workspace: default\n",
            'atlantis.yaml: projects[0]: projects[1] also plan dir "app" in workspace "default"; '
            "projects that share a dir and workspace need a name each",
            id="same-dir-and-workspace-without-names",
        ),
        pytest.param(
            "version: 3\nprojects:\n- name: a\n  dir: app\n- dir: app\n",
            'atlantis.yaml: projects[1]: projects[0] also plan dir "app" in workspace "default"; '
            "projects that share a dir and workspace need a name each",
            id="same-dir-and-workspace-one-named",
        ),
        pytest.param(
            "version: 3\nprojects:\n- name: app\n  dir: app\n  depends_on: [network]\n",
            'atlantis.yaml: projects[0].depends_on[0]: no project is named "network"',
            id="depends_on-unknown",
        ),
        pytest.param(
            "version: 3\nprojects:\n- name: app\n  dir: app\n  depends_on: [app]\n",
            "atlantis.yaml: projects[0].depends_on[0]: a project cannot depend on itself",
            id="depends_on-itself",
        ),
        pytest.param(
            "version: 3\nprojects:\n- {name: a, dir: a, depends_on: [b]}\n- {name: b, dir: b, depends_on: [a]}\n",
            "atlantis.yaml: projects[0].depends_on: depends_on forms a cycle: a -> b -> a",
            id="depends_on-cycle",
        ),
        pytest.param(
            "version: 3\nprojects:\n- dir: a\n  branch: main\n",
            'atlantis.yaml: projects[0].branch: must be a regex between slashes, such as /main/, got "main"',
            id="branch-without-slashes",
        ),
        pytest.param(
            "version: 3\nprojects:\n- dir: a\n  branch: /release-(/\n",
            'atlantis.yaml: projects[0].branch: "/release-(/" is not a valid regex: missing ), unterminated subpattern '
            "at position 8",
            id="branch-invalid-regex",
        ),
        pytest.param(
            "version: 3\nprojects:\n- dir: a\n  terraform_version: latest\n",
            'atlantis.yaml: projects[0].terraform_version: "latest" is not a version such as 1.9.8 or v1.9.8, '
            'nor a constraint such as "~> 1.9.0" or ">= 1.5, < 2"',
            id="terraform_version",
        ),
        pytest.param(
            "version: 3\nprojects:\n- dir: a\n  apply_requirements: [approved, reviewed]\n",
            'atlantis.yaml: projects[0].apply_requirements: unknown requirement "reviewed"; known: approved, '
            "mergeable, undiverged, policies_passed",
            id="requirement",
        ),
        pytest.param(
            "version: 3\nprojects:\n- dir: a\n  repo_locks: {mode: always}\n",
            'atlantis.yaml: projects[0].repo_locks.mode: must be one of on_plan, on_apply, disabled, got "always"',
            id="repo_locks-mode",
        ),
        pytest.param(
            "version: 3\nprojects:\n- dir: a\n  silence_pr_comments: [import]\n",
            'atlantis.yaml: projects[0].silence_pr_comments: unknown stage "import"; known: plan, apply',
            id="silence_pr_comments",
        ),
        pytest.param(
            "version: 3\napply_on_merge: sometimes\n",
            'atlantis.yaml: apply_on_merge: must be true, false, always or only, got "sometimes"',
            id="apply_on_merge",
        ),
        pytest.param(
            "version: 3\nprojects:\n- dir: a\n  drift: {schedule: '0 25 * * *'}\n",
            'atlantis.yaml: projects[0].drift.schedule: "0 25 * * *" is not a cron schedule: hour field "25": '
            '"25" is outside 0-23',
            id="drift-schedule",
        ),
        pytest.param(
            "version: 3\nprojects:\n- dir: a\n  drift: {schedule: 'daily'}\n",
            'atlantis.yaml: projects[0].drift.schedule: "daily" is not a cron schedule: has 1 fields; a cron '
            "schedule has 5 (minute hour day-of-month month day-of-week)",
            id="drift-schedule-not-cron",
        ),
        pytest.param(
            "version: 3\nprojects:\n- dir: a\n  autoplan:\n    when_modified: ['*.tf', '[modules']\n",
            'atlantis.yaml: projects[0].autoplan.when_modified[1]: "[modules" is not a valid pattern: unterminated '
            "character set at position 1",
            id="when_modified-pattern",
        ),
        pytest.param(
            "version: 3\nworkflows:\n  w:\n    plan:\n      steps: [init, terraform plan]\n",
            'atlantis.yaml: workflows.w.plan.steps[1]: "terraform plan" is not a step; built-in steps are init, plan, '
            "apply, show, policy_check, import, state_rm, and run, env and multienv run commands (maybe you omitted "
            "run:)",
            id="step-unknown",
        ),
        pytest.param(
            "version: 3\nworkflows:\n  w:\n    plan:\n      steps: [{run: {output: hide}}]\n",
            "atlantis.yaml: workflows.w.plan.steps[0]: run.command is required and must be a string",
            id="run-without-command",
        ),
        pytest.param(
            "version: 3\nworkflows:\n  w:\n    plan:\n      steps: [{run: {command: x, output: [strip_refreshing, "
            "{filter_regex: 'secret('}]}}]\n",
            "atlantis.yaml: workflows.w.plan.steps[0]: run.output filter_regex: 'secret(' is not a regular expression "
            "atlas can use: missing ), unterminated subpattern at position 6",
            id="run-output-filter-bad-pattern",
        ),
        pytest.param(
            "version: 3\nworkflows:\n  w:\n    plan:\n      steps: [{run: {command: x, shellArgs: [-c]}}]\n",
            "atlantis.yaml: workflows.w.plan.steps[0]: run.shellArgs needs run.shell",
            id="shellArgs-without-shell",
        ),
        pytest.param(
            "version: 3\nworkflows:\n  w:\n    plan:\n      steps: [{env: {name: A, value: b, command: c}}]\n",
            "atlantis.yaml: workflows.w.plan.steps[0]: env takes exactly one of value and command",
            id="env-value-and-command",
        ),
        pytest.param(
            "version: 3\nworkflows:\n  w:\n    plan:\n      steps: [{init: {extra_args: [a]}, plan: {}}]\n",
            "atlantis.yaml: workflows.w.plan.steps[0]: a step has exactly one key, found 2: init, plan",
            id="step-two-keys",
        ),
        pytest.param(
            "version: 3\nworkflows:\n  w:\n    plan:\n      steps: [{plan: {extra_args: -lock=false}}]\n",
            "atlantis.yaml: workflows.w.plan.steps[0]: plan.extra_args must be a list of strings",
            id="extra_args-not-a-list",
        ),
        pytest.param(
            "version: 3\nworkflows:\n  w:\n    deploy:\n      steps: [apply]\n",
            "atlantis.yaml: workflows.w.deploy: unknown key; known keys here: plan, apply, import, state_rm, "
            "policy_check",
            id="unknown-stage",
        ),
    ],
)
def test_a_wrong_config_names_the_file_the_key_and_the_problem(text: str, expected: str) -> None:
    assert error_of(text) == expected


def test_invalid_yaml_reports_line_and_column() -> None:
    assert error_of("version: 3\nprojects:\n- dir: a\n  workspace: [prod\n") == (
        "atlantis.yaml: invalid YAML at line 5, column 1: expected ',' or ']', but got '<stream end>'"
    )
    assert error_of("version: 3\nprojects: - dir: a\n") == (
        "atlantis.yaml: invalid YAML at line 2, column 11: sequence entries are not allowed here"
    )


def test_a_duplicate_key_is_an_error_rather_than_the_last_one_winning() -> None:
    text = "version: 3\nprojects:\n- dir: a\n  workspace: dev\n  workspace: prod\n"

    with pytest.raises(ConfigError) as caught:
        parse(text)

    assert str(caught.value) == "atlantis.yaml: projects[0].workspace: duplicate key (first set on line 4)"
    assert caught.value.line == 5


def test_the_problem_reported_is_the_first_in_the_file() -> None:
    text = """
        version: 3
        projects:
        - name: app
          dir: app
          depends_on: [nowhere]
        - dir: ../b
          autoplan: {enabled: maybe}
        """

    assert error_of(text) == 'atlantis.yaml: projects[0].depends_on[0]: no project is named "nowhere"'


def test_an_alias_bomb_is_refused_without_expanding_it() -> None:
    layers = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    layers += [f"a{i}: &a{i} [{', '.join(f'*a{i - 1}' for _ in range(10))}]" for i in range(1, 8)]
    text = "version: 3\n" + "\n".join(layers) + "\n"

    assert error_of(text).endswith("too large: it expands to too many values through aliases")


def test_a_workflow_defined_nowhere_is_reported_when_the_servers_workflows_are_known() -> None:
    text = "version: 3\nprojects:\n- dir: a\n  workflow: terragrunt\n- dir: b\n  workflow: custom\n"

    assert [p.workflow for p in parse(text).projects] == ["terragrunt", "custom"]  # may be the server's
    assert parse(text, server_workflows=["terragrunt", "custom"]).projects[1].workflow == "custom"
    assert error_of(text, server_workflows=["custom"]) == (
        'atlantis.yaml: projects[0].workflow: workflow "terragrunt" is not defined in atlantis.yaml or on the server'
    )


def test_the_error_names_the_file_atlas_read() -> None:
    assert error_of("version: 3\nprojects: {}\n", "atlas.yaml") == "atlas.yaml: projects: must be a list"


# --- finding the file in a checkout ---------------------------------------------------------------


def write(repo: Path, name: str, text: str) -> None:
    path = repo / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_no_repo_config_is_none(tmp_path: Path) -> None:
    assert load_repo_config(tmp_path) is None


@pytest.mark.parametrize("name", ["atlas.yaml", "atlas.yml", "atlantis.yaml", "atlantis.yml"])
def test_each_known_file_name_is_read(tmp_path: Path, name: str) -> None:
    write(tmp_path, name, "version: 3\nprojects:\n- dir: app\n")

    config = load_repo_config(tmp_path)

    assert config is not None
    assert config.file == name
    assert [p.dir for p in config.projects] == ["app"]


def test_atlas_yaml_wins_over_atlantis_yaml(tmp_path: Path) -> None:
    write(tmp_path, "atlantis.yaml", "version: 3\nprojects:\n- dir: from-atlantis\n")
    write(tmp_path, "atlas.yaml", "version: 3\nprojects:\n- dir: from-atlas\n")

    config = load_repo_config(tmp_path)

    assert config is not None and [p.dir for p in config.projects] == ["from-atlas"]


@pytest.mark.parametrize("written", ["/etc", "/etc/", "/opt/atlas/secrets"])
def test_an_absolute_dir_the_repository_lacks_is_refused_with_the_reason(tmp_path: Path, written: str) -> None:
    write(tmp_path, "atlantis.yaml", f"version: 3\nprojects:\n- dir: app\n- dir: '{written}'\n")
    (tmp_path / "app").mkdir()

    with pytest.raises(ConfigError) as refused:
        load_repo_config(tmp_path)

    message = str(refused.value)
    assert message.startswith(f'atlantis.yaml: projects[1].dir: "{written}" is an absolute path: atlas only runs '
                              "inside the repository")
    assert "Write the project's directory relative to the repository root." in message


def test_a_leading_slash_naming_a_directory_of_the_repository_is_that_directory_as_in_atlantis(
    tmp_path: Path,
) -> None:
    write(tmp_path, "atlantis.yaml", "version: 3\nprojects:\n- dir: /infra/prod\n")
    (tmp_path / "infra" / "prod").mkdir(parents=True)

    config = load_repo_config(tmp_path)

    assert config is not None and [p.dir for p in config.projects] == ["infra/prod"]


def test_the_servers_repo_config_file_is_the_only_one_read(tmp_path: Path) -> None:
    write(tmp_path, "atlantis.yaml", "version: 3\nprojects:\n- dir: default-file\n")
    write(tmp_path, "ci/atlantis-production.yaml", "version: 3\nprojects:\n- dir: production\n")

    config = load_repo_config(tmp_path, "ci/atlantis-production.yaml")

    assert config is not None and config.file == "ci/atlantis-production.yaml"
    assert [p.dir for p in config.projects] == ["production"]
    assert load_repo_config(tmp_path, "atlantis-staging.yaml") is None


def test_a_config_file_outside_the_checkout_is_not_read(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    secret = tmp_path / "secret.yaml"
    secret.write_text("version: 3\ntoken: hunter2\n")
    os.symlink(secret, repo / "atlantis.yaml")

    with pytest.raises(ConfigError) as caught:
        load_repo_config(repo)
    assert str(caught.value) == "atlantis.yaml: is a link to a file outside the repository; atlas does not read it"
    assert "hunter2" not in str(caught.value)

    with pytest.raises(ConfigError) as escaped:
        load_repo_config(repo, "../secret.yaml")
    assert str(escaped.value) == "../secret.yaml: must be a path inside the repository"


def test_an_unreadable_config_says_so(tmp_path: Path) -> None:
    (tmp_path / "atlantis.yaml").write_bytes(b"version: 3\n\xff\xfe\n")

    with pytest.raises(ConfigError) as caught:
        load_repo_config(tmp_path)

    assert str(caught.value) == "atlantis.yaml: is not UTF-8 text"


# --- the corpus: real atlantis.yaml files, unchanged ----------------------------------------------


def corpus_files() -> list[Path]:
    files = sorted(CORPUS.glob("*.yaml"))
    assert len(files) >= 15, f"the corpus in {CORPUS} has only {len(files)} files"
    return files


@pytest.mark.parametrize("path", corpus_files(), ids=lambda path: path.stem)
def test_corpus_file_reads_as_expected(path: Path, tmp_path: Path) -> None:
    expected = json.loads(path.with_name(path.stem + ".expected.json").read_text())
    assert path.read_text().startswith("# Source: "), "each corpus file names where it comes from"

    try:
        config = parse_repo_config(path.read_text(), "atlantis.yaml")
    except ConfigError as error:
        # `refused`: a key atlas has not built yet is refused, naming it; the rest is what it reads once built.
        assert str(error) == expected.get("refused", expected.get("error")), f"{path.name} should read: {expected}"
        return
    assert "refused" not in expected, f"{path.name} reads now: take `refused` out of its expected file"
    assert "error" not in expected, f"{path.name} read without the expected error {expected['error']!r}"

    projects = [
        {
            "name": project.name,
            "dir": project.dir,
            "workspace": project.workspace,
            "autoplan": project.autoplan_enabled,
            "when_modified": list(project.when_modified),
            "workflow": project.workflow,
        }
        for project in config.projects
    ]
    assert projects == expected["projects"]

    # Workflows a project names but the file does not define are the server's.
    named = {project.workflow for project in config.projects if project.workflow} - set(config.workflows)
    effective = apply_repo_config(RepoPolicy.allowing_everything("github.com/acme/infra", sorted(named)), config)
    assert not isinstance(effective, ConfigError), effective
    for project in config.projects:
        (tmp_path / project.dir).mkdir(parents=True, exist_ok=True)
    for selection in expected.get("selections", []):
        changed = [ChangedFile(filename=name) for name in selection["changed"]]
        matches = select_projects(tmp_path, changed, effective, base_branch=selection["base"])
        planned = [
            {"name": m.project.name, "dir": m.project.dir, "workspace": m.project.workspace, "reason": m.reason}
            for m in matches
        ]
        assert planned == selection["planned"], f"{selection['changed']} into {selection['base']}"
