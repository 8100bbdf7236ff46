"""`atlas projects` and `atlas config validate` as a user runs them: a subprocess on a real git checkout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import require_binary

REPO_ROOT = Path(__file__).resolve().parent.parent

ATLANTIS_YAML = """\
version: 3
projects:
- name: prod
  dir: envs/prod
  autoplan:
    when_modified: ["*.tf", "../../modules/**/*.tf"]
- name: staging
  dir: envs/staging
  workspace: staging
  autoplan:
    when_modified: ["*.tf"]
  execution_order_group: -1
"""


def atlas(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("ATLAS_")}
    env.update(PYTHONPATH=str(REPO_ROOT), HOME=str(cwd / "home"), COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "atlas", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def git(repo: Path, *args: str) -> str:
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith(("GIT_", "ATLAS_"))},
        "GIT_AUTHOR_NAME": "dev",
        "GIT_AUTHOR_EMAIL": "dev@example.com",
        "GIT_COMMITTER_NAME": "dev",
        "GIT_COMMITTER_EMAIL": "dev@example.com",
        "HOME": str(repo.parent / "home"),
    }
    result = subprocess.run(["git", "-C", str(repo), *args], env=env, capture_output=True, text=True, check=True)
    return result.stdout


def write(repo: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A repository on branch `change`, one commit ahead of main: a module edited, a file renamed, one deleted."""
    require_binary("git", "install git (apt-get install git)")
    repo = tmp_path / "infra"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "remote", "add", "origin", "https://github.com/acme/infra.git")
    write(
        repo,
        {
            "atlantis.yaml": ATLANTIS_YAML,
            "envs/prod/main.tf": 'module "vpc" {\n  source = "../../modules/vpc"\n}\n',
            "envs/staging/main.tf": 'resource "null_resource" "a" {}\n',
            "envs/staging/old.tf": 'resource "null_resource" "b" {}\n',
            "modules/vpc/main.tf": 'resource "null_resource" "vpc" {}\n',
            "README.md": "infra\n",
        },
    )
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    git(repo, "checkout", "-q", "-b", "change")
    write(repo, {"modules/vpc/main.tf": 'resource "null_resource" "vpc2" {}\n'})
    git(repo, "mv", "envs/staging/old.tf", "docs-old.txt")
    git(repo, "rm", "-q", "README.md")
    git(repo, "commit", "-q", "-am", "change")
    return repo


def test_projects_lists_what_a_pull_request_would_plan_and_why(checkout: Path) -> None:
    result = atlas(checkout, "projects")

    assert result.returncode == 0, result.stderr
    assert result.stdout == textwrap.dedent(
        """\
        2 projects to plan for 4 changed files into main; atlantis.yaml (2 configured).
        DIR           WORKSPACE  NAME     REASON
        envs/staging  staging    staging  envs/staging/old.tf matched when_modified "*.tf"
        envs/prod     default    prod     modules/vpc/main.tf matched when_modified "../../modules/**/*.tf"
        """
    )


def test_projects_as_json_for_listed_files(checkout: Path) -> None:
    result = atlas(
        checkout.parent,
        "projects",
        "--repo",
        str(checkout),
        "--base",
        "main",
        "--changed",
        "envs/prod/main.tf",
        "--json",
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "config": "atlantis.yaml",
        "base": "main",
        "changed": ["envs/prod/main.tf"],
        "projects": [
            {
                "name": "prod",
                "dir": "envs/prod",
                "workspace": "default",
                "reason": 'envs/prod/main.tf matched when_modified "*.tf"',
                "workflow": "default",
                "execution_order_group": 0,
            }
        ],
    }


def test_projects_without_a_repo_config_finds_the_root_modules(checkout: Path) -> None:
    git(checkout, "rm", "-q", "atlantis.yaml")
    git(checkout, "commit", "-q", "-m", "no config")

    result = atlas(checkout, "projects", "--base", "main")

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "2 projects to plan for 5 changed files into main; no repo config, projects found from the changes.",
        "DIR           WORKSPACE  NAME  REASON",
        "envs/prod     default    -     modules/vpc changed; used by envs/prod",
        "envs/staging  default    -     envs/staging/old.tf changed",
    ]


def test_projects_reports_a_wrong_config_and_fails(checkout: Path) -> None:
    write(checkout, {"atlantis.yaml": ATLANTIS_YAML + "- dir: envs/prod\n  workspace: [x\n"})

    result = atlas(checkout, "projects", "--changed", "envs/prod/main.tf")

    assert result.returncode == 1
    assert result.stdout == ""
    assert (
        result.stderr
        == "atlantis.yaml: invalid YAML at line 15, column 1: expected ',' or ']', but got '<stream end>'\n"
    )


def test_projects_applies_the_servers_repos_yaml(checkout: Path, tmp_path: Path) -> None:
    repos_yaml = tmp_path / "repos.yaml"
    repos_yaml.write_text("repos:\n- id: github.com/acme/infra\n  apply_requirements: [approved]\n")
    write(checkout, {"atlantis.yaml": ATLANTIS_YAML + "  apply_requirements: []\n"})

    refused = atlas(checkout, "projects", "--repo-config", str(repos_yaml), "--changed", "envs/prod/main.tf")
    repos_yaml.write_text("repos:\n- id: /.*/\n  allowed_overrides: [apply_requirements]\n")
    allowed = atlas(checkout, "projects", "--repo-config", str(repos_yaml), "--changed", "envs/prod/main.tf")
    repos_yaml.write_text("repos:\n- id: /.*/\n  branch: /^release$/\n")
    other_branch = atlas(checkout, "projects", "--repo-config", str(repos_yaml), "--repo-id", "ghe.acme.io/a/b")

    assert refused.returncode == 1
    assert refused.stderr == (
        "atlantis.yaml: projects[1].apply_requirements: the server does not let this repository set "
        "apply_requirements: repos.yaml needs allowed_overrides: [apply_requirements] for it\n"
    )
    assert allowed.returncode == 0, allowed.stderr
    assert (
        allowed.stdout.splitlines()[0]
        == "1 project to plan for 1 changed file into main; atlantis.yaml (2 configured)."
    )
    assert other_branch.returncode == 0
    assert (
        other_branch.stdout
        == "ghe.acme.io/a/b: atlas ignores pull requests into main (repos.yaml branch: /^release$/).\n"
    )


