"""Running workflow stages step by step with the real terraform and a real shell, and what users see of them."""

from __future__ import annotations

import json
import re
import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest

from atlas.config.workflow import Stage, Step, StepName
from atlas.models import CommandName, Project, ProjectResult, ProjectStatus, PullRequest, Repo
from atlas.runtime.cancellation import CancelToken
from atlas.runtime.joblog import JobLog
from atlas.runtime.steps import (
    StageFiles,
    StepContext,
    escape_comment_args,
    parse_multienv,
    run_stage,
    run_step_environment,
    strip_refreshing,
)
from atlas.runtime.terraform import TerraformRunner
from tests.conftest import require_binary, require_sandbox
from tests.emulator import GitHubEmulator

FIXTURES = Path(__file__).resolve().parent.parent / "terraform-fixtures"
TOKEN = "ghp_steps0123456789abcdefSECRET"
WEBHOOK_SECRET = "whsec-steps-0123456789"

# CommandName has no import or state rm yet; the command only labels the result and the log
# section, and a plan command's "remove the old plan first" matches what import and state rm do.
IMPORT_COMMAND = CommandName.PLAN

REPO = Repo(
    full_name="acme/infra",
    clone_url="https://github.com/acme/infra.git",
    html_url="https://github.com/acme/infra",
)
PULL = PullRequest(
    repo=REPO,
    number=7,
    head_sha="0123456789abcdef0123456789abcdef01234567",
    head_ref="feature/network",
    base_ref="main",
    author="alice",
    html_url="https://github.com/acme/infra/pull/7",
)


class World:
    """One fixture repository checked out in tmp, its shared state directory, a runner and a log.

    Every step runs in the bubblewrap sandbox, as on a server, with the state directory reachable.
    """

    def __init__(self, tmp_path: Path, fixture: str = "multi-project") -> None:
        self.repo = tmp_path / "repo"
        self.state = tmp_path / "state"
        self.state.mkdir()
        shutil.copytree(FIXTURES / fixture, self.repo, ignore=shutil.ignore_patterns("expected"))
        for path in self.repo.rglob("*.tf"):
            path.write_text(path.read_text().replace("__STATE_DIR__", str(self.state)))
        terraform = require_binary("terraform", "install Terraform >= 1.4 from https://developer.hashicorp.com")
        self.runner = TerraformRunner(
            terraform, plugin_cache_dir=tmp_path / "plugin-cache", secrets=[TOKEN, WEBHOOK_SECRET],
            sandbox=require_sandbox(self.state),
        )
        self.log = JobLog(tmp_path / "jobs" / "job.log", redactor=[TOKEN, WEBHOOK_SECRET])
        self.plans = tmp_path / "plans"

    def planfile(self, project: Project) -> Path:
        return self.plans / f"{project.dir.replace('/', '_')}--{project.workspace}.tfplan"

    def run(
        self,
        stage: Stage,
        project: Project,
        *,
        command: CommandName = CommandName.PLAN,
        context: StepContext | None = None,
        **kwargs: Any,
    ) -> ProjectResult:
        return run_stage(
            stage,
            command=command,
            runner=self.runner,
            workdir=self.repo,
            project=project,
            planfile=self.planfile(project),
            log=self.log,
            context=context or StepContext.for_pull(PULL, project, user_name="bob"),
            **kwargs,
        )

    def plan_and_apply(self, project: Project) -> None:
        assert self.run(stage(Step(name=StepName.INIT), Step(name=StepName.PLAN)), project).ok
        applied = self.run(stage(Step(name=StepName.APPLY)), project, command=CommandName.APPLY)
        assert applied.ok, applied.error


def staged_planfile(output: str, kept: Path) -> Path:
    """The PLANFILE a stage's run step printed: the kept plan's name, in a directory of the stage's own beside it."""
    printed = next(line for line in output.splitlines() if line.startswith("PLANFILE="))
    planfile = Path(printed.removeprefix("PLANFILE="))
    assert planfile.name == kept.name and planfile.parent.parent == kept.parent, planfile
    assert planfile.parent.name.startswith(f".{kept.stem}.") and planfile.parent.name.endswith(".stage"), planfile
    return planfile


def stage(*steps: Step) -> Stage:
    return Stage(steps=steps)


def run_step(command: str, **fields: Any) -> Step:
    return Step(name=StepName.RUN, command=command, **fields)


