"""Pull-request comments → atlas commands: what parses, and what a commenter reads when it does not."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import pytest

from atlas.intake.comment_parser import (
    COMMANDS,
    CommentCommand,
    CommentError,
    NotForAtlas,
    parse_comment,
    refused_terraform_flag,
    resolve_dir,
)
from atlas.models import CommandName
from atlas.render.comments import render_usage
from atlas.vocabulary import ALWAYS_ALLOWED, spelling

PLAN = CommandName.PLAN
PREFIXES = ("atlas", "atlantis")


def refusal(body: str, *, allowed_commands: Sequence[str] | None = None) -> CommentError:
    """The CommentError a comment gets; fails the test if the comment parses."""
    with pytest.raises(CommentError) as caught:
        parse_comment(body, prefixes=PREFIXES, allowed_commands=allowed_commands)
    return caught.value


# Comments that parse.


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("atlas plan", CommentCommand(PLAN)),
        ("atlas apply", CommentCommand(CommandName.APPLY)),
        ("atlas unlock", CommentCommand(CommandName.UNLOCK)),
        ("atlas cancel", CommentCommand(CommandName.CANCEL)),
        ("atlas help", CommentCommand(CommandName.HELP)),
        ("atlas version", CommentCommand(CommandName.VERSION)),
        ("atlas -h", CommentCommand(CommandName.HELP)),
        ("atlas --help", CommentCommand(CommandName.HELP)),
        ("atlas plan --help", CommentCommand(CommandName.HELP)),
        ("atlas plan -d app", CommentCommand(PLAN, dir="app")),
        ("atlas plan --dir app", CommentCommand(PLAN, dir="app")),
        ("atlas plan -d=app", CommentCommand(PLAN, dir="app")),
        ("atlas plan --dir=app", CommentCommand(PLAN, dir="app")),
        ("atlas plan -d ./app/", CommentCommand(PLAN, dir="app")),
        ("atlas plan -d app//envs/./prod", CommentCommand(PLAN, dir="app/envs/prod")),
        ("atlas plan -d app/../lib", CommentCommand(PLAN, dir="lib")),
        ("atlas plan -d .", CommentCommand(PLAN, dir=".")),
        ("atlas plan -d ./", CommentCommand(PLAN, dir=".")),
        ("atlas plan -d 'my app'", CommentCommand(PLAN, dir="my app")),
        ('atlas plan -d "my app"', CommentCommand(PLAN, dir="my app")),
        ("atlas plan -w staging", CommentCommand(PLAN, workspace="staging")),
        ("atlas plan --workspace=staging", CommentCommand(PLAN, workspace="staging")),
        ("atlas plan -w eu-west-1_a.b~c@d", CommentCommand(PLAN, workspace="eu-west-1_a.b~c@d")),
        ("atlas plan -d app -w staging", CommentCommand(PLAN, dir="app", workspace="staging")),
        ("atlas plan -w staging -d app", CommentCommand(PLAN, dir="app", workspace="staging")),
        ("atlas plan -p prod", CommentCommand(PLAN, project="prod")),
        ("atlas plan --project prod", CommentCommand(PLAN, project="prod")),
        ("atlas apply -p prod --verbose", CommentCommand(CommandName.APPLY, project="prod", verbose=True)),
        ("atlas plan --verbose", CommentCommand(PLAN, verbose=True)),
        ("atlas plan -- -var-file=prod.tfvars", CommentCommand(PLAN, extra_args=("-var-file=prod.tfvars",))),
        ("atlas plan -- -var 'tags={a = \"b c\"}'", CommentCommand(PLAN, extra_args=("-var", 'tags={a = "b c"}'))),
        ("atlas plan -- -target=module.x -refresh=false",
         CommentCommand(PLAN, extra_args=("-target=module.x", "-refresh=false"))),
        ("atlas plan -- -var 'x=#1'", CommentCommand(PLAN, extra_args=("-var", "x=#1"))),
        ("atlas plan -- -lock=true -lock-timeout=60s",
         CommentCommand(PLAN, extra_args=("-lock=true", "-lock-timeout=60s"))),
        ("atlas plan --", CommentCommand(PLAN)),
        ("atlas plan -d app -- -d not-ours", CommentCommand(PLAN, dir="app", extra_args=("-d", "not-ours"))),
        ("atlas apply -d app -- -parallelism=2",
         CommentCommand(CommandName.APPLY, dir="app", extra_args=("-parallelism=2",))),
        ("atlas import aws_s3_bucket.logs my-bucket",
         CommentCommand(CommandName.IMPORT, positional=("aws_s3_bucket.logs", "my-bucket"))),
        ("atlas import -d app 'aws_instance.web[\"a\"]' i-123 -- -var x=1",
         CommentCommand(CommandName.IMPORT, dir="app", positional=('aws_instance.web["a"]', "i-123"),
                        extra_args=("-var", "x=1"))),
        ("atlas import aws_s3_bucket.logs -w prod my-bucket",
         CommentCommand(CommandName.IMPORT, workspace="prod", positional=("aws_s3_bucket.logs", "my-bucket"))),
        ("atlas state rm aws_s3_bucket.logs", CommentCommand(CommandName.STATE_RM, positional=("aws_s3_bucket.logs",))),
        ("atlas state rm -p prod a.b c.d 'module.m[0].e.f' --verbose",
         CommentCommand(CommandName.STATE_RM, project="prod", verbose=True,
                        positional=("a.b", "c.d", "module.m[0].e.f"))),
        ("atlantis plan -d app", CommentCommand(PLAN, dir="app", prefix="atlantis")),
        ("  \n\n atlas plan  \r\n  \n", CommentCommand(PLAN)),
        ("atlas plan\r\n", CommentCommand(PLAN)),
        ("atlas   plan\t-d  app", CommentCommand(PLAN, dir="app")),
        ("atlas\u00a0plan", CommentCommand(PLAN)),
    ],
)
def test_valid_comments_parse_to_their_command(body: str, expected: CommentCommand) -> None:
    assert parse_comment(body, prefixes=PREFIXES) == expected


@pytest.mark.parametrize(
    "body",
    [
        "atlas plan -d app -w staging --verbose -- -var 'x=a b'",
        "atlas import -p prod 'aws_instance.web[\"a\"]' i-123",
        "atlantis state rm a.b 'c d'",
        "atlas plan -d 'my app'",
    ],
)
def test_command_line_is_a_comment_that_parses_back_to_the_same_command(body: str) -> None:
    command = parse_comment(body, prefixes=PREFIXES)
    assert isinstance(command, CommentCommand)

    assert parse_comment(command.command_line, prefixes=PREFIXES) == command


def test_command_line_shows_the_command_as_typed() -> None:
    command = parse_comment("atlas plan --verbose -w staging --dir ./app/ -- -var 'x=a b'")

    assert isinstance(command, CommentCommand)
    assert command.command_line == "atlas plan -d app -w staging --verbose -- -var 'x=a b'"


def test_every_command_in_the_table_parses_by_its_words() -> None:
    for kind, spec in COMMANDS.items():
        arguments = " ".join(f"arg{number}" for number in range(len(spec.positional)))
        command = parse_comment(f"atlas {spec.spelling} {arguments}")

        assert isinstance(command, CommentCommand)
        assert command.kind is kind


def test_comment_commands_are_spelt_as_allow_commands_names_them() -> None:
    assert [spec.spelling for spec in COMMANDS.values()] == [
        "plan", "apply", "unlock", "cancel", "import", "state rm", "approve_policies", "help", "version"
    ]
    assert spelling(CommandName.STATE_RM) == "state rm"


# Comments that are not for atlas.


@pytest.mark.parametrize(
    "body",
    [
        "",
        "   \n\n ",
        "LGTM",
        "Looks good, run atlas plan when ready",
        "Atlas plan",  # prefixes are case-sensitive, as in Atlantis
        "`atlas plan`",
        "> atlas plan",
        "atlas: plan please",
        "atlantis plan",  # not a configured prefix here
        "terraform plan looks fine to me\n\nbut check the tags",  # discussion, not a mistyped command
    ],
)
def test_comments_that_do_not_start_with_a_prefix_are_not_for_atlas(body: str) -> None:
    assert isinstance(parse_comment(body), NotForAtlas)


def test_not_for_atlas_says_why() -> None:
    assert parse_comment("LGTM", prefixes=PREFIXES) == NotForAtlas(
        "the comment does not start with 'atlas' or 'atlantis'"
    )


def test_a_custom_prefix_addresses_atlas() -> None:
    assert parse_comment("infra plan", prefixes=["infra"]) == CommentCommand(PLAN, prefix="infra")
    assert isinstance(parse_comment("atlas plan", prefixes=["infra"]), NotForAtlas)


# Refusals: every one says what was wrong and how to fix it.


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("atlas", "`atlas` needs a command, as in `atlas plan`."),
        ("atlantis", "`atlantis` needs a command, as in `atlantis plan`."),
        ("atlas destroy", "`atlas destroy` is not a command."),
        ("atlas plna", "`atlas plna` is not a command. Did you mean `atlas plan`?"),
        ("atlas Apply", "`atlas Apply` is not a command. Did you mean `atlas apply`?"),
        ("atlas state", "`atlas state` is not a command; did you mean `atlas state rm`?"),
        ("atlas state mv a b", "`atlas state mv` is not a command; did you mean `atlas state rm`?"),
        ("atlas --verbose plan",
         "The command comes before its flags, as in `atlas plan -d app`; `--verbose` is not a command."),
        ("atlas plan -x",
         "`-x` is not a flag of `atlas plan`. Its flags are -d DIR, -w WORKSPACE, -p PROJECT, --verbose. "
         "To pass a flag to terraform, put it after `--`, as in `atlas plan -- -x`."),
        ("atlas plan -target module.db -d app",
         "`-target` is not a flag of `atlas plan`. Its flags are -d DIR, -w WORKSPACE, -p PROJECT, --verbose. "
         "To pass a flag to terraform, put it after `--`, as in `atlas plan -- -target module.db`."),
        ("atlas plan -dir app", "`-dir` is not a flag of `atlas plan`. Did you mean `--dir`?"),
        ("atlas plan --d app", "`--d` is not a flag of `atlas plan`. Did you mean `-d`?"),
        ("atlas apply -verbose", "`-verbose` is not a flag of `atlas apply`. Did you mean `--verbose`?"),
        ("atlas plan --workspce x", "`--workspce` is not a flag of `atlas plan`. Did you mean `--workspace`?"),
        ("atlas import a b -x",
         "`-x` is not a flag of `atlas import`. Its flags are -d DIR, -w WORKSPACE, -p PROJECT, --verbose. "
         "To pass a flag to terraform, put it after `--`, as in `atlas import -- -x`."),
        ("atlas import a",
         "`atlas import` takes ADDRESS ID, as in `atlas import -d app aws_s3_bucket.logs my-logs-bucket`, "
         "but was given `a`."),
        ("atlas import a b c",
         "`atlas import` takes ADDRESS ID, as in `atlas import -d app aws_s3_bucket.logs my-logs-bucket`, "
         "but was given `a b c`."),
        ("atlas import -- a b",
         "`atlas import` takes ADDRESS ID, as in `atlas import -d app aws_s3_bucket.logs my-logs-bucket`, "
         "but was given nothing."),
        ("atlas state rm -d app",
         "`atlas state rm` takes ADDRESS..., as in `atlas state rm -d app aws_s3_bucket.logs`, "
         "but was given nothing."),
    ],
)
def test_what_atlas_cannot_read_is_answered_with_the_usage(body: str, message: str) -> None:
    error = refusal(body)

    assert error.message == message
    assert error.usage is True
    assert error.prefix == body.split()[0]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        # Flags and their values.
        ("atlas plan -d", "`-d` needs a value: write `-d DIR`."),
        ("atlas plan -w", "`-w` needs a value: write `-w WORKSPACE`."),
        ("atlas plan --project", "`--project` needs a value: write `--project PROJECT`."),
        ("atlas plan -d -w staging", "`-d` needs a value, but is followed by `-w`: write `-d DIR`."),
        ("atlas plan -d -- -var x=1", "`-d` needs a value: write `-d DIR`."),
        ("atlas plan -d ''", "`-d` was given an empty value: write `-d DIR`."),
        ("atlas plan -w=", "`-w` was given an empty value: write `-w WORKSPACE`."),
        ("atlas plan -d a --dir b", "`--dir` is given twice; give it once."),
        ("atlas plan --verbose --verbose", "`--verbose` is given twice; give it once."),
        ("atlas plan --verbose=true", "`--verbose` takes no value; write just `--verbose`."),
        ("atlas plan app",
         "`atlas plan` takes no arguments before `--`, but was given `app`. To choose a directory, write "
         "`atlas plan -d app`; to pass arguments to terraform, put them after `--`."),
        ("atlas apply -p prod -d app",
         "Use either `-p PROJECT` or `-d DIR [-w WORKSPACE]`, not both: a project's name already selects its "
         "directory and workspace."),
        ("atlas plan -w staging --project prod",
         "Use either `-p PROJECT` or `-d DIR [-w WORKSPACE]`, not both: a project's name already selects its "
         "directory and workspace."),
        # Directories that leave the repository.
        ("atlas plan -d ../other",
         "`-d ../other` leads outside the repository. Give a directory relative to the repository root, "
         "such as `-d app`."),
        ("atlas plan -d app/../..",
         "`-d app/../..` leads outside the repository. Give a directory relative to the repository root, "
         "such as `-d app`."),
        ("atlas plan -d ..",
         "`-d ..` leads outside the repository. Give a directory relative to the repository root, "
         "such as `-d app`."),
        ("atlas plan -d /etc",
         "`-d /etc` is an absolute path; atlas only runs inside the repository. Give a directory relative to "
         "the repository root, such as `-d app`."),
        ("atlas plan -d ~/secrets",
         "`-d ~/secrets` names a home directory, outside the repository. Give a directory relative to the "
         "repository root, such as `-d app`."),
        ("atlas plan -d ~root",
         "`-d ~root` names a home directory, outside the repository. Give a directory relative to the "
         "repository root, such as `-d app`."),
        ("atlas plan -d 'app\\..\\..'",
         "`-d app\\..\\..` contains a backslash; separate directories with `/`. Give a directory relative to "
         "the repository root, such as `-d app`."),
        # Workspaces terraform would refuse.
        ("atlas plan -w 'blue green'",
         "`blue green` is not a valid workspace name: Terraform workspace names use letters, digits and "
         "`- _ . ~ $ & + : = @`, without `/`, spaces or `..`."),
        ("atlas plan -w team/prod",
         "`team/prod` is not a valid workspace name: Terraform workspace names use letters, digits and "
         "`- _ . ~ $ & + : = @`, without `/`, spaces or `..`."),
        ("atlas plan -w ..",
         "`..` is not a valid workspace name: Terraform workspace names use letters, digits and "
         "`- _ . ~ $ & + : = @`, without `/`, spaces or `..`."),
        ("atlas plan -w prod..1",
         "`prod..1` is not a valid workspace name: Terraform workspace names use letters, digits and "
         "`- _ . ~ $ & + : = @`, without `/`, spaces or `..`."),
        # Commands that take nothing.
        ("atlas help plan",
         "`atlas help` takes no flags or arguments, but was given `plan`. Comment just `atlas help`."),
        ("atlas version -d app",
         "`atlas version` takes no flags or arguments, but was given `-d app`. Comment just `atlas version`."),
        ("atlas unlock -d app",
         "`atlas unlock` takes no flags or arguments, but was given `-d app`. Comment just `atlas unlock`."),
        ("atlas cancel --verbose",
         "`atlas cancel` takes no flags or arguments, but was given `--verbose`. Comment just `atlas cancel`."),
        ("atlas unlock -- -force",
         "`atlas unlock` takes no flags or arguments, but was given `-- -force`. Comment just `atlas unlock`."),
        # Splitting.
        ("atlas plan -- -var 'x=1",
         "The command has a quote that is never closed. Close it, or put a backslash before a quote meant "
         "literally."),
        ('atlas plan -d "app',
         "The command has a quote that is never closed. Close it, or put a backslash before a quote meant "
         "literally."),
        ("atlas plan \\",
         "The command ends with a backslash that escapes nothing. Remove it, or put another backslash before it."),
        # Several lines.
        ("atlas plan -d app\nthanks!",
         "A command for `atlas` must be the whole comment, on one line; this one continues after "
         "`atlas plan -d app`. Post the command as a comment of its own."),
        ("atlas apply\r\n\r\natlas plan",
         "A command for `atlas` must be the whole comment, on one line; this one continues after "
         "`atlas apply`. Post the command as a comment of its own."),
    ],
)
def test_refusals_say_what_was_wrong_and_how_to_fix_it(body: str, message: str) -> None:
    error = refusal(body)

    assert error.message == message
    assert error.usage is False


def test_a_terraform_command_is_answered_with_the_atlas_command_it_meant() -> None:
    error = refusal("terraform plan -d app")

    assert error.message == (
        "Did you mean `atlas plan -d app`? atlas runs terraform for you: start the comment with `atlas`, "
        "not `terraform`."
    )
    assert error.usage is True


def test_any_terraform_comment_suggests_a_plan_with_the_first_prefix() -> None:
    error = refusal("terraform init -upgrade")

    assert error.message == (
        "Did you mean `atlas plan`? atlas runs terraform for you: start the comment with `atlas`, not `terraform`."
    )
    with pytest.raises(CommentError, match=r"Did you mean `infra apply`\?"):
        parse_comment("terraform apply", prefixes=["infra", "atlas"])


def test_what_the_user_wrote_cannot_break_out_of_the_code_span() -> None:
    error = refusal("atlas plan -d '/a`b **bold** @someone'")

    assert error.message.startswith("``-d /a`b **bold** @someone`` is an absolute path")


def test_very_long_input_is_cut_in_messages() -> None:
    error = refusal("atlas " + "x" * 500)

    assert error.message == "`atlas " + "x" * 73 + "…` is not a command."


# Terraform arguments after `--`.


@pytest.mark.parametrize(
    ("argument", "reason"),
    [
        ("-chdir=..", "atlas runs terraform in the project's directory; choose another project with `-d DIR`."),
        ("--chdir", "atlas runs terraform in the project's directory; choose another project with `-d DIR`."),
        ("-state=/tmp/s", "atlas does not let a comment choose where Terraform state is read or written."),
        ("-state", "atlas does not let a comment choose where Terraform state is read or written."),
        ("--state-out=x", "atlas does not let a comment choose where Terraform state is read or written."),
        ("-state-out", "atlas does not let a comment choose where Terraform state is read or written."),
        ("-backup=x", "atlas does not let a comment choose where Terraform state is read or written."),
        ("--backup", "atlas does not let a comment choose where Terraform state is read or written."),
        ("-out=plan.tfplan", "atlas saves the plan file itself, so that apply runs exactly what was planned."),
        ("--out", "atlas saves the plan file itself, so that apply runs exactly what was planned."),
        ("-lock=false", "state locking stays on for every run atlas starts."),
        ("--lock=0", "state locking stays on for every run atlas starts."),
        ("-lock=F", "state locking stays on for every run atlas starts."),
        ("-backend-config=key=other", "this server does not let comments change the Terraform backend "
         "(an administrator can allow it with --allow-backend-config-args)."),
        ("--backend-config", "this server does not let comments change the Terraform backend "
         "(an administrator can allow it with --allow-backend-config-args)."),
        ("-backend=false", "this server does not let comments change the Terraform backend "
         "(an administrator can allow it with --allow-backend-config-args)."),
        ("-migrate-state", "this server does not let comments change the Terraform backend "
         "(an administrator can allow it with --allow-backend-config-args)."),
        ("-generate-config-out=/tmp/generated.tf", "atlas does not let a comment write files. Generate the "
         "configuration locally (`terraform plan -generate-config-out=FILE`) and commit it."),
        ("--generate-config-out", "atlas does not let a comment write files. Generate the configuration locally "
         "(`terraform plan -generate-config-out=FILE`) and commit it."),
        ("-config=/etc", "atlas imports into the project's own configuration; choose the project with `-d DIR` "
         "or `-p NAME`."),
        ("-plugin-dir=/opt/providers", "atlas installs providers and modules itself, from the project's own "
         "configuration."),
        ("-from-module=/etc", "atlas installs providers and modules itself, from the project's own configuration."),
    ],
)
def test_terraform_flags_that_would_subvert_atlas_are_refused(argument: str, reason: str) -> None:
    error = refusal(f"atlas plan -- -var x=1 {argument} y")

    assert error.message == f"`{argument}` cannot be passed to terraform: {reason}"
    assert error.usage is False


@pytest.mark.parametrize("argument", ["-lock", "-lock=true", "-lock-timeout=5m", "-var=state=x", "state", "-refresh"])
def test_harmless_terraform_arguments_pass(argument: str) -> None:
    assert refused_terraform_flag(argument) is None


def test_backend_config_passes_when_the_server_allows_it() -> None:
    command = parse_comment("atlas plan -- -backend-config=key=pr.tfstate", allow_backend_config=True)

    assert command == CommentCommand(PLAN, extra_args=("-backend-config=key=pr.tfstate",))
    with pytest.raises(CommentError, match="-out"):
        parse_comment("atlas plan -- -backend-config=x -out=y", allow_backend_config=True)


def test_import_and_state_rm_arguments_after_the_separator_are_checked_too() -> None:
    assert refusal("atlas import a b -- -state=x").message.startswith("`-state=x` cannot be passed to terraform")
    assert refusal("atlas state rm a -- -backup=x").message.startswith("`-backup=x` cannot be passed to terraform")


# Commands the server allows.


def test_a_command_not_enabled_on_the_server_is_refused_with_the_allowed_list() -> None:
    error = refusal("atlas import a b", allowed_commands=["plan", "apply", "unlock"])

    assert error.message == (
        "`atlas import` is not enabled on this server. Allowed commands: plan, apply, unlock, help, version."
    )


def test_allowed_commands_accept_command_spellings() -> None:
    allowed = ["plan", "state rm"]

    assert parse_comment("atlas state rm a", allowed_commands=allowed) == CommentCommand(
        CommandName.STATE_RM, positional=("a",)
    )
    error = refusal("atlantis apply", allowed_commands=allowed)
    assert error.message == (
        "`atlantis apply` is not enabled on this server. Allowed commands: plan, state rm, help, version."
    )


def test_help_and_version_are_always_allowed() -> None:
    for body in ("atlas help", "atlas version", "atlas -h"):
        assert isinstance(parse_comment(body, allowed_commands=[]), CommentCommand)
    for kind in ALWAYS_ALLOWED:
        assert parse_comment(f"atlas {spelling(kind)}", allowed_commands=["plan"]) == CommentCommand(kind)


def test_a_disabled_command_is_refused_before_its_flags_are_read() -> None:
    error = refusal("atlas apply -x", allowed_commands=["plan"])

    assert error.message.startswith("`atlas apply` is not enabled on this server.")


def test_suggestions_only_name_allowed_commands() -> None:
    assert refusal("atlas aply", allowed_commands=["plan"]).message == "`atlas aply` is not a command."
    assert refusal("atlas aply").message == "`atlas aply` is not a command. Did you mean `atlas apply`?"


# Directories in a checkout.


def test_resolve_dir_finds_a_directory_inside_the_checkout(tmp_path: Path) -> None:
    (tmp_path / "app" / "prod").mkdir(parents=True)
    (tmp_path / "envs").symlink_to("app", target_is_directory=True)

    assert resolve_dir(tmp_path, "app/prod") == (tmp_path / "app" / "prod").resolve()
    assert resolve_dir(tmp_path, ".") == tmp_path.resolve()
    assert resolve_dir(tmp_path, "envs/prod") == (tmp_path / "app" / "prod").resolve()


def test_resolve_dir_refuses_a_symbolic_link_that_leads_out(tmp_path: Path) -> None:
    repo, outside = tmp_path / "repo", tmp_path / "outside"
    repo.mkdir()
    outside.mkdir()
    (repo / "app").symlink_to(outside, target_is_directory=True)
    (repo / "etc").symlink_to("/etc", target_is_directory=True)

    for name in ("app", "etc"):
        with pytest.raises(CommentError) as caught:
            resolve_dir(repo, name)
        assert caught.value.message == (
            f"`-d {name}` leads outside the repository through a symbolic link; atlas only runs in directories "
            "inside the repository."
        )
        assert str(outside) not in caught.value.message


def test_resolve_dir_refuses_a_directory_the_checkout_lacks(tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text("")

    with pytest.raises(CommentError) as missing:
        resolve_dir(tmp_path, "./infra/")
    with pytest.raises(CommentError) as file:
        resolve_dir(tmp_path, "main.tf")

    assert missing.value.message == (
        "`infra` does not exist in this pull request's head commit. Give `-d` a directory relative to the "
        "repository root, such as `-d app`."
    )
    assert file.value.message.startswith("`main.tf` is not a directory in this pull request's head commit.")


def test_resolve_dir_checks_the_text_too(tmp_path: Path) -> None:
    with pytest.raises(CommentError, match="leads outside the repository"):
        resolve_dir(tmp_path / "repo", "../repo-sibling")


# The usage comment.


def test_usage_lists_every_command_with_its_flags() -> None:
    body = render_usage("atlas")

    assert body.startswith("```\nUsage: atlas <command> [flags]\n\nCommands:\n  plan ")
    for spec in COMMANDS.values():
        assert re.search(rf"^  {spec.spelling}\b.*  {re.escape(spec.summary)}$", body, re.MULTILINE)
    assert "  import ADDRESS ID  " in body
    assert "  state rm ADDRESS...  " in body
    assert "Flags of plan, apply, import, state rm, approve_policies:\n" in body
    for synopsis in ("-d, --dir DIR", "-w, --workspace WORKSPACE", "-p, --project PROJECT", "--verbose", "-- ARGS..."):
        assert re.search(rf"^  {re.escape(synopsis)}  ", body, re.MULTILINE)
    assert "\n  atlas plan -d app -w staging\n" in body
    assert body.endswith("```\n")


def test_usage_puts_the_problem_first() -> None:
    body = render_usage("atlantis", problem="`atlantis destroy` is not a command.")

    assert body.startswith("**`atlantis destroy` is not a command.**\n\n```\nUsage: atlantis <command> [flags]\n")
    assert "\n  atlantis apply -p prod\n" in body


def test_usage_lists_only_the_allowed_commands_and_their_flags() -> None:
    body = render_usage("atlas", allowed=["plan", "unlock"])

    commands = re.findall(r"^  (\w+(?: rm)?) ", body.split("Flags")[0], re.MULTILINE)
    assert commands == ["plan", "unlock", "help", "version"]
    assert "Flags of plan:\n" in body
    assert "import" not in body and "apply" not in body


def test_usage_without_commands_that_take_flags_has_no_flags_section() -> None:
    body = render_usage("atlas", allowed=["unlock", "cancel"])

    assert body == (
        "```\n"
        "Usage: atlas <command> [flags]\n"
        "\n"
        "Commands:\n"
        "  unlock   Delete this pull request's plans and release its locks.\n"
        "  cancel   Stop this pull request's queued and running commands.\n"
        "  help     Show this help.\n"
        "  version  Show the versions of atlas and Terraform.\n"
        "```\n"
    )


def test_usage_with_a_parse_error_reads_as_one_reply() -> None:
    error = refusal("atlas plna")
    body = render_usage(error.prefix, problem=error.message)

    assert body.startswith("**`atlas plna` is not a command. Did you mean `atlas plan`?**\n\n```\n")
