"""Which projects a pull request plans with a repo config, and which projects a comment names."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from atlas.config.loading import parse_repo_config
from atlas.config.server import EffectiveConfig, RepoPolicy, ServerConfig, apply_repo_config
from atlas.config.valid import FilePatterns
from atlas.models import Project
from atlas.runtime.project_selection import changed_paths, find_named_project, projects_for_dir, select_projects
from atlas.vcs import ChangedFile, FileStatus

REPO = "github.com/acme/infra"


def effective(text: str, policy: RepoPolicy | None = None) -> EffectiveConfig:
    config = parse_repo_config(textwrap.dedent(text), "atlantis.yaml")
    result = apply_repo_config(policy or RepoPolicy.allowing_everything(REPO), config)
    assert isinstance(result, EffectiveConfig), result
    return result


def tree(root: Path, *files: str) -> Path:
    for name in files:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text('resource "null_resource" "x" {}\n' if name.endswith(".tf") else "x\n")
    return root


def changed(*names: str) -> list[ChangedFile]:
    return [ChangedFile(filename=name) for name in names]


def planned(repo: Path, files: list[ChangedFile], config: EffectiveConfig | None, base: str = "main") -> list[str]:
    """`label: reason` of each planned project, in order."""
    return [f"{m.project.label}: {m.reason}" for m in select_projects(repo, files, config, base_branch=base)]


# --- when_modified, as Atlantis matches it --------------------------------------------------------


@pytest.mark.parametrize(
    ("project_dir", "patterns", "path", "expected"),
    [
        (".", ["*.tf"], "main.tf", "*.tf"),
        (".", ["*.tf"], "app/main.tf", None),  # `*` stays within one directory
        ("app", ["*.tf"], "app/main.tf", "*.tf"),
        ("app", ["*.tf"], "app/sub/main.tf", None),
        ("app", ["**/*.tf"], "app/sub/deeper/main.tf", "**/*.tf"),
        ("app", ["**/*.tf"], "app/main.tf", "**/*.tf"),
        ("app", ["*.tf*"], "app/prod.tfvars", "*.tf*"),
        ("envs/prod", ["../../modules/**"], "modules/vpc/main.tf", "../../modules/**"),
        ("envs/prod", ["../../modules/**/*.tf"], "modules/vpc/sub/main.tf", "../../modules/**/*.tf"),
        ("envs/prod", ["../../modules/**/*.tf"], "modules/vpc/README.md", None),
        ("project1", ["../modules/**/*.tf"], "project1/modules/main.tf", None),  # `..` is relative to the dir
        (".", ["modules"], "modules/vpc/main.tf", "modules"),  # a pattern naming a dir matches files under it
        (".", ["**/*.tf", "!legacy/**"], "legacy/old.tf", None),
        (".", ["**/*.tf", "!legacy/**"], "current/new.tf", "**/*.tf"),
        (".", ["!legacy/**", "**/*.tf"], "legacy/old.tf", "**/*.tf"),  # order matters: the last match wins
        (".", ["**/main.tf"], "xmain.tf", "**/main.tf"),  # a leading ** matches by suffix, as in Atlantis
        (".", ["terragrunt.hcl"], "terragrunt.hcl", "terragrunt.hcl"),
        (".", ["env/?.tfvars"], "env/a.tfvars", "env/?.tfvars"),
        (".", ["env/[ab].tfvars"], "env/c.tfvars", None),
        ("app", [""], "app/anything/at/all.txt", ""),  # an empty pattern is the project dir itself
        ("terraform/infra", ["\\!terraform/infra/samples/"], "terraform/infra/samples/x.tf", None),
    ],
)
def test_when_modified_matches_as_atlantis_does(
    project_dir: str, patterns: list[str], path: str, expected: str | None
) -> None:
    assert FilePatterns(project_dir, patterns).match(path) == expected


# --- selection with a config ----------------------------------------------------------------------

MODULES_CONFIG = """
    version: 3
    projects:
    - name: prod
      dir: envs/prod
      autoplan:
        when_modified: ["*.tf", "*.tfvars", "../../modules/**/*.tf"]
    - name: staging
      dir: envs/staging
      autoplan:
        when_modified: ["*.tf", "../../modules/**"]
    """


def test_a_module_change_plans_the_projects_whose_when_modified_reaches_it(tmp_path: Path) -> None:
    repo = tree(tmp_path, "envs/prod/main.tf", "envs/staging/main.tf", "modules/vpc/main.tf")
    config = effective(MODULES_CONFIG)

    assert planned(repo, changed("modules/vpc/main.tf"), config) == [
        'prod: modules/vpc/main.tf matched when_modified "../../modules/**/*.tf"',
        'staging: modules/vpc/main.tf matched when_modified "../../modules/**"',
    ]
    assert planned(repo, changed("modules/vpc/README.md"), config) == [
        'staging: modules/vpc/README.md matched when_modified "../../modules/**"'
    ]
    assert planned(repo, changed("envs/prod/prod.tfvars", "envs/prod/main.tf", "envs/prod/versions.tf"), config) == [
        'prod: envs/prod/main.tf matched when_modified "*.tf" (and 2 more files)'
    ]
    assert planned(repo, changed("README.md", "envs/prod/docs/notes.tf"), config) == []


def test_deleted_and_renamed_files_count(tmp_path: Path) -> None:
    repo = tree(tmp_path, "envs/prod/main.tf", "envs/staging/main.tf")
    config = effective(MODULES_CONFIG)

    deleted = [ChangedFile(filename="modules/old/main.tf", status=FileStatus.REMOVED)]
    renamed = [
        ChangedFile(filename="docs/variables.md", previous_filename="envs/prod/variables.tf", status=FileStatus.RENAMED)
    ]

    assert [line.split(":")[0] for line in planned(repo, deleted, config)] == ["prod", "staging"]
    assert planned(repo, renamed, config) == ['prod: envs/prod/variables.tf matched when_modified "*.tf"']
    assert changed_paths(renamed) == ["docs/variables.md", "envs/prod/variables.tf"]


def test_a_project_whose_dir_was_deleted_is_not_planned(tmp_path: Path) -> None:
    repo = tree(tmp_path, "envs/staging/main.tf")
    deleted = [ChangedFile(filename="envs/prod/main.tf", status=FileStatus.REMOVED)]

    assert planned(repo, deleted, effective(MODULES_CONFIG)) == []


def test_only_projects_for_the_base_branch_are_considered(tmp_path: Path) -> None:
    repo = tree(tmp_path, "main.tf")
    config = effective(
        """
        version: 3
        projects:
        - {name: production, dir: ., branch: /^production$/}
        - {name: staging, dir: ., branch: /^staging$/}
        - {name: any, dir: ., workspace: any}
        """
    )

    assert [line.split(":")[0] for line in planned(repo, changed("main.tf"), config, "staging")] == ["staging", "any"]
    assert [line.split(":")[0] for line in planned(repo, changed("main.tf"), config, "production")] == [
        "production",
        "any",
    ]


def test_autoplan_disabled_projects_plan_only_when_asked(tmp_path: Path) -> None:
    repo = tree(tmp_path, "app/main.tf", "db/main.tf")
    config = effective(
        """
        version: 3
        projects:
        - dir: app
          autoplan: {enabled: false}
        - dir: db
        """
    )
    files = changed("app/main.tf", "db/main.tf")

    assert planned(repo, files, config) == ['db: db/main.tf matched when_modified "**/*.tf*"']
    manual = select_projects(repo, files, config, base_branch="main", manual=True)
    assert [match.project.dir for match in manual] == ["app", "db"]


def test_projects_are_in_execution_order_then_config_order(tmp_path: Path) -> None:
    repo = tree(tmp_path, "a/main.tf", "b/main.tf", "c/main.tf", "d/main.tf")
    config = effective(
        """
        version: 3
        projects:
        - {dir: d, execution_order_group: 2}
        - {dir: c}
        - {dir: b, execution_order_group: 2}
        - {dir: a, execution_order_group: 1}
        """
    )

    matches = select_projects(
        repo, changed("a/main.tf", "b/main.tf", "c/main.tf", "d/main.tf"), config, base_branch="main"
    )

    assert [match.project.dir for match in matches] == ["c", "a", "d", "b"]


# --- without a config, or with one that lists no projects -----------------------------------------


def test_without_a_config_projects_are_found_from_the_changes(tmp_path: Path) -> None:
    repo = tree(tmp_path, "app/main.tf", "db/main.tf")

    assert planned(repo, changed("app/main.tf"), None) == ["app: app/main.tf changed"]
    no_file = apply_repo_config(ServerConfig().for_repo(REPO), None)
    assert isinstance(no_file, EffectiveConfig)
    assert planned(repo, changed("app/main.tf"), no_file) == ["app: app/main.tf changed"]


def test_autodiscover_modes(tmp_path: Path) -> None:
    repo = tree(tmp_path, "app/main.tf", "db/main.tf", "experiments/x/main.tf")
    files = changed("app/main.tf", "db/main.tf", "experiments/x/main.tf")

    no_projects = effective("version: 3\nautomerge: true\n")
    disabled = effective("version: 3\nautodiscover: {mode: disabled}\n")
    enabled = effective(
        """
        version: 3
        autodiscover:
          mode: enabled
          ignore_paths: [experiments/**]
        projects:
        - name: the-app
          dir: app
          autoplan: {when_modified: ["*.tf"]}
          execution_order_group: 1
        """
    )
    auto_with_projects = effective("version: 3\nprojects:\n- dir: app\n")

    assert [m.split(":")[0] for m in planned(repo, files, no_projects)] == ["app", "db", "experiments/x"]
    assert planned(repo, files, disabled) == []
    assert planned(repo, files, enabled) == [
        "db: db/main.tf changed",
        'the-app: app/main.tf matched when_modified "*.tf"',
    ]
    assert [m.split(":")[0] for m in planned(repo, files, auto_with_projects)] == ["app"]


def test_the_servers_autodiscover_replaces_the_repos(tmp_path: Path) -> None:
    repo = tree(tmp_path, "app/main.tf")
    policy = (
        ServerConfig()
        .for_repo(REPO)
        .model_copy(update={"autodiscover": effective("version: 3\nautodiscover: {mode: disabled}\n").autodiscover})
    )
    config = apply_repo_config(policy, parse_repo_config("version: 3\nautodiscover: {mode: enabled}\n", "a.yaml"))

    assert isinstance(config, EffectiveConfig)
    assert planned(repo, changed("app/main.tf"), config) == []


# --- what a comment's -p and -d name --------------------------------------------------------------

COMMENT_CONFIG = """
    version: 3
    projects:
    - {name: app-staging, dir: app, workspace: staging}
    - {name: app-prod, dir: app, workspace: prod, branch: /^main$/}
    - {name: db, dir: db}
    """


def test_dash_p_names_a_configured_project() -> None:
    config = effective(COMMENT_CONFIG)

    found = find_named_project(config, "app-prod")
    assert found is not None and found.project == Project(dir="app", workspace="prod", name="app-prod")
    assert find_named_project(config, "nope") is None
    assert find_named_project(config, "app-prod", base_branch="develop") is None


def test_dash_d_names_every_configured_project_in_the_dir() -> None:
    config = effective(COMMENT_CONFIG)

    assert [s.project.name for s in projects_for_dir(config, "app")] == ["app-staging", "app-prod"]
    assert [s.project.name for s in projects_for_dir(config, "./app/", "prod")] == ["app-prod"]
    assert [s.project.name for s in projects_for_dir(config, "app", base_branch="develop")] == ["app-staging"]
    assert projects_for_dir(config, "network") == []
    assert config.for_project(Project(dir="network")).config is None
