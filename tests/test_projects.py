"""Project detection: which directories a pull request's changed files plan, and why."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from atlas.runtime.projects import ProjectMatch, find_projects
from atlas.vcs import ChangedFile, FileStatus

FIXTURES = Path(__file__).resolve().parent.parent / "terraform-fixtures"


@pytest.fixture
def multi_project(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    shutil.copytree(FIXTURES / "multi-project", repo)
    return repo


def write(repo: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return repo


def changed(*names: str) -> list[ChangedFile]:
    return [ChangedFile(filename=name) for name in names]


def dirs(matches: list[ProjectMatch]) -> list[str]:
    return [match.project.dir for match in matches]


def reasons(matches: list[ProjectMatch]) -> dict[str, str]:
    return {match.project.dir: match.reason for match in matches}


BACKEND = 'terraform {\n  backend "local" {}\n}\n'


def module_call(source: str, name: str = "m") -> str:
    return f'module "{name}" {{\n  source = "{source}"\n}}\n'


# The fixture repository: app and db are roots, modules/* are modules.


def test_a_change_in_a_root_plans_that_root(multi_project: Path) -> None:
    matches = find_projects(multi_project, changed("app/main.tf"))

    assert reasons(matches) == {"app": "app/main.tf changed"}
    assert matches[0].project.workspace == "default"
    assert matches[0].project.name is None


def test_a_change_in_a_shared_module_plans_every_root_using_it(multi_project: Path) -> None:
    matches = find_projects(multi_project, changed("modules/label/main.tf"))

    assert reasons(matches) == {
        "app": "modules/label changed; used by app",
        "db": "modules/label changed; used by db through modules/database",
    }


def test_a_change_in_a_module_used_by_one_root_plans_only_that_root(multi_project: Path) -> None:
    matches = find_projects(multi_project, changed("modules/database/main.tf"))

    assert reasons(matches) == {"db": "modules/database changed; used by db"}


def test_var_files_below_a_root_plan_the_root(multi_project: Path) -> None:
    write(multi_project, {"app/env/prod.tfvars": 'environment = "prod"\n'})

    matches = find_projects(
        multi_project, changed("app/env/prod.tfvars", "db/terraform.tfvars.json", "db/.terraform.lock.hcl")
    )

    assert reasons(matches) == {
        "app": "app/env/prod.tfvars changed",
        "db": "db/.terraform.lock.hcl changed (and 1 more file)",
    }


def test_files_that_cannot_change_a_plan_are_ignored(multi_project: Path) -> None:
    write(multi_project, {"app/.terraform/modules/label/main.tf": "", "app/.terraform/x.tfvars": ""})

    matches = find_projects(
        multi_project,
        changed(
            "README.md",
            "app/README.md",
            "app/.terraform/modules/label/main.tf",
            "db/.git/config.tf",
            ".github/workflows/ci.yml",
        ),
    )

    assert matches == []


def test_result_is_sorted_and_each_project_appears_once(multi_project: Path) -> None:
    matches = find_projects(
        multi_project,
        changed("modules/label/main.tf", "db/main.tf", "app/main.tf", "app/variables.tf", "db/main.tf"),
    )

    assert dirs(matches) == ["app", "db"]
    assert reasons(matches) == {
        "app": "app/main.tf changed (and 1 more file); modules/label changed (used by app)",
        "db": "db/main.tf changed; modules/label changed (used by db through modules/database)",
    }


# Which directories are roots.


def test_a_module_that_declares_a_backend_is_also_planned_on_its_own(tmp_path: Path) -> None:
    repo = write(
        tmp_path,
        {
            "shared/main.tf": BACKEND + 'output "x" {\n  value = 1\n}\n',
            "app/main.tf": module_call("../shared"),
        },
    )

    matches = find_projects(repo, changed("shared/main.tf"))

    assert reasons(matches) == {"app": "shared changed; used by app", "shared": "shared/main.tf changed"}


def test_a_directory_nobody_uses_is_a_root_even_without_a_backend(tmp_path: Path) -> None:
    repo = write(tmp_path, {"sandbox/main.tf": 'output "x" {\n  value = 1\n}\n'})

    assert dirs(find_projects(repo, changed("sandbox/main.tf"))) == ["sandbox"]


def test_the_repository_root_can_be_a_project(tmp_path: Path) -> None:
    repo = write(tmp_path, {"main.tf": module_call("./modules/x"), "modules/x/main.tf": ""})

    matches = find_projects(repo, changed("modules/x/main.tf", "terraform.tfvars"))

    assert reasons(matches) == {".": "terraform.tfvars changed; modules/x changed (used by .)"}


def test_json_configuration_counts_like_hcl(tmp_path: Path) -> None:
    repo = write(
        tmp_path,
        {
            "app/main.tf.json": '{"module": {"net": {"source": "../modules/net"}}}',
            "modules/net/main.tf.json": '{"output": {"id": {"value": "x"}}}',
        },
    )

    assert reasons(find_projects(repo, changed("modules/net/main.tf.json"))) == {
        "app": "modules/net changed; used by app"
    }


# Module sources.


def test_only_local_sources_inside_the_repository_make_a_directory_a_module(tmp_path: Path) -> None:
    repo = write(
        tmp_path / "repo",
        {
            "app/main.tf": "\n".join(
                [
                    module_call("terraform-aws-modules/vpc/aws", "registry"),
                    module_call("git::https://example.com/net.git//modules/vpc?ref=v1", "git"),
                    module_call("../../outside", "outside"),
                    module_call("./${var.dir}", "dynamic"),
                ]
            ),
            "vpc/aws/main.tf": "",
            "modules/vpc/main.tf": "",
        },
    )
    write(tmp_path, {"outside/main.tf": ""})

    matches = find_projects(repo, changed("vpc/aws/main.tf", "modules/vpc/main.tf", "app/main.tf"))

    assert dirs(matches) == ["app", "modules/vpc", "vpc/aws"]


def test_sources_are_read_as_terraform_reads_them(tmp_path: Path) -> None:
    """Comments, strings and nested blocks that mention modules do not make module calls."""
    repo = write(
        tmp_path,
        {
            "app/hidden.tf": """