def test_projects_without_git_history_asks_for_the_files(tmp_path: Path) -> None:
    require_binary("git", "install git (apt-get install git)")
    (tmp_path / "plain").mkdir()

    result = atlas(tmp_path, "projects", "--repo", "plain", "--base", "main")

    assert result.returncode == 1
    assert result.stderr.startswith("atlas: error: cannot list the changes of plain against main: ")
    assert result.stderr.endswith("(set --base, or list the files with --changed)\n")


# --- atlas config validate ------------------------------------------------------------------------


def test_validate_a_repo_config(tmp_path: Path) -> None:
    write(tmp_path, {"atlantis.yaml": ATLANTIS_YAML, "bad.yaml": "version: 3\nprojects:\n- dir: app\n  workflw: x\n"})

    valid = atlas(tmp_path, "config", "validate", "atlantis.yaml")
    invalid = atlas(tmp_path, "config", "validate", "bad.yaml")

    assert (valid.returncode, valid.stdout, valid.stderr) == (0, "atlantis.yaml: valid (2 projects)\n", "")
    assert (invalid.returncode, invalid.stdout) == (1, "")
    assert invalid.stderr == "bad.yaml: projects[0].workflw: unknown key; did you mean workflow?\n"


def test_validate_a_repos_yaml_by_its_shape_or_when_told(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "repos.yaml": "repos:\n- id: /.*/\n  allowed_overrides: [workflow]\n- id: github.com/acme/infra\n"
            "workflows:\n  custom: {}\n",
            "workflows-only.yaml": "workflows:\n  default:\n    plan:\n      steps: [init, plan]\n",
            "wrong-server.yaml": "repos:\n- id: /.*/\n  allowed_overrides: [dir]\n",
        },
    )

    by_shape = atlas(tmp_path, "config", "validate", "repos.yaml")
    told = atlas(tmp_path, "config", "validate", "--server", "workflows-only.yaml")
    wrong = atlas(tmp_path, "config", "validate", "wrong-server.yaml")

    assert (by_shape.returncode, by_shape.stdout) == (0, "repos.yaml: valid (2 repo entries, 1 workflow)\n")
    assert (told.returncode, told.stdout) == (0, "workflows-only.yaml: valid (0 repo entries, 1 workflow)\n")
    assert wrong.returncode == 1
    assert wrong.stderr.startswith('wrong-server.yaml: repos[0].allowed_overrides: unknown key "dir"; known: ')


def test_validate_a_missing_file(tmp_path: Path) -> None:
    result = atlas(tmp_path, "config", "validate", "nope.yaml")

    assert result.returncode == 1
    assert result.stderr == "nope.yaml: cannot be read: No such file or directory\n"


def test_config_needs_an_action(tmp_path: Path) -> None:
    result = atlas(tmp_path, "config")

    assert result.returncode == 2
    assert "the following arguments are required: ACTION" in result.stderr


def test_config_validate_checks_an_absolute_dir_against_the_repository_the_file_is_in(tmp_path: Path) -> None:
    write(tmp_path, {"atlantis.yaml": "version: 3\nprojects:\n- dir: /infra/prod\n- dir: /etc\n",
                     "infra/prod/main.tf": ""})

    result = atlas(tmp_path, "config", "validate", "atlantis.yaml")

    assert result.returncode == 1
    assert result.stderr.startswith('atlantis.yaml: projects[1].dir: "/etc" is an absolute path: atlas only runs '
                                    "inside the repository")


def test_validate_a_server_settings_file_such_as_the_example(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[1] / "config" / "server.example.yaml"
    write(tmp_path, {
        "server.yaml": "gh-api-url: https://github.acme.com/api/v3\nrepo-allowlist: [github.acme.com/infra/*]\n"
                       "repo-config: repos.yaml\nmax-connections-per-client: 1000\n",
        "repos.yaml": "repos:\n- id: /.*/\n",
        "typo.yaml": "gh-api-url: https://github.acme.com/api/v3\nrepo-alowlist: '*'\n",
        "wrong.yaml": "port: 99999\n",
    })

    told = atlas(tmp_path, "config", "validate", "--server", str(example))
    by_shape = atlas(tmp_path, "config", "validate", "server.yaml")
    typo = atlas(tmp_path, "config", "validate", "--server", "typo.yaml")
    wrong = atlas(tmp_path, "config", "validate", "--server", "wrong.yaml")

    assert told.returncode == 0, told.stderr
    assert told.stdout.startswith(f"{example}: valid server settings (")
    assert (by_shape.returncode, by_shape.stdout) == (
        0, "server.yaml: valid server settings (4 settings; repo-config repos.yaml: valid (1 repo entry))\n")
    assert (typo.returncode, typo.stderr) == (1, 'typo.yaml: unknown setting "repo-alowlist" (did you mean '
                                                 '"repo-allowlist"?)\n')
    assert wrong.returncode == 1
    assert wrong.stderr == 'wrong.yaml: invalid setting "port": must be an integer between 1 and 65535, got 99999\n'
