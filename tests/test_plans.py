"""Planning and applying projects with the real terraform and the fixtures, and the summaries users read."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest

from atlas.models import CommandName, PlanSummary, Project, ProjectResult, ProjectStatus, ResourceChange
from atlas.runtime.cancellation import CancelToken
from atlas.runtime.joblog import JobLog
from atlas.runtime.plan_output import (
    apply_summary_from_output,
    clean_plan_output,
    summarise_plan,
    summary_line_from_output,
)
from atlas.runtime.plans import apply_project, plan_project
from atlas.runtime.terraform import TerraformRunner
from tests.conftest import require_binary

FIXTURES = Path(__file__).resolve().parent.parent / "terraform-fixtures"


class World:
    """One fixture repository checked out in tmp, its shared state directory, a runner and a log."""

    def __init__(self, tmp_path: Path, fixture: str) -> None:
        self.repo = tmp_path / "repo"
        self.state = tmp_path / "state"
        shutil.copytree(FIXTURES / fixture, self.repo, ignore=shutil.ignore_patterns("expected"))
        for path in self.repo.rglob("*.tf"):
            path.write_text(path.read_text().replace("__STATE_DIR__", str(self.state)))
        terraform = require_binary("terraform", "install Terraform >= 1.4 from https://developer.hashicorp.com")
        self.runner = TerraformRunner(terraform, plugin_cache_dir=tmp_path / "plugin-cache")
        self.log = JobLog(tmp_path / "jobs" / "job.log")
        self.plans = tmp_path / "plans"

    def plan(self, project: Project, **kwargs: Any) -> ProjectResult:
        return plan_project(self.runner, self.repo, project, self.planfile(project), self.log, **kwargs)

    def apply(self, project: Project) -> ProjectResult:
        return apply_project(self.runner, self.repo, project, self.planfile(project), self.log)

    def planfile(self, project: Project) -> Path:
        return self.plans / f"{project.dir.replace('/', '_')}-{project.workspace}.tfplan"


# --- real plans ----------------------------------------------------------------------------------


def test_planning_a_project_shows_the_diff_and_summarises_it(tmp_path: Path) -> None:
    world = World(tmp_path, "multi-project")
    project = Project(dir="app")

    result = world.plan(project)

    assert result.status is ProjectStatus.SUCCEEDED, result.error
    assert result.command is CommandName.PLAN
    assert result.error is None
    assert "Plan: 1 to add, 0 to change, 0 to destroy." in result.output
    assert "# terraform_data.service will be created" in result.output
    assert 'Changes to Outputs:\n  + service_name = "production-app"' in result.output
    assert "Saved the plan to" not in result.output
    assert result.summary == PlanSummary(
        add=1, changes=[ResourceChange(address="terraform_data.service", actions=("create",))]
    )
    assert result.summary.line == "Plan: 1 to add, 0 to change, 0 to destroy."
    assert world.planfile(project).is_file()
    assert result.duration_seconds > 0
    log = world.log.read()
    assert log.startswith("=== plan app/default ===\n$ terraform init -input=false -no-color -upgrade=false\n")
    assert "Terraform has been successfully initialized!" in log
    assert "Plan: 1 to add, 0 to change, 0 to destroy." in log
    assert '"resource_changes"' not in log, "the JSON of terraform show is data, not log"


def test_a_resource_inside_nested_modules_is_summarised_by_its_full_address(tmp_path: Path) -> None:
    world = World(tmp_path, "multi-project")

    result = world.plan(Project(dir="db"))

    assert result.ok, result.error
    assert result.summary is not None
    assert result.summary.changes == [
        ResourceChange(address="module.database.terraform_data.database", actions=("create",))
    ]


def test_a_project_is_planned_in_its_workspace_with_state_in_the_shared_state_dir(tmp_path: Path) -> None:
    world = World(tmp_path, "workspaces")
    project = Project(dir=".", workspace="staging")

    result = world.plan(project)

    assert result.ok, result.error
    assert 'workspace = "staging"' in result.output
    assert (world.state / "workspaces" / "workspaces.d" / "staging").is_dir()
    assert 'Created and switched to workspace "staging"!' in world.log.read()
    assert "=== plan ./staging ===" in world.log.read()

    applied = world.apply(project)

    assert applied.ok, applied.error
    assert (world.state / "workspaces" / "workspaces.d" / "staging" / "terraform.tfstate").is_file()
    assert not (world.state / "workspaces" / "default.tfstate").exists()


def test_variables_reach_terraform_through_env_and_extra_args(tmp_path: Path) -> None:
    world = World(tmp_path, "multi-project")

    from_env = world.plan(Project(dir="app"), env={"TF_VAR_environment": "staging"})
    from_args = world.plan(Project(dir="app"), extra_args=["-var", "environment=qa"])

    assert 'name     = "staging-app"' in from_env.output
    assert 'name     = "qa-app"' in from_args.output


def test_a_failing_plan_says_which_step_failed_and_shows_terraforms_error(tmp_path: Path) -> None:
    world = World(tmp_path, "failing")
    project = Project(dir="broken")
    world.planfile(project).parent.mkdir(parents=True)
    world.planfile(project).write_text("a plan from an earlier commit")

    result = world.plan(project)

    assert result.status is ProjectStatus.FAILED
    assert result.summary is None
    assert result.error is not None
    assert result.error.startswith("terraform plan failed (exit code 1):\n\nError: Invalid function argument")
    assert 'cannot convert "eighty" to number' in result.error
    assert "Error: Invalid function argument" in result.output
    assert not world.planfile(project).exists(), "apply must not find a stale plan"
    assert world.plan(Project(dir="healthy")).ok


def test_an_init_failure_is_reported_as_such(tmp_path: Path) -> None:
    world = World(tmp_path, "failing")
    (world.repo / "broken" / "main.tf").write_text('module "gone" {\n  source = "./missing"\n}\n')

    result = world.plan(Project(dir="broken"))

    assert result.status is ProjectStatus.FAILED
    assert result.error is not None
    assert result.error.startswith("terraform init failed (exit code 1):")
    assert "Error: Unreadable module directory" in result.error


@pytest.mark.parametrize(
    ("directory", "message"),
    [("nowhere", "project directory 'nowhere' does not exist"), ("../..", "is outside the repository")],
)
def test_a_project_directory_that_is_missing_or_outside_the_repo_fails(
    tmp_path: Path, directory: str, message: str
) -> None:
    world = World(tmp_path, "failing")

    result = world.plan(Project(dir=directory))

    assert result.status is ProjectStatus.FAILED
    assert result.error is not None and message in result.error


def test_apply_then_replan_has_no_changes(tmp_path: Path) -> None:
    world = World(tmp_path, "multi-project")
    project = Project(dir="app")
    assert world.plan(project).ok

    applied = world.apply(project)

    assert applied.status is ProjectStatus.SUCCEEDED, applied.error
    assert applied.command is CommandName.APPLY
    assert "terraform_data.service: Creation complete" in applied.output
    assert "Apply complete! Resources: 1 added, 0 changed, 0 destroyed." in applied.output
    assert applied.summary is not None and applied.summary.add == 1
    assert "=== apply app/default ===" in world.log.read()

    replanned = world.plan(project)

    assert replanned.ok, replanned.error
    assert replanned.output.startswith("No changes. Your infrastructure matches the configuration.")
    assert "Refreshing state" not in replanned.output
    assert "Refreshing state" in world.log.read(), "the log keeps everything terraform said"
    assert replanned.summary is not None and not replanned.summary.has_changes


def test_apply_without_a_saved_plan_fails_without_running_terraform(tmp_path: Path) -> None:
    world = World(tmp_path, "multi-project")

    result = world.apply(Project(dir="app"))

    assert result.status is ProjectStatus.FAILED
    assert result.error == "no saved plan for app: run plan again before applying"
    assert "$ terraform" not in world.log.read()


def test_a_long_plan_keeps_all_of_its_output(tmp_path: Path) -> None:
    world = World(tmp_path, "long-plan")

    result = world.plan(Project(dir="."))

    assert result.ok, result.error
    assert len(result.output) > 70_000
    assert result.summary is not None and result.summary.add == 240
    assert result.output.rstrip().endswith("Plan: 240 to add, 0 to change, 0 to destroy.")


# --- summarise_plan --------------------------------------------------------------------------------


def resource(address: str, actions: list[str], **change: Any) -> dict[str, Any]:
    mode = "data" if address.startswith("data.") else "managed"
    return {"address": address, "mode": mode, "change": {"actions": actions, **change}}


def test_summarise_plan_counts_every_action_kind_as_terraform_does() -> None:
    show = {
        "resource_changes": [
            resource("aws_s3_bucket.new", ["create"]),
            resource("aws_s3_bucket.tags", ["update"]),
            resource("aws_s3_bucket.old", ["delete"]),
            resource("aws_instance.web", ["delete", "create"]),
            resource("aws_instance.api", ["create", "delete"]),
            resource("aws_vpc.main", ["no-op"]),
            resource("data.aws_ami.ubuntu", ["read"]),
            resource("aws_iam_role.adopted", ["no-op"], importing={"id": "role-1"}),
            resource("aws_iam_user.adopted", ["update"], importing={"id": "user-1"}),
        ]
    }

    summary = summarise_plan(show)

    assert (summary.add, summary.change, summary.destroy, summary.import_) == (3, 2, 3, 2)
    assert summary.line == "Plan: 2 to import, 3 to add, 2 to change, 3 to destroy."
    assert summary.changes == [
        ResourceChange(address="aws_s3_bucket.new", actions=("create",)),
        ResourceChange(address="aws_s3_bucket.tags", actions=("update",)),
        ResourceChange(address="aws_s3_bucket.old", actions=("delete",)),
        ResourceChange(address="aws_instance.web", actions=("delete", "create")),
        ResourceChange(address="aws_instance.api", actions=("create", "delete")),
        ResourceChange(address="aws_iam_role.adopted", actions=("import",)),
        ResourceChange(address="aws_iam_user.adopted", actions=("import", "update")),
    ]


def test_summarise_plan_of_nothing_is_no_changes() -> None:
    for show in ({}, {"resource_changes": None}, {"resource_changes": [resource("a.b", ["no-op"])]}):
        summary = summarise_plan(show)
        assert not summary.has_changes
        assert summary.changes == []
        assert summary.line == "No changes. Your infrastructure matches the configuration."


def test_a_deposed_object_is_counted_as_a_destroy_and_named() -> None:
    show = {"resource_changes": [{**resource("aws_instance.web", ["delete"]), "deposed": "a1b2c3d4"}]}

    summary = summarise_plan(show)

    assert summary.destroy == 1
    assert summary.changes == [
        ResourceChange(address="aws_instance.web (deposed object a1b2c3d4)", actions=("delete",))
    ]


# --- what users read -----------------------------------------------------------------------------

RAW_PLAN = textwrap.dedent(
    """\
    data.aws_ami.ubuntu: Reading...
    aws_vpc.main: Refreshing state... [id=vpc-0a1b2c]
    data.aws_ami.ubuntu: Read complete after 1s [id=ami-123]
    aws_s3_bucket.logs: Refreshing state... [id=logs]

    Terraform used the selected providers to generate the following execution
    plan. Resource actions are indicated with the following symbols:
      ~ update in-place

    Terraform will perform the following actions:

      # aws_s3_bucket.logs will be updated in-place
      ~ resource "aws_s3_bucket" "logs" {
            id     = "logs"
          ~ tags   = {
              + "team" = "platform"
            }
        }



    Plan: 0 to add, 1 to change, 0 to destroy.

    Changes to Outputs:
      ~ bucket = "logs" -> "logs-v2"

    Warning: Argument is deprecated

      with aws_s3_bucket.logs,
      on main.tf line 3:

    Use the aws_s3_bucket_acl resource instead.

    ─────────────────────────────────────────────────────────────────────────────

    Saved the plan to: /data/plans/abc.tfplan

    To perform exactly these actions, run the following command to apply:
        terraform apply "/data/plans/abc.tfplan"
    """
)


def test_clean_plan_output_keeps_what_reviewers_read_and_drops_the_noise() -> None:
    assert clean_plan_output(RAW_PLAN) == textwrap.dedent(
        """\
        Terraform used the selected providers to generate the following execution
        plan. Resource actions are indicated with the following symbols:
          ~ update in-place

        Terraform will perform the following actions:

          # aws_s3_bucket.logs will be updated in-place
          ~ resource "aws_s3_bucket" "logs" {
                id     = "logs"
              ~ tags   = {
                  + "team" = "platform"
                }
            }

        Plan: 0 to add, 1 to change, 0 to destroy.

        Changes to Outputs:
          ~ bucket = "logs" -> "logs-v2"

        Warning: Argument is deprecated

          with aws_s3_bucket.logs,
          on main.tf line 3:

        Use the aws_s3_bucket_acl resource instead.
        """
    )


def test_clean_plan_output_drops_progress_lines_of_an_apply() -> None:
    raw = (
        "aws_instance.web: Modifying... [id=i-1]\n"
        "aws_instance.web: Still modifying... [id=i-1, 10s elapsed]\n"
        "aws_instance.web: Modifications complete after 12s [id=i-1]\n"
        "\n"
        "Apply complete! Resources: 0 added, 1 changed, 0 destroyed.\n"
    )

    assert clean_plan_output(raw) == (
        "aws_instance.web: Modifying... [id=i-1]\n"
        "aws_instance.web: Modifications complete after 12s [id=i-1]\n"
        "\n"
        "Apply complete! Resources: 0 added, 1 changed, 0 destroyed.\n"
    )
    assert clean_plan_output("\n\n") == ""


def test_summary_lines_are_found_in_plan_and_apply_output() -> None:
    assert summary_line_from_output(RAW_PLAN) == "Plan: 0 to add, 1 to change, 0 to destroy."
    assert (
        summary_line_from_output("x\nNo changes. Your infrastructure matches the configuration.\n")
        == "No changes. Your infrastructure matches the configuration."
    )
    assert (
        summary_line_from_output("Apply complete! Resources: 2 added, 0 changed, 1 destroyed.\n")
        == "Apply complete! Resources: 2 added, 0 changed, 1 destroyed."
    )
    assert summary_line_from_output("Error: boom\n") is None


def test_apply_counts_are_parsed_including_imports() -> None:
    summary = apply_summary_from_output("Apply complete! Resources: 1 imported, 2 added, 3 changed, 4 destroyed.")

    assert summary is not None
    assert (summary.import_, summary.add, summary.change, summary.destroy) == (1, 2, 3, 4)
    assert apply_summary_from_output("Error: no") is None


def test_a_cancelled_apply_stops_terraform_gracefully_and_releases_the_state_lock(tmp_path: Path) -> None:
    world = World(tmp_path, "failing")
    (world.repo / "healthy" / "slow.tf").write_text(
        textwrap.dedent(
            """\
            resource "terraform_data" "slow" {
              provisioner "local-exec" {
                command = "echo provisioning; sleep 60"
              }
            }
            """
        )
    )
    project = Project(dir="healthy")
    assert world.plan(project).ok
    cancel = CancelToken()
    world.log.subscribe(lambda line: cancel.cancel() if line.endswith("(local-exec): provisioning") else None)

    applied = apply_project(world.runner, world.repo, project, world.planfile(project), world.log, cancel=cancel)

    assert applied.status is ProjectStatus.FAILED
    assert applied.error is not None and applied.error.startswith("terraform apply was cancelled")
    assert applied.duration_seconds < 50
    assert "Interrupt received" in world.log.read()
    replanned = world.plan(project)
    assert replanned.ok, replanned.error