INIT = Step(name=StepName.INIT)
PLAN = Step(name=StepName.PLAN)


# --- run steps -----------------------------------------------------------------------------------


def test_a_run_step_sees_atlantis_variables_and_their_atlas_twins(tmp_path: Path) -> None:
    world = World(tmp_path, "workspaces")
    project = Project(dir=".", workspace="staging", name="edge")
    context = StepContext.for_pull(
        PULL, project, user_name="bob", comment_args=("-var", "a=b c"), terraform_version="1.11.0"
    )
    names = [
        "WORKSPACE", "DIR", "PLANFILE", "SHOWFILE", "POLICYCHECKFILE", "BASE_REPO_NAME", "BASE_REPO_OWNER",
        "HEAD_REPO_NAME", "HEAD_REPO_OWNER", "HEAD_BRANCH_NAME", "HEAD_COMMIT", "BASE_BRANCH_NAME",
        "PROJECT_NAME", "PULL_NUM", "PULL_URL", "PULL_AUTHOR", "REPO_REL_DIR", "USER_NAME", "COMMENT_ARGS",
    ]  # fmt: skip
    printed = " ".join(f'"{name}=${name}" "ATLAS_{name}=$ATLAS_{name}"' for name in names)
    command = (
        f"printf '%s\\n' {printed} \"ATLANTIS_TERRAFORM_VERSION=$ATLANTIS_TERRAFORM_VERSION\" "
        '"ATLAS_TERRAFORM_VERSION=$ATLAS_TERRAFORM_VERSION" "approved=${ATLANTIS_PR_APPROVED-unset}"; '
        "test -s \"$PLANFILE\" && echo planfile-exists; pwd"
    )

    result = world.run(stage(INIT, PLAN, run_step(command)), project, context=context)

    assert result.ok, result.error
    kept = world.planfile(project).absolute()
    planfile = staged_planfile(result.output, kept)
    expected = {
        "WORKSPACE": "staging",
        "DIR": str(world.repo.resolve()),
        "PLANFILE": str(planfile),
        "SHOWFILE": str(planfile.with_name(f"{planfile.stem}.show.json")),
        "POLICYCHECKFILE": str(planfile.with_name(f"{planfile.stem}.policycheck.json")),
        "BASE_REPO_NAME": "infra",
        "BASE_REPO_OWNER": "acme",
        "HEAD_REPO_NAME": "infra",
        "HEAD_REPO_OWNER": "acme",
        "HEAD_BRANCH_NAME": "feature/network",
        "HEAD_COMMIT": PULL.head_sha,
        "BASE_BRANCH_NAME": "main",
        "PROJECT_NAME": "edge",
        "PULL_NUM": "7",
        "PULL_URL": "https://github.com/acme/infra/pull/7",
        "PULL_AUTHOR": "alice",
        "REPO_REL_DIR": ".",
        "USER_NAME": "bob",
        "COMMENT_ARGS": "\\-\\v\\a\\r,\\a\\=\\b\\ \\c",
    }
    lines = result.output.splitlines()
    for name, value in expected.items():
        assert f"{name}={value}" in lines
        assert f"ATLAS_{name}={value}" in lines
    assert "ATLANTIS_TERRAFORM_VERSION=1.11.0" in lines
    assert "ATLAS_TERRAFORM_VERSION=1.11.0" in lines
    assert "approved=unset" in lines, "approval atlas did not look up is not guessed"
    assert "planfile-exists" in lines
    assert kept.is_file() and not planfile.parent.exists(), "the plan is kept, its stage's directory removed"
    assert str(world.repo.resolve()) in lines, "run steps run in the project directory"
    # The plan's own output comes first, then the run step's, a blank line apart.
    assert result.output.index("Plan: 1 to add") < result.output.index("WORKSPACE=staging")
    assert "\n\nWORKSPACE=staging\n" in result.output
    assert result.summary is not None and result.summary.add == 1