/* module "hidden" {
  source = "../modules/hidden"
} */
""",
            "app/main.tf": """
# module "commented" {
#   source = "../modules/commented"
# }
locals {
  note = "module \\"quoted\\" { source = \\"../modules/quoted\\" }"
}
module "real" {
  source = "../modules/real/" # trailing slash and a comment
  settings = {
    source = "../modules/nested"
  }
  name = "}{"
}
""",
            "api/main.tf": """
module "policy" {
  # the source comes after other arguments here
  policy = <<-EOT
    module "in_heredoc" {
      source = "../modules/heredoc"
    }
  EOT
  source = "../modules/real"
}
""",
            "modules/commented/main.tf": "",
            "modules/hidden/main.tf": "",
            "modules/quoted/main.tf": "",
            "modules/nested/main.tf": "",
            "modules/heredoc/main.tf": "",
            "modules/real/main.tf": "",
        },
    )
    modules = ["commented", "hidden", "quoted", "nested", "heredoc", "real"]

    matches = find_projects(repo, changed(*(f"modules/{name}/main.tf" for name in modules)))

    assert reasons(matches) == {
        "api": "modules/real changed; used by api",
        "app": "modules/real changed; used by app",
        "modules/commented": "modules/commented/main.tf changed",
        "modules/heredoc": "modules/heredoc/main.tf changed",
        "modules/hidden": "modules/hidden/main.tf changed",
        "modules/nested": "modules/nested/main.tf changed",
        "modules/quoted": "modules/quoted/main.tf changed",
    }


def test_modules_that_use_each_other_in_a_cycle_do_not_hang_detection(tmp_path: Path) -> None:
    repo = write(
        tmp_path,
        {
            "a/main.tf": module_call("../b"),
            "b/main.tf": module_call("../a"),
            "root/main.tf": module_call("../a"),
        },
    )

    matches = find_projects(repo, changed("b/main.tf"))

    assert reasons(matches) == {"root": "b changed; used by root through a"}


def test_a_file_that_does_not_parse_is_read_as_calling_no_modules(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    repo = write(
        tmp_path,
        {
            "broken/main.tf": 'module "m" {\n  source = "../m"\n',
            "m/main.tf": "",
            "app/main.tf": module_call("../lib"),
            "lib/main.tf": "",
        },
    )

    with caplog.at_level(logging.WARNING, logger="atlas.runtime.projects"):
        matches = find_projects(repo, changed("broken/main.tf", "m/main.tf", "lib/main.tf"))

    assert dirs(matches) == ["app", "broken", "m"]
    assert any("broken/main.tf" in record.getMessage() for record in caplog.records)


# Deleted and renamed files.


def test_files_in_deleted_directories_are_not_planned(multi_project: Path) -> None:
    matches = find_projects(
        multi_project,
        [
            ChangedFile(filename="old/main.tf", status=FileStatus.REMOVED),
            ChangedFile(filename="app/outputs.tf", status=FileStatus.REMOVED),
        ],
    )

    assert reasons(matches) == {"app": "app/outputs.tf changed"}


def test_a_renamed_file_plans_both_its_old_and_new_directory(multi_project: Path) -> None:
    moved = ChangedFile(filename="db/label.tf", status=FileStatus.RENAMED, previous_filename="app/label.tf")
    gone = ChangedFile(filename="app/x.tf", status=FileStatus.RENAMED, previous_filename="legacy/x.tf")

    assert reasons(find_projects(multi_project, [moved, gone])) == {
        "app": "app/label.tf changed (and 1 more file)",
        "db": "db/label.tf changed",
    }


# Scale: a large monorepo (its speed is measured in benchmarks/project_detection.py).


def generate_monorepo(root: Path, projects_count: int = 1000, modules_count: int = 100) -> list[ChangedFile]:
    """A repository of roots that each call two shared modules; the PR touches 10 files in each."""
    changes: list[ChangedFile] = []
    for i in range(modules_count):
        body = 'variable "name" {\n  type = string\n}\n\noutput "id" {\n  value = var.name\n}\n'
        if i % 2 == 0 and i + 1 < modules_count:
            body += module_call(f"../m{i + 1:03d}", "inner")
        write(root, {f"modules/m{i:03d}/main.tf": body})
        changes.append(ChangedFile(filename=f"modules/m{i:03d}/main.tf"))
    for i in range(projects_count):
        name = f"p{i:04d}"
        main = (
            BACKEND
            + module_call(f"../../modules/m{i % modules_count:03d}", "label")
            + module_call("terraform-aws-modules/vpc/aws", "network")
            + f'resource "terraform_data" "service" {{\n  input = {{ name = "{name}" }}\n}}\n'
        )
        write(root, {f"projects/{name}/main.tf": main, f"projects/{name}/env/.keep": ""})
        for file in ("main", "variables", "outputs", "data", "locals", "providers", "versions"):
            changes.append(ChangedFile(filename=f"projects/{name}/{file}.tf"))
        for file in ("terraform.tfvars", "env/prod.tfvars", "README.md"):
            changes.append(ChangedFile(filename=f"projects/{name}/{file}"))
    return changes


def test_detection_in_a_large_monorepo_finds_every_project_with_its_reason(tmp_path: Path) -> None:
    """Correctness at scale; the speed of the same scenario is measured by benchmarks/project_detection.py."""
    changes = generate_monorepo(tmp_path)
    assert len(changes) >= 10_000

    matches = find_projects(tmp_path, changes)

    assert len(matches) == 1000
    assert matches[1].reason == (
        "projects/p0001/data.tf changed (and 8 more files); modules/m001 changed (used by projects/p0001)"
    )
    assert matches[0].reason.endswith("modules/m001 changed (used by projects/p0000 through modules/m000)")
