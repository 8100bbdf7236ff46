"""`init` runs again only when something it depends on changed since the copy's last successful init."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from atlas.config.workflow import Step, StepName
from atlas.models import Project
from atlas.runtime.init_inputs import init_fingerprint
from tests.test_steps import World, stage

APP = Project(dir="app", workspace="default")
SKIPPED = "atlas: init skipped"


def init_and_plan(world: World) -> str:
    before = len(world.log.read())
    result = world.run(stage(Step(name=StepName.INIT), Step(name=StepName.PLAN)), APP)
    assert result.ok, result.error
    return world.log.read()[before:]


def append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


def test_a_second_plan_with_nothing_changed_skips_init_and_says_so(tmp_path: Path) -> None:
    world = World(tmp_path)
    first = init_and_plan(world)
    assert "$ terraform init" in first and SKIPPED not in first

    second = init_and_plan(world)

    assert SKIPPED in second
    assert "$ terraform init" not in second
    assert "Plan: 1 to add" in second or "terraform plan" in second


CHANGES: dict[str, Callable[[Path], None]] = {
    "lock file": lambda repo: (repo / "app" / ".terraform.lock.hcl").write_text("# providers\n"),
    "module source": lambda repo: append(
        repo / "app" / "main.tf", '\nmodule "again" {\n  source = "../modules/label"\n}\n'),
    "local module's providers": lambda repo: append(
        repo / "modules" / "label" / "main.tf", '\nresource "random_pet" "name" {\n}\n'),
    "local module's module calls": lambda repo: append(
        repo / "modules" / "label" / "main.tf", '\nmodule "nested" {\n  source = "./nested"\n}\n'),
    "backend config": lambda repo: (repo / "app" / "backend.tf").write_text(
        (repo / "app" / "backend.tf").read_text().replace(".tfstate", "-moved.tfstate")),
    "required providers": lambda repo: append(repo / "app" / "main.tf", '\nterraform {\n  required_providers {}\n}\n'),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_change_to_what_init_depends_on_runs_init_again(tmp_path: Path, change: str) -> None:
    world = World(tmp_path)
    init_and_plan(world)

    CHANGES[change](world.repo)
    again = world.run(stage(Step(name=StepName.INIT)), APP)

    text = world.log.read().split("=== plan app/default ===")[-1]
    assert SKIPPED not in text, change
    assert "$ terraform init" in text or not again.ok, change


def test_other_init_arguments_run_init_again(tmp_path: Path) -> None:
    world = World(tmp_path)
    init_and_plan(world)

    world.run(stage(Step(name=StepName.INIT, extra_args=("-lockfile=readonly",))), APP)

    assert SKIPPED not in world.log.read().split("=== plan app/default ===")[-1]


def test_another_terraform_version_or_binary_changes_the_fingerprint(tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text("")
    base = {"binary": "/usr/bin/terraform", "version": "1.11.0", "args": ["init"], "env": {}}
    fingerprint = init_fingerprint(tmp_path, **base)  # type: ignore[arg-type]
    assert init_fingerprint(tmp_path, **{**base, "version": "1.10.5"}) != fingerprint  # type: ignore[arg-type]
    assert init_fingerprint(tmp_path, **{**base, "binary": "/usr/bin/tofu"}) != fingerprint  # type: ignore[arg-type]
    assert init_fingerprint(tmp_path, **{**base, "env": {"TF_CLI_ARGS_init": "-x"}}) != fingerprint  # type: ignore[arg-type]
    assert init_fingerprint(tmp_path, **base) == fingerprint  # type: ignore[arg-type]


NOT_READ_BY_INIT: dict[str, Callable[[Path], None]] = {
    "a resource's arguments": lambda repo: append(
        repo / "app" / "main.tf", '\nresource "terraform_data" "more" {\n  input = 1 # one\n}\n'),
    "a variable, an output and locals": lambda repo: append(
        repo / "app" / "main.tf",
        '\nvariable "size" {\n  default = 3\n}\noutput "size" {\n  value = var.size\n}\nlocals {\n  x = 1\n}\n'),
    "a comment": lambda repo: append(repo / "app" / "main.tf", "\n# only a comment\n"),
}


@pytest.mark.parametrize("change", sorted(NOT_READ_BY_INIT))
def test_a_change_init_does_not_read_keeps_the_init(tmp_path: Path, change: str) -> None:
    world = World(tmp_path)
    init_and_plan(world)

    NOT_READ_BY_INIT[change](world.repo)
    again = init_and_plan(world)

    assert SKIPPED in again, change
    assert "$ terraform init" not in again, change


READ_BY_INIT: dict[str, str] = {
    "a resource of another provider": 'resource "random_pet" "name" {\n}\n',
    "a provider block": 'provider "aws" {\n  region = "eu-west-1"\n}\n',
    "a module's version": 'module "registry" {\n  source  = "acme/label/null"\n  version = "1.2.0"\n}\n',
    "a backend": 'terraform {\n  backend "s3" {}\n}\n',
    "an import block": 'import {\n  to = terraform_data.x\n  id = "x"\n}\n',
    "text hcl2 cannot read": 'resource "terraform_data" {{{\n',
}


@pytest.mark.parametrize("change", sorted(READ_BY_INIT))
def test_what_init_reads_changes_the_fingerprint(tmp_path: Path, change: str) -> None:
    (tmp_path / "main.tf").write_text('resource "terraform_data" "x" {\n  input = 1\n}\n')
    base = {"binary": "terraform", "version": "1.11.0", "args": ["init"], "env": {}}
    before = init_fingerprint(tmp_path, **base)  # type: ignore[arg-type]

    append(tmp_path / "main.tf", READ_BY_INIT[change])

    assert init_fingerprint(tmp_path, **base) != before, change  # type: ignore[arg-type]