def test_run_steps_never_see_atlas_secrets_from_the_server_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = World(tmp_path)
    monkeypatch.setenv("ATLAS_GH_TOKEN", TOKEN)
    monkeypatch.setenv("ATLAS_GH_WEBHOOK_SECRET", WEBHOOK_SECRET)
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("DEPLOY_URL", f"https://x-access-token:{TOKEN}@github.com/acme/infra.git")
    monkeypatch.setenv("HARMLESS_SETTING", "kept")

    result = world.run(stage(run_step("env | sort")), Project(dir="app"))

    assert result.ok, result.error
    assert "HARMLESS_SETTING=kept" in result.output
    assert "ATLAS_WORKSPACE=default" in result.output, "the twins are added after the scrubbing"
    for hidden in (TOKEN, WEBHOOK_SECRET, "***", "ATLAS_GH_TOKEN", "ATLAS_GH_WEBHOOK_SECRET", "GITHUB_TOKEN",
                   "DEPLOY_URL"):  # fmt: skip
        assert hidden not in result.output
        assert hidden not in world.log.read()


def test_a_run_step_runs_the_terraform_atlas_runs(tmp_path: Path) -> None:
    world = World(tmp_path)

    result = world.run(stage(run_step("command -v terraform")), Project(dir="app"))

    assert result.ok, result.error
    assert Path(result.output.strip()).resolve() == Path(world.runner.binary).resolve()


def test_a_failing_run_step_fails_the_stage_with_its_output_and_exit_code(tmp_path: Path) -> None:
    world = World(tmp_path)
    project = Project(dir="app")
    steps = stage(INIT, PLAN, run_step("echo checking; echo 'tflint: 2 issues' >&2; exit 3"), run_step("echo never"))

    result = world.run(steps, project)

    assert result.status is ProjectStatus.FAILED
    assert result.error == (
        "run step `echo checking; echo 'tflint: 2 issues' >&2; exit 3` failed (exit code 3):\n\n"
        "checking\ntflint: 2 issues\n"
    )
    assert "Plan: 1 to add, 0 to change, 0 to destroy." in result.output, "what ran before is still shown"
    assert result.output.endswith("checking\ntflint: 2 issues\n")
    assert result.summary is None
    assert not world.planfile(project).exists(), "a failed plan stage leaves no plan to apply"
    assert "never" not in world.log.read()


def test_a_hidden_run_step_keeps_its_output_out_of_the_comment_even_when_it_fails(tmp_path: Path) -> None:
    world = World(tmp_path)

    shown = world.run(
        stage(run_step("echo hidden-text", output="hide"), run_step("echo shown-text")), Project(dir="app")
    )
    failed = world.run(stage(run_step("echo hidden-$((40 + 2)); exit 1", output="hide")), Project(dir="app"))

    assert shown.ok
    assert shown.output == "shown-text\n"
    assert "hidden-text" in world.log.read(), "hidden from the comment, not from the job log"
    assert failed.status is ProjectStatus.FAILED
    assert failed.error is not None and "(its output is hidden from comments; see the job log)" in failed.error
    assert "hidden-42" not in failed.error + failed.output
    assert "hidden-42" in world.log.read()


def test_strip_refreshing_drops_terraforms_refresh_lines_from_a_run_steps_output(tmp_path: Path) -> None:
    world = World(tmp_path)
    project = Project(dir="app")
    world.plan_and_apply(project)
    plan_by_hand = run_step("terraform plan -input=false -no-color -out=\"$PLANFILE\"", output="strip_refreshing")

    result = world.run(stage(INIT, plan_by_hand), project)

    assert result.ok, result.error
    assert "terraform_data.service: Refreshing state..." in world.log.read()
    assert "Refreshing state" not in result.output
    assert "Saved the plan to" not in result.output
    assert result.output.startswith("No changes. Your infrastructure matches the configuration.")
    assert result.summary is not None and not result.summary.has_changes, "a plan made by a run step is summarised"


def test_cancelling_during_a_run_step_stops_it_and_the_stage(tmp_path: Path) -> None:
    world = World(tmp_path)
    cancel = CancelToken()
    world.log.subscribe(lambda line: cancel.cancel() if line == "waiting-for-something" else None)

    result = world.run(
        stage(run_step("echo waiting-for-something; sleep 60"), run_step("echo never")),
        Project(dir="app"),
        cancel=cancel,
    )

    assert result.status is ProjectStatus.FAILED
    assert result.error == "run step `echo waiting-for-something; sleep 60` was cancelled"
    assert result.output == "waiting-for-something\n"
    assert result.duration_seconds < 30
    assert "never" not in world.log.read()


# --- env and multienv ----------------------------------------------------------------------------


