"""repos.yaml: each repository's policy, and a repository's own config applied within it."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from atlas.config.loading import parse_repo_config
from atlas.config.raw import ConfigError
from atlas.config.server import (
    EffectiveConfig,
    RepoPolicy,
    ServerConfig,
    WorkflowHook,
    apply_repo_config,
    load_server_config,
    parse_server_config,
)
from atlas.config.valid import ApplyOnMerge, Autodiscover, AutodiscoverMode, Drift, RepoConfig, RepoLocksMode
from atlas.config.workflow import DEFAULT_WORKFLOW, Step, StepName, Workflow
from atlas.models import Project

REPO = "github.com/acme/infra"


def server(text: str) -> ServerConfig:
    return parse_server_config(textwrap.dedent(text), "repos.yaml")


def repo_config(text: str) -> RepoConfig:
    return parse_repo_config(textwrap.dedent(text), "atlantis.yaml")


def applied(policy: RepoPolicy, text: str) -> EffectiveConfig:
    effective = apply_repo_config(policy, repo_config(text))
    assert isinstance(effective, EffectiveConfig), effective
    return effective


def refusal(policy: RepoPolicy, text: str) -> str:
    effective = apply_repo_config(policy, repo_config(text))
    assert isinstance(effective, ConfigError), effective
    return str(effective)


# --- one repository's policy ----------------------------------------------------------------------


def test_with_no_matching_entry_the_policy_is_atlantis_default() -> None:
    policy = server("repos:\n- id: github.com/other/repo\n  apply_requirements: [approved]\n").for_repo(REPO)

    assert policy.repo_id == REPO
    assert policy.apply_requirements == policy.plan_requirements == policy.import_requirements == ()
    assert policy.allowed_overrides == frozenset()
    assert policy.allow_custom_workflows is False
    assert policy.workflow == DEFAULT_WORKFLOW
    assert policy.repo_locks_mode is RepoLocksMode.ON_PLAN
    assert policy.apply_on_merge is ApplyOnMerge.OFF
    assert policy.drift == Drift()
    assert policy.pre_workflow_hooks == ()
    assert policy.branch_matches("anything")
    assert ServerConfig().for_repo(REPO) == policy


def test_later_matching_entries_override_only_the_keys_they_set() -> None:
    config = server(
        """
        repos:
        - id: /.*/
          allow_custom_workflows: true
          apply_requirements: [approved]
          plan_requirements: [approved]
        - id: github.com/acme/infra
          apply_requirements: []
        - id: github.com/acme/other
          apply_requirements: [mergeable]
        """
    )

    infra = config.for_repo(REPO)
    other = config.for_repo("github.com/acme/other")

    # The example of Atlantis's repos.yaml reference, "If multiple repos match, the last match will apply".
    assert infra.apply_requirements == ()
    assert infra.plan_requirements == ("approved",)
    assert infra.workflow == DEFAULT_WORKFLOW
    assert infra.allowed_overrides == frozenset()
    assert infra.allow_custom_workflows is True
    assert other.apply_requirements == ("mergeable",)


def test_ids_are_exact_or_a_regex_searched_in_the_id() -> None:
    config = server(
        """
        repos:
        - id: /acme\\/.*-infra$/
          apply_requirements: [approved]
        - id: github.com/acme/INFRA
          apply_requirements: [mergeable]
        """
    )

    assert config.for_repo("github.com/acme/core-infra").apply_requirements == ("approved",)
    assert config.for_repo("ghe.acme.io/acme/core-infra").apply_requirements == ("approved",)
    assert config.for_repo("github.com/acme/core-infra-old").apply_requirements == ()
    assert config.for_repo("github.com/acme/infra").apply_requirements == ()  # exact ids are case-sensitive


def test_every_repo_key_is_read() -> None:
    policy = server(
        """
        repos:
        - id: /.*/
          branch: /^(main|release-.*)$/
          repo_config_file: ci/atlantis.yaml
          plan_requirements: [mergeable]
          apply_requirements: [approved, mergeable, undiverged]
          import_requirements: [approved]
          workflow: terragrunt
          allowed_overrides: [workflow, apply_requirements, apply_on_merge, drift]
          allowed_workflows: [terragrunt, default]
          allow_custom_workflows: false
          repo_locks: {mode: on_apply}
          silence_pr_comments: [plan]
          autodiscover: {mode: disabled}
          apply_on_merge: true
          drift: {schedule: "@daily", remediate: true}
          pre_workflow_hooks:
          - run: ./generate-atlantis-yaml.sh
            description: Generating configs
            shell: bash
            shellArgs: -cv
            commands: plan, apply
          post_workflow_hooks:
          - run: infracost comment
        workflows:
          terragrunt:
            plan:
              steps: [{run: terragrunt plan -out $PLANFILE}]
        """
    ).for_repo(REPO)

    assert policy.branch_matches("release-1.2") and not policy.branch_matches("feature")
    assert policy.repo_config_file == "ci/atlantis.yaml"
    assert policy.plan_requirements == ("mergeable",)
    assert policy.apply_requirements == ("approved", "mergeable", "undiverged")
    assert policy.import_requirements == ("approved",)
    assert policy.workflow.name == "terragrunt"
    assert policy.workflow.plan.steps == (Step(name=StepName.RUN, command="terragrunt plan -out $PLANFILE"),)
    assert policy.allowed_overrides == {"workflow", "apply_requirements", "apply_on_merge", "drift"}
    assert policy.allowed_workflows == ("terragrunt", "default")
    assert policy.repo_locks_mode is RepoLocksMode.ON_APPLY
    assert policy.silence_pr_comments == ("plan",)
    assert policy.autodiscover == Autodiscover(mode=AutodiscoverMode.DISABLED)
    assert policy.apply_on_merge is ApplyOnMerge.ON
    assert policy.drift == Drift(enabled=True, schedule="@daily", remediate=True)
    assert policy.pre_workflow_hooks == (
        WorkflowHook(
            run="./generate-atlantis-yaml.sh",
            description="Generating configs",
            shell="bash",
            shell_args=("-cv",),
            commands=("plan", "apply"),
        ),
    )
    assert policy.pre_workflow_hooks[0].runs_for("plan") and not policy.pre_workflow_hooks[0].runs_for("unlock")
    assert policy.post_workflow_hooks == (WorkflowHook(run="infracost comment"),)
    assert policy.post_workflow_hooks[0].runs_for("unlock")


def test_hooks_of_every_matching_entry_run_in_order_for_the_base_branch() -> None:
    config = server(
        """
        repos:
        - id: /.*/
          pre_workflow_hooks: [{run: first}]
        - id: github.com/acme/infra
          branch: /^main$/
          pre_workflow_hooks: [{run: second}]
        - id: /infra/
          pre_workflow_hooks: [{run: third}]
        """
    )

    assert [hook.run for hook in config.for_repo(REPO, "main").pre_workflow_hooks] == ["first", "second", "third"]
    assert [hook.run for hook in config.for_repo(REPO, "develop").pre_workflow_hooks] == ["first", "third"]


def test_the_branch_of_the_last_matching_entry_decides_which_pull_requests_count() -> None:
    config = server("repos:\n- id: /.*/\n  branch: /^main$/\n- id: github.com/acme/infra\n")

    assert config.for_repo("github.com/acme/other").branch_matches("main")
    assert not config.for_repo("github.com/acme/other").branch_matches("develop")
    assert config.for_repo(REPO).branch_matches("develop")


def test_repo_locking_false_turns_repo_locks_off() -> None:
    config = server("repos:\n- id: /.*/\n  repo_locks: {mode: on_apply}\n- id: /infra/\n  repo_locking: false\n")

    assert config.for_repo(REPO).repo_locks_mode is RepoLocksMode.DISABLED
    assert config.for_repo("github.com/acme/app").repo_locks_mode is RepoLocksMode.ON_APPLY


def test_a_servers_default_workflow_replaces_atlantis_default() -> None:
    config = server("workflows:\n  default:\n    plan:\n      steps: [init, {run: make plan}]\n")

    policy = config.for_repo(REPO)

    assert policy.workflow.name == "default"
    assert policy.workflow.plan.steps[1] == Step(name=StepName.RUN, command="make plan")
    assert policy.workflow.apply == DEFAULT_WORKFLOW.apply


def test_defaults_from_the_servers_flags_apply_before_the_entries() -> None:
    defaults = RepoPolicy(repo_id=REPO, apply_requirements=("approved",), apply_on_merge=ApplyOnMerge.ALWAYS)
    config = server("repos:\n- id: /.*/\n  apply_on_merge: only\n")

    policy = config.for_repo(REPO, defaults=defaults)

    assert policy.apply_requirements == ("approved",)
    assert policy.apply_on_merge is ApplyOnMerge.ONLY


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "repos:\n- id: /.*/\n  allowed_overrides: [workflow, terraform_version]\n",
            'repos.yaml: repos[0].allowed_overrides: unknown key "terraform_version"; known: plan_requirements, '
            "apply_requirements, import_requirements, workflow, delete_source_branch_on_merge, repo_locking, "
            "repo_locks, policy_check, custom_policy_check, silence_pr_comments, apply_on_merge, drift",
            id="unknown-override",
        ),
        pytest.param(
            "repos:\n- id: /.*/\n  workflow: custom\n",
            'repos.yaml: repos[0].workflow: workflow "custom" is not defined in workflows',
            id="undefined-workflow",
        ),
        pytest.param(
            "repos:\n- id: /.*/\n  allowed_workflows: [default, blue]\nworkflows:\n  green: {}\n",
            'repos.yaml: repos[0].allowed_workflows[1]: workflow "blue" is not defined in workflows',
            id="undefined-allowed-workflow",
        ),
        pytest.param(
            "repos:\n- id: /acme(/\n",
            'repos.yaml: repos[0].id: "/acme(/" is not a valid regex: missing ), unterminated subpattern at position 4',
            id="bad-regex-id",
        ),
        pytest.param("repos:\n- branch: /main/\n", "repos.yaml: repos[0].id: is required", id="missing-id"),
        pytest.param(
            "repos:\n- id: /.*/\n  pre_workflow_hooks: [{command: ls}]\n",
            "repos.yaml: repos[0].pre_workflow_hooks[0].run: is required",
            id="hook-without-run",
        ),
        pytest.param(
            "repos:\n- id: /.*/\nrepo:\n- id: x\n",
            "repos.yaml: repo: unknown key; did you mean repos?",
            id="unknown-top-level-key",
        ),
    ],
)
def test_a_wrong_repos_yaml_names_the_file_the_key_and_the_problem(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        server(text)

    assert str(caught.value) == expected


def test_load_server_config_reads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "repos.yaml"
    path.write_text("repos:\n- id: /.*/\n  allowed_overrides: [workflow]\n")

    assert load_server_config(path).for_repo(REPO).allowed_overrides == {"workflow"}
    with pytest.raises(ConfigError) as caught:
        load_server_config(tmp_path / "missing.yaml")
    assert str(caught.value) == f"{tmp_path / 'missing.yaml'}: cannot be read: No such file or directory"


# --- a repository's config within its policy ------------------------------------------------------

ALL_OVERRIDES = "[plan_requirements, apply_requirements, import_requirements, workflow, delete_source_branch_on_merge, repo_locking, repo_locks, policy_check, custom_policy_check, silence_pr_comments, apply_on_merge, drift]"  # noqa: E501


@pytest.mark.parametrize(
    ("key", "text"),
    [
        ("apply_requirements", "- dir: a\n  apply_requirements: []"),
        ("plan_requirements", "- dir: a\n  plan_requirements: [approved]"),
        ("import_requirements", "- dir: a\n  import_requirements: [approved]"),
        ("workflow", "- dir: a\n  workflow: default"),
        ("repo_locking", "- dir: a\n  repo_locking: false"),
        ("repo_locks", "- dir: a\n  repo_locks: {mode: disabled}"),
        ("silence_pr_comments", "- dir: a\n  silence_pr_comments: [plan]"),
        ("apply_on_merge", "- dir: a\n  apply_on_merge: only"),
        ("drift", "- dir: a\n  drift: {enabled: true}"),
    ],
)
def test_a_project_key_the_server_does_not_allow_is_refused(key: str, text: str) -> None:
    policy = ServerConfig().for_repo(REPO)

    assert refusal(policy, f"version: 3\nprojects:\n- dir: ok\n{text}\n") == (
        f"atlantis.yaml: projects[1].{key}: the server does not let this repository set {key}: "
        f"repos.yaml needs allowed_overrides: [{key}] for it"
    )
    allowed = server(f"repos:\n- id: /.*/\n  allowed_overrides: [{key}]\n").for_repo(REPO)
    applied(allowed, f"version: 3\nprojects:\n- dir: ok\n{text}\n")


@pytest.mark.parametrize(
    ("key", "text"),
    [
        ("apply_on_merge", "apply_on_merge: true"),
        ("repo_locks", "repo_locks: {mode: on_apply}"),
        ("silence_pr_comments", "silence_pr_comments: [apply]"),
    ],
)
def test_a_top_level_key_the_server_does_not_allow_is_refused(key: str, text: str) -> None:
    assert refusal(ServerConfig().for_repo(REPO), f"version: 3\n{text}\n") == (
        f"atlantis.yaml: {key}: the server does not let this repository set {key}: "
        f"repos.yaml needs allowed_overrides: [{key}] for it"
    )


def test_a_repo_defined_workflow_needs_allow_custom_workflows() -> None:
    text = """
        version: 3
        projects:
        - dir: app
          workflow: mine
        workflows:
          mine:
            plan:
              steps:
              - init
              - run: curl https://example.com/x.sh | sh
              - plan
        """
    overrides_only = server("repos:\n- id: /.*/\n  allowed_overrides: [workflow]\n").for_repo(REPO)
    custom = server("repos:\n- id: /.*/\n  allowed_overrides: [workflow]\n  allow_custom_workflows: true\n").for_repo(
        REPO
    )

    assert refusal(overrides_only, text) == (
        "atlantis.yaml: workflows.mine.plan.steps[1]: the server does not let this repository define workflows: "
        "repos.yaml needs allow_custom_workflows: true for it"
    )
    assert refusal(overrides_only, "version: 3\nworkflows:\n  extra-args:\n    plan:\n      steps: [init, plan]\n") == (
        "atlantis.yaml: workflows.extra-args: the server does not let this repository define workflows: "
        "repos.yaml needs allow_custom_workflows: true for it"
    )
    (project,) = applied(custom, text).projects
    assert project.workflow.name == "mine"
    assert project.workflow.plan.steps[1] == Step(name=StepName.RUN, command="curl https://example.com/x.sh | sh")


def test_a_workflow_must_be_defined_and_allowed() -> None:
    config = server(
        """
        repos:
        - id: /.*/
          allowed_overrides: [workflow]
          allowed_workflows: [terragrunt]
          allow_custom_workflows: true
        workflows:
          terragrunt: {}
          cdktf: {}
        """
    )
    policy = config.for_repo(REPO)

    assert refusal(policy, "version: 3\nprojects:\n- dir: a\n  workflow: nowhere\n") == (
        'atlantis.yaml: projects[0].workflow: workflow "nowhere" is not defined in atlantis.yaml or on the server'
    )
    assert refusal(policy, "version: 3\nprojects:\n- dir: a\n  workflow: cdktf\n") == (
        'atlantis.yaml: projects[0].workflow: workflow "cdktf" is not allowed for this repository; allowed: terragrunt'
    )
    # A workflow the repo defines itself is allowed once custom workflows are, as in Atlantis.
    mine = applied(policy, "version: 3\nprojects:\n- dir: a\n  workflow: mine\nworkflows:\n  mine: {}\n")
    assert mine.projects[0].workflow.name == "mine"
    assert applied(policy, "version: 3\nprojects:\n- dir: a\n  workflow: terragrunt\n").projects[0].workflow == (
        Workflow(name="terragrunt")
    )


def test_effective_settings_combine_server_and_repo() -> None:
    config = server(
        f"""
        repos:
        - id: /.*/
          apply_requirements: [approved]
          plan_requirements: [mergeable]
          workflow: standard
          allowed_overrides: {ALL_OVERRIDES}
          allow_custom_workflows: true
          apply_on_merge: true
          drift: {{schedule: "0 3 * * *"}}
          post_workflow_hooks: [{{run: notify}}]
        workflows:
          standard:
            plan:
              steps: [init, {{plan: {{extra_args: [-lock-timeout=5m]}}}}]
        """
    )
    effective = applied(
        config.for_repo(REPO),
        """
        version: 3
        automerge: true
        parallel_plan: true
        apply_on_merge: only
        repo_locks: {mode: on_apply}
        projects:
        - name: network
          dir: network
          apply_requirements: []
          terraform_version: 1.9.8
          repo_locking: false
          drift: {remediate: true}
        - name: app
          dir: app
          workflow: mine
          apply_on_merge: false
          execution_order_group: 1
          depends_on: [network]
        workflows:
          mine:
            apply:
              steps: [{run: ./apply.sh}]
        """,
    )

    network, app = effective.projects
    assert (effective.automerge, effective.parallel_plan, effective.parallel_apply) == (True, True, None)
    assert effective.post_workflow_hooks == (WorkflowHook(run="notify"),)
    assert network.project == Project(dir="network", name="network")
    assert network.apply_requirements == ()
    assert network.plan_requirements == ("mergeable",)
    assert network.workflow.name == "standard"
    assert network.terraform_version == "1.9.8"
    assert network.repo_locks_mode is RepoLocksMode.DISABLED
    assert network.apply_on_merge is ApplyOnMerge.ONLY
    assert network.drift == Drift(enabled=True, schedule="0 3 * * *", remediate=True)
    assert app.apply_requirements == ("approved",)
    assert app.workflow.name == "mine"
    assert app.workflow.apply.steps == (Step(name=StepName.RUN, command="./apply.sh"),)
    assert app.workflow.plan == DEFAULT_WORKFLOW.plan
    assert app.repo_locks_mode is RepoLocksMode.ON_APPLY
    assert app.apply_on_merge is ApplyOnMerge.OFF
    assert (app.execution_order_group, app.depends_on) == (1, ("network",))


def test_a_project_the_config_does_not_list_gets_the_servers_settings() -> None:
    policy = server("repos:\n- id: /.*/\n  apply_requirements: [approved]\n").for_repo(REPO)
    effective = applied(policy, "version: 3\nprojects:\n- name: app\n  dir: app\n")

    listed = effective.for_project(Project(dir="./app"))
    unlisted = effective.for_project(Project(dir="db", workspace="prod"))

    assert listed.project.name == "app" and listed.config is not None
    assert unlisted.config is None
    assert unlisted.project == Project(dir="db", workspace="prod")
    assert unlisted.apply_requirements == ("approved",)
    assert unlisted.workflow == DEFAULT_WORKFLOW
    assert unlisted.when_modified == listed.when_modified


def test_without_a_repo_config_the_policy_applies_to_every_project() -> None:
    policy = server("repos:\n- id: /.*/\n  import_requirements: [approved]\n").for_repo(REPO)

    effective = apply_repo_config(policy, None)

    assert isinstance(effective, EffectiveConfig)
    assert effective.repo_config is None and effective.projects == ()
    assert effective.for_project(Project(dir="app")).import_requirements == ("approved",)


def test_atlantis_documented_example_repos_yaml_reads_unchanged_but_for_keys_not_built_yet() -> None:
    # runatlantis/atlantis runatlantis.io/docs/server-side-repo-config.md, "Example Server Side Repo".
    documented = textwrap.dedent(
        """
        # repos lists the config for specific repos.
        repos:
          # id can either be an exact repo ID or a regex.
          # If using a regex, it must start and end with a slash.
          # Repo ID's are of the form {VCS hostname}/{org}/{repo name}, ex.
          # github.com/runatlantis/atlantis.
        - id: /.*/
          # branch is a regex matching pull requests by base branch
          # (the branch the pull request is getting merged into).
          # By default, all branches are matched
          branch: /.*/

          # repo_config_file specifies which repo config file to use for this repo.
          # By default, atlantis.yaml is used.
          repo_config_file: path/to/atlantis.yaml

          # plan_requirements sets the Plan Requirements for all repos that match.
          plan_requirements: [approved, mergeable, undiverged]

          # apply_requirements sets the Apply Requirements for all repos that match.
          apply_requirements: [approved, mergeable, undiverged]

          # import_requirements sets the Import Requirements for all repos that match.
          import_requirements: [approved, mergeable, undiverged]

          # workflow sets the workflow for all repos that match.
          # This workflow must be defined in the workflows section.
          workflow: custom

          # allowed_overrides specifies which keys can be overridden by this repo in
          # its atlantis.yaml file.
          allowed_overrides: [apply_requirements, workflow, delete_source_branch_on_merge, repo_locking, repo_locks, custom_policy_check]

          # allowed_workflows specifies which workflows the repos that match
          # are allowed to select.
          allowed_workflows: [custom]

          # allow_custom_workflows defines whether this repo can define its own
          # workflows. If false (default), the repo can only use server-side defined
          # workflows.
          allow_custom_workflows: true

          # delete_source_branch_on_merge defines whether the source branch would be deleted on merge
          # If false (default), the source branch won't be deleted on merge
          delete_source_branch_on_merge: true

          # repo_locking defines whether lock repository when planning.
          # If true (default), atlantis try to get a lock.
          # deprecated: use repo_locks instead
          repo_locking: true

          # repo_locks defines whether the repository would be locked on apply instead of plan, or disabled
          # Valid values are on_plan (default), on_apply or disabled.
          repo_locks:
            mode: on_plan

          # custom_policy_check defines whether policy checking tools besides Conftest are enabled in checks
          # If false (default), only Conftest JSON output is allowed
          custom_policy_check: false

          # pre_workflow_hooks defines arbitrary list of scripts to execute before workflow execution.
          pre_workflow_hooks:
            - run: my-pre-workflow-hook-command arg1

          # post_workflow_hooks defines arbitrary list of scripts to execute after workflow execution.
          post_workflow_hooks:
            - run: my-post-workflow-hook-command arg1

          # policy_check defines if policy checking should be enabled on this repository.
          policy_check: false

          # autodiscover defines how atlantis should automatically discover projects in this repository.
          # If any part of this setting is set here, it overrides the entire setting in the repo config.
          autodiscover:
            mode: auto
            # Optionally ignore some paths for autodiscovery by a glob path
            ignore_paths:
              - foo/*

          # id can also be an exact match.
        - id: github.com/myorg/specific-repo

        # workflows lists server-side custom workflows
        workflows:
          custom:
            plan:
              steps:
              - run: my-custom-command arg1 arg2
              - init
              - plan:
                  extra_args: ["-lock", "false"]
              - run: my-custom-command arg1 arg2
            apply:
              steps:
              - run: echo hi
              - apply
        """  # noqa: E501
    )
    # Keys atlas has not built yet are refused, each naming itself; without them the example reads as documented.
    with pytest.raises(ConfigError) as refused:
        server(documented)
    assert "repos[0].custom_policy_check: atlas does not support custom_policy_check yet" in str(refused.value)
    unbuilt = ("custom_policy_check: false", "policy_check: false")
    config = server("\n".join(line for line in documented.splitlines() if line.strip() not in unbuilt))

    policy = config.for_repo("github.com/myorg/specific-repo", "main")
    assert policy.workflow.name == "custom"
    assert policy.workflow.plan.steps[2] == Step(name=StepName.PLAN, extra_args=("-lock", "false"))
    assert policy.repo_config_file == "path/to/atlantis.yaml"
    assert policy.autodiscover == Autodiscover(ignore_paths=("foo/*",))
    assert [hook.run for hook in policy.pre_workflow_hooks] == ["my-pre-workflow-hook-command arg1"]