def test_env_steps_set_variables_for_later_run_steps_and_terraform(tmp_path: Path) -> None:
    world = World(tmp_path)
    steps = stage(
        Step(name=StepName.ENV, env_name="TF_VAR_environment", env_value="staging"),
        Step(name=StepName.ENV, env_name="GREETING", command="echo \"  hello from $WORKSPACE  \""),
        INIT,
        PLAN,
        run_step("echo \"[$GREETING] [$TF_VAR_environment]\""),
    )

    result = world.run(steps, Project(dir="app"))

    assert result.ok, result.error
    assert 'name     = "staging-app"' in result.output, "TF_VAR_ set by an env step reaches terraform"
    assert result.output.endswith("[hello from default] [staging]\n"), "a command's output is trimmed"
    log = world.log.read()
    assert "atlas: env step set GREETING" in log
    assert "hello from default  " not in log, "an env command's output is not echoed"


def test_a_failing_env_command_fails_the_stage(tmp_path: Path) -> None:
    world = World(tmp_path)

    result = world.run(
        stage(Step(name=StepName.ENV, env_name="TOKEN", command="echo no vault; exit 2"), run_step("echo never")),
        Project(dir="app"),
    )

    assert result.status is ProjectStatus.FAILED
    assert result.error == "env step TOKEN: `echo no vault; exit 2` failed (exit code 2)"
    assert result.output == "no vault\n"


def test_multienv_sets_every_printed_variable_and_names_them_without_values(tmp_path: Path) -> None:
    world = World(tmp_path)
    printer = "printf 'TF_VAR_environment=qa,LIST=\"a,b\"\\nTHIRD=%s\\n' \"$(echo eulav | rev)\""
    steps = stage(
        Step(name=StepName.MULTIENV, command=printer),
        Step(name=StepName.MULTIENV, command="echo QUIET=1", output="hide"),
        INIT,
        PLAN,
        run_step('echo "$LIST|$THIRD|$QUIET"'),
    )

    result = world.run(steps, Project(dir="app"))

    assert result.ok, result.error
    assert result.output.startswith("multienv set: TF_VAR_environment, LIST, THIRD\n\n")
    assert "QUIET" not in result.output.split("\n\n")[0]
    assert 'name     = "qa-app"' in result.output
    assert result.output.endswith("a,b|value|1\n")
    assert "value" not in world.log.read().split("$ terraform init")[0], "values are not logged"


def test_multienv_output_that_is_not_name_value_pairs_fails_without_quoting_it(tmp_path: Path) -> None:
    world = World(tmp_path)

    result = world.run(stage(Step(name=StepName.MULTIENV, command="echo A=1,just-a-token")), Project(dir="app"))

    assert result.status is ProjectStatus.FAILED
    assert result.error == (
        "multienv step `echo A=1,just-a-token` printed an invalid variable definition: item 2 is not NAME=value"
    )
    assert "just-a-token" not in result.output


# --- terraform's own steps -----------------------------------------------------------------------


def test_init_and_plan_take_extra_args_and_the_comments_flags(tmp_path: Path) -> None:
    world = World(tmp_path)
    project = Project(dir="app")
    other_state = world.state / "elsewhere" / "app.tfstate"
    steps = stage(
        Step(name=StepName.INIT, extra_args=(f"-backend-config=path={other_state}",)),
        Step(name=StepName.PLAN, extra_args=("-var", "environment=from-step")),
    )

    result = world.run(steps, project, extra_args=["-parallelism=3"])
    applied = world.run(stage(Step(name=StepName.APPLY)), project, command=CommandName.APPLY)

    assert result.ok, result.error
    assert 'name     = "from-step-app"' in result.output
    log = world.log.read()
    assert f"$ terraform init -input=false -no-color -upgrade=false -backend-config=path={other_state}\n" in log
    planfile = world.planfile(project).absolute()
    out = re.escape(f"{planfile.parent}/.{planfile.stem}.") + r"[^/ ]+\.stage/" + re.escape(planfile.name)
    expected = rf"\$ terraform plan -input=false -no-color -out={out} -var environment=from-step -parallelism=3\n"
    assert re.search(expected, log)
    assert applied.ok, applied.error
    assert other_state.is_file(), "init's extra args configured the backend"
    assert not (world.state / "multi-project" / "app.tfstate").exists()


def test_plan_adds_the_workspaces_tfvars_file_when_there_is_one(tmp_path: Path) -> None:
    world = World(tmp_path)
    (world.repo / "app" / "env").mkdir()
    (world.repo / "app" / "env" / "staging.tfvars").write_text('environment = "from-tfvars"\n')

    staging = world.run(stage(INIT, PLAN), Project(dir="app", workspace="staging"))
    production = world.run(stage(INIT, PLAN), Project(dir="app", workspace="production"))

    assert staging.ok, staging.error
    assert 'name     = "from-tfvars-app"' in staging.output
    assert "-var-file=env/staging.tfvars" in world.log.read()
    assert production.ok, production.error
    assert 'name     = "production-app"' in production.output
    assert "env/production.tfvars" not in world.log.read()


def test_show_writes_the_plan_as_json_to_showfile_for_later_steps(tmp_path: Path) -> None:
    world = World(tmp_path)
    project = Project(dir="app")
    steps = stage(INIT, PLAN, Step(name=StepName.SHOW), run_step('grep -c terraform_data.service "$SHOWFILE"'))

    result = world.run(steps, project)

    assert result.ok, result.error
    showfile = StageFiles(world.planfile(project).absolute()).showfile
    document = json.loads(showfile.read_text())
    assert [change["address"] for change in document["resource_changes"]] == ["terraform_data.service"]
    assert result.output.endswith("\n\n1\n"), "show itself prints nothing into the comment"
    assert '"resource_changes"' not in world.log.read()


def test_a_custom_apply_stage_applies_the_saved_plan_between_its_own_steps(tmp_path: Path) -> None:
    world = World(tmp_path)
    project = Project(dir="app")
    assert world.run(stage(INIT, PLAN), project).ok
    steps = stage(run_step("echo before-apply"), Step(name=StepName.APPLY), run_step("echo after-apply"))

    result = world.run(steps, project, command=CommandName.APPLY)

    assert result.ok, result.error
    assert result.output.startswith("before-apply\n\nterraform_data.service: Creating...")
    assert "Apply complete! Resources: 1 added, 0 changed, 0 destroyed." in result.output
    assert result.output.endswith('service_name = "production-app"\n\nafter-apply\n')
    assert result.summary is not None and result.summary.add == 1
    assert (world.state / "multi-project" / "app.tfstate").is_file()


def test_apply_refuses_target_flags_and_a_missing_plan(tmp_path: Path) -> None:
    world = World(tmp_path)
    project = Project(dir="app")
    missing = world.run(stage(run_step("echo never"), Step(name=StepName.APPLY)), project, command=CommandName.APPLY)
    assert world.run(stage(INIT, PLAN), project).ok

    targeted = world.run(
        stage(Step(name=StepName.APPLY)), project, command=CommandName.APPLY, extra_args=["-target=x.y"]
    )

    assert missing.error == "no saved plan for app: run plan again before applying"
    assert "never" not in world.log.read()
    assert targeted.status is ProjectStatus.FAILED
    assert targeted.error is not None and targeted.error.startswith("apply cannot take -target")


def test_import_adopts_an_existing_object_into_the_state(tmp_path: Path) -> None:
    world = World(tmp_path)
    project = Project(dir="app")
    (world.repo / "app" / "adopted.tf").write_text('resource "terraform_data" "adopted" {}\n')
    steps = stage(INIT, Step(name=StepName.IMPORT))

    imported = world.run(
        steps, project, command=IMPORT_COMMAND, positional=["terraform_data.adopted", "existing-id"]
    )
    missing = world.run(steps, project, command=IMPORT_COMMAND, positional=["terraform_data.nowhere", "x"])

    assert imported.ok, imported.error
    assert "Import successful!" in imported.output
    assert "$ terraform import -input=false -no-color terraform_data.adopted existing-id" in world.log.read()
    state = json.loads((world.state / "multi-project" / "app.tfstate").read_text())
    assert [(r["name"], r["instances"][0]["attributes"]["id"]) for r in state["resources"]] == [
        ("adopted", "existing-id")
    ]
    assert missing.status is ProjectStatus.FAILED
    assert missing.error is not None
    assert missing.error.startswith(
        'terraform import failed (exit code 1):\n\nError: resource address "terraform_data.nowhere" does not exist'
    )


def test_state_rm_forgets_a_resource_so_the_next_plan_creates_it_again(tmp_path: Path) -> None:
    world = World(tmp_path)
    project = Project(dir="app")
    world.plan_and_apply(project)
    assert world.run(stage(INIT, PLAN), project).ok

    removed = world.run(
        stage(INIT, Step(name=StepName.STATE_RM)), project, command=IMPORT_COMMAND,
        positional=["terraform_data.service"],
    )  # fmt: skip
    replanned = world.run(stage(INIT, PLAN), project)

    assert removed.ok, removed.error
    assert removed.output == "Removed terraform_data.service\nSuccessfully removed 1 resource instance(s).\n"
    assert "$ terraform state rm -no-color terraform_data.service" in world.log.read()
    assert replanned.summary is not None and replanned.summary.add == 1


def test_policy_check_fails_clearly_only_when_it_is_reached(tmp_path: Path) -> None:
    world = World(tmp_path)

    result = world.run(stage(run_step("echo before"), Step(name=StepName.POLICY_CHECK)), Project(dir="app"))

    assert result.status is ProjectStatus.FAILED
    assert result.error is not None
    assert result.error.startswith("policy_check steps are not supported by atlas")
    assert result.output == "before\n"


def test_an_empty_stage_succeeds_and_shows_nothing(tmp_path: Path) -> None:
    world = World(tmp_path)

    result = world.run(stage(), Project(dir="app"))

    assert result.ok
    assert result.output == ""
    assert "$ " not in world.log.read()


# --- pure parts ----------------------------------------------------------------------------------


def test_comment_args_are_escaped_as_atlantis_escapes_them() -> None:
    assert escape_comment_args(["arg1", "arg2"]) == "\\a\\r\\g\\1,\\a\\r\\g\\2"
    assert escape_comment_args([]) == ""


@pytest.mark.parametrize(
    ("printed", "expected"),
    [
        ("", {}),
        ("KEY=value", {"KEY": "value"}),
        ("FOO=bar,QUUX=baz", {"FOO": "bar", "QUUX": "baz"}),
        ("FOO=bar\nQUUX=baz\n", {"FOO": "bar", "QUUX": "baz"}),
        ("KEY==", {"KEY": "="}),
        ('KEY="a,b",NEXT=1', {"KEY": "a,b", "NEXT": "1"}),
        ("KEY='it is'", {"KEY": "it is"}),
        ('KEY="say \\"hi\\""', {"KEY": 'say "hi"'}),
        ('JSON=\'{"a":[1,2]}\'', {"JSON": '{"a":[1,2]}'}),
        ('KEY=""', {"KEY": ""}),
    ],
)
def test_multienv_output_is_parsed_like_atlantis(printed: str, expected: dict[str, str]) -> None:
    assert parse_multienv(printed) == expected


@pytest.mark.parametrize(
    ("printed", "problem"),
    [
        ("BAD KEY=1", "item 1 is not NAME=value"),
        ("A=1,leftover", "item 2 is not NAME=value"),
        ('KEY="open', "the value of KEY has no closing quote"),
        ('KEY="a"b', "unexpected text after the quoted value of KEY"),
    ],
)
def test_multienv_output_errors_name_the_problem(printed: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_multienv(printed)


def test_strip_refreshing_keeps_what_follows_the_last_refresh_line() -> None:
    output = textwrap.dedent(
        """\
        Initializing the backend...
        a.b: Refreshing state... [id=1]
        a.c: Refreshing state... [id=2]

        No changes. Your infrastructure matches the configuration.
        """
    )

    assert strip_refreshing(output) == "No changes. Your infrastructure matches the configuration.\n"
    assert strip_refreshing("just output\n") == "just output\n"


def test_a_fork_pull_requests_head_repository_is_named_by_its_clone_url(tmp_path: Path) -> None:
    fork = PULL.model_copy(update={"is_fork": True, "head_clone_url": "https://github.com/mallory/infra-fork.git"})
    context = StepContext.for_pull(fork, Project(dir="app"), user_name="bob", approved=True, mergeable=False)

    variables = run_step_environment(
        context, command="plan", project_dir=tmp_path, files=StageFiles(tmp_path / "p.tfplan"),
        terraform_version="1.11.0",
    )

    assert variables["COMMAND_NAME"] == variables["ATLAS_COMMAND_NAME"] == "plan"
    assert (variables["HEAD_REPO_OWNER"], variables["HEAD_REPO_NAME"]) == ("mallory", "infra-fork")
    assert (variables["BASE_REPO_OWNER"], variables["BASE_REPO_NAME"]) == ("acme", "infra")
    assert variables["ATLANTIS_PR_APPROVED"] == variables["ATLAS_PR_APPROVED"] == "true"
    assert variables["ATLANTIS_PR_MERGEABLE"] == variables["ATLAS_PR_MERGEABLE"] == "false"
    assert variables["ATLAS_TERRAFORM_VERSION"] == "1.11.0"
    assert variables["PROJECT_NAME"] == ""
    assert all(name.startswith("ATLAS_") or f"ATLAS_{name.removeprefix('ATLANTIS_')}" in variables
               for name in variables)  # fmt: skip


# --- files a comment may name ---------------------------------------------------------------------


@pytest.mark.parametrize("arguments", [
    ("-var-file=/etc/passwd",),
    ("-var-file", "/etc/passwd"),
    ("--var-file=../../outside.tfvars",),
    ("-var-file=linked.tfvars",),
    ("-backend-config=/etc/passwd",),
])
def test_a_comment_var_file_outside_the_repository_is_refused_before_terraform_runs(
    tmp_path: Path, arguments: tuple[str, ...]
) -> None:
    world = World(tmp_path)
    (world.repo / "app" / "linked.tfvars").symlink_to("/etc/passwd")
    (tmp_path / "outside.tfvars").write_text('environment = "outside"\n')

    result = world.run(stage(INIT, PLAN), Project(dir="app"), extra_args=arguments)

    assert result.status is ProjectStatus.FAILED
    assert result.error is not None and "names a file outside the repository" in result.error
    assert "--var-file-allowlist" in result.error
    assert "root:" not in result.output + result.error, "nothing of the file reaches the comment"
    assert "$ terraform" not in world.log.read(), "terraform never ran"


def test_a_comment_var_file_in_the_repository_or_the_allowlist_is_used(tmp_path: Path) -> None:
    world = World(tmp_path)
    (world.repo / "shared.tfvars").write_text('environment = "from-the-repository"\n')
    allowed = tmp_path / "tfvars"
    allowed.mkdir()
    (allowed / "prod.tfvars").write_text('environment = "from-the-allowlist"\n')
    # The operator lets the sandbox read the allowlisted directory too (settings.host_paths() does).
    world.runner.sandbox = require_sandbox(world.state, allowed)

    inside = world.run(stage(INIT, PLAN), Project(dir="app"), extra_args=["-var-file=../shared.tfvars"])
    listed = world.run(stage(INIT, PLAN), Project(dir="app"), extra_args=[f"-var-file={allowed}/prod.tfvars"],
                       var_file_allowlist=[allowed])

    assert inside.ok, inside.error
    assert 'name     = "from-the-repository-app"' in inside.output
    assert listed.ok, listed.error
    assert 'name     = "from-the-allowlist-app"' in listed.output


def test_the_workspaces_tfvars_file_may_not_link_out_of_the_repository(tmp_path: Path) -> None:
    world = World(tmp_path)
    (world.repo / "app" / "env").mkdir()
    (world.repo / "app" / "env" / "default.tfvars").symlink_to("/etc/passwd")

    result = world.run(stage(INIT, PLAN), Project(dir="app"))

    assert result.status is ProjectStatus.FAILED
    assert result.error is not None and "`-var-file=env/default.tfvars` names a file outside" in result.error


def test_init_downloads_a_module_over_git_inside_the_sandbox(
    tmp_path: Path, github_emulator: GitHubEmulator
) -> None:
    modules = github_emulator.create_repo("acme/modules", files={
        "label/main.tf": 'variable "name" {}\noutput "id" { value = "downloaded-${var.name}" }\n'}, private=False)
    world = World(tmp_path)
    (world.repo / "app" / "main.tf").write_text(
        f'module "label" {{\n  source = "git::{modules.clone_url}//label"\n  name = "app"\n}}\n'
        'output "service_name" { value = module.label.id }\n')

    result = world.run(stage(INIT, PLAN), Project(dir="app"))

    assert result.ok, result.error
    assert 'service_name = "downloaded-app"' in result.output
    assert (world.repo / "app" / ".terraform" / "modules" / "label" / "label" / "main.tf").is_file()
