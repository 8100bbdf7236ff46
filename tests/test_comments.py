"""The comments atlas posts: what a reviewer reads on the pull request, and how long ones split."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from atlas.models import CommandName, PlanSummary, Project, ProjectResult, ProjectStatus
from atlas.render.comments import (
    COMMENT_LIMIT,
    format_diff,
    render_apply_comment,
    render_error_comment,
    render_plan_comment,
    render_usage,
    split_comment,
)
from tests.conftest import require_binary

FIXTURES = Path(__file__).resolve().parent.parent / "terraform-fixtures"

# Captured from `terraform plan -no-color` (1.11) on terraform-fixtures/multi-project/app after an
# apply and an edit, so it has every kind of change: update, destroy, replace, nested values.
MIXED_PLAN = """\
terraform_data.gone: Refreshing state... [id=8f4da491-644f-b0e2-af5a-1cbe7939f49b]
terraform_data.replaced: Refreshing state... [id=415911a2-bf99-8a76-6787-446bf3d78dba]
terraform_data.service: Refreshing state... [id=5da7435b-c772-9498-10f8-303449b84b8f]

Terraform used the selected providers to generate the following execution
plan. Resource actions are indicated with the following symbols:
  ~ update in-place
  - destroy
-/+ destroy and then create replacement

Terraform will perform the following actions:

  # terraform_data.gone will be destroyed
  # (because terraform_data.gone is not in configuration)
  - resource "terraform_data" "gone" {
      - id     = "8f4da491-644f-b0e2-af5a-1cbe7939f49b" -> null
      - input  = "bye" -> null
      - output = "bye" -> null
    }

  # terraform_data.replaced must be replaced
-/+ resource "terraform_data" "replaced" {
      ~ id               = "415911a2-bf99-8a76-6787-446bf3d78dba" -> (known after apply)
      ~ output           = "x" -> (known after apply)
      ~ triggers_replace = [
          ~ "production" -> "staging",
        ]
        # (1 unchanged attribute hidden)
    }

  # terraform_data.service will be updated in-place
  ~ resource "terraform_data" "service" {
        id     = "5da7435b-c772-9498-10f8-303449b84b8f"
      ~ input  = {
          ~ name     = "production-app" -> "staging-app"
            # (1 unchanged attribute hidden)
        }
      ~ output = {
          - name     = "production-app"
          - replicas = 3
        } -> (known after apply)
    }

Plan: 1 to add, 1 to change, 2 to destroy.

Changes to Outputs:
  ~ service_name = "production-app" -> "staging-app"
"""

CREATE_PLAN = """\

Terraform used the selected providers to generate the following execution
plan. Resource actions are indicated with the following symbols:
  + create

Terraform will perform the following actions:

  # terraform_data.service will be created
  + resource "terraform_data" "service" {
      + id     = (known after apply)
      + input  = {
          + name     = "production-app"
          + replicas = 2
        }
      + output = (known after apply)
    }

Plan: 1 to add, 0 to change, 0 to destroy.

Changes to Outputs:
  + service_name = "production-app"
"""

NO_CHANGES_PLAN = """\
terraform_data.ok: Refreshing state... [id=1d6a8b4e-0e1c-5c2c-9fbb-1b5e1a4a8d0e]

No changes. Your infrastructure matches the configuration.

Terraform has compared your real infrastructure against your configuration
and found no differences, so no changes are needed.
"""

# failing/broken, planned with -no-color.
PLAN_ERROR = """\

Planning failed. Terraform encountered an error while generating this plan.


Error: Invalid function argument

  on main.tf line 14, in resource "terraform_data" "listener":
  14:     port = tonumber(var.port)
    ├────────────────
    │ while calling tonumber(v)
    │ var.port is "eighty"

Invalid value for "v" parameter: cannot convert "eighty" to number; given
string must be a decimal representation of a number.
"""


def plan_result(
    directory: str,
    output: str = CREATE_PLAN,
    *,
    status: ProjectStatus = ProjectStatus.SUCCEEDED,
    workspace: str = "default",
    name: str | None = None,
    summary: PlanSummary | None = None,
    error: str | None = None,
) -> ProjectResult:
    return ProjectResult(
        project=Project(dir=directory, workspace=workspace, name=name),
        command=CommandName.PLAN,
        status=status,
        output=output,
        summary=summary,
        error=error,
    )


# Diff formatting.


def test_change_markers_move_to_the_first_column_so_github_colours_them() -> None:
    lines = format_diff(MIXED_PLAN).split("\n")

    assert '-   resource "terraform_data" "gone" {' in lines
    assert '-       id     = "8f4da491-644f-b0e2-af5a-1cbe7939f49b" -> null' in lines
    assert '!   resource "terraform_data" "replaced" {' in lines
    assert '!           "production" -> "staging",' in lines
    assert '!   resource "terraform_data" "service" {' in lines
    assert "-           replicas = 3" in lines
    assert '!   service_name = "production-app" -> "staging-app"' in lines
    assert "!   destroy and then create replacement" in lines
    assert '+   resource "terraform_data" "service" {' in format_diff(CREATE_PLAN).split("\n")


def test_lines_without_a_change_marker_keep_their_text() -> None:
    formatted = format_diff(MIXED_PLAN).split("\n")

    assert '        id     = "5da7435b-c772-9498-10f8-303449b84b8f"' in formatted
    assert "  # terraform_data.replaced must be replaced" in formatted
    assert "        # (1 unchanged attribute hidden)" in formatted
    assert "Plan: 1 to add, 1 to change, 2 to destroy." in formatted
    # Same number of lines, and every line keeps its width, so columns still line up.
    original = MIXED_PLAN.split("\n")
    assert [len(line) for line in formatted] == [len(line) for line in original]


def test_text_that_starts_with_a_diff_character_by_accident_is_not_coloured() -> None:
    text = "-----BEGIN CERTIFICATE-----\n!important\n+1 reviewers\n  + real"

    assert format_diff(text).split("\n") == [
        " -----BEGIN CERTIFICATE-----",
        " !important",
        " +1 reviewers",
        "+   real",
    ]


# The plan comment.


def test_a_single_project_plan_comment() -> None:
    body = render_plan_comment(
        [plan_result("app", MIXED_PLAN)],
        head_sha="4f1c2d9e8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e",
        job_url="https://atlas.example.com/jobs/abc123",
    )

    expected_diff = format_diff(MIXED_PLAN.split("\n", 4)[4]).strip("\n")
    assert body == (
        "Ran Plan for dir: `app` workspace: `default`\n"
        "\n"
        "<details><summary>Show Output</summary>\n"
        "\n"
        "```diff\n"
        f"{expected_diff}\n"
        "```\n"
        "\n"
        "</details>\n"
        "\n"
        "Plan: 1 to add, 1 to change, 2 to destroy.\n"
        "\n"
        "> [!WARNING]\n"
        "> This plan will **destroy** 2 resources.\n"
        "\n"
        "* :arrow_forward: To apply this plan, comment: `atlas apply -d app`\n"
        "* :repeat: To plan this project again, comment: `atlas plan -d app`\n"
        "\n"
        "<sub>atlas · commit `4f1c2d9` · [job log](https://atlas.example.com/jobs/abc123)</sub>\n"
    )


def test_refresh_chatter_is_left_out_of_the_output() -> None:
    body = render_plan_comment([plan_result("app", MIXED_PLAN)])

    assert "Refreshing state" not in body
    assert "```diff\nTerraform used the selected providers" in body


def test_a_multi_project_plan_comment_lists_then_details_each_project() -> None:
    body = render_plan_comment(
        [
            plan_result("app", MIXED_PLAN),
            plan_result("db", CREATE_PLAN, workspace="staging"),
            plan_result("net", NO_CHANGES_PLAN, name="network"),
        ],
        command_prefix="atlas",
        head_sha="4f1c2d9e8b7a6f5e",
    )

    assert body.startswith(
        "Ran Plan for 3 projects:\n"
        "\n"
        "1. dir: `app` workspace: `default`\n"
        "1. dir: `db` workspace: `staging`\n"
        "1. project: `network` dir: `net` workspace: `default`\n"
        "\n"
        "---\n"
        "\n"
        "### 1. dir: `app` workspace: `default`\n"
    )
    assert "### 2. dir: `db` workspace: `staging`\n" in body
    assert "### 3. project: `network` dir: `net` workspace: `default`\n" in body
    assert "comment: `atlas apply -d app`" in body
    assert "comment: `atlas apply -d db -w staging`" in body
    assert "atlas apply -p network" not in body  # nothing to apply there
    assert "\n\nNo changes. Your infrastructure matches the configuration.\n" in body
    assert body.count("This plan will **destroy**") == 1
    assert "3 projects, 2 with changes, 1 with no changes, 0 failed." in body
    assert "To apply all unapplied plans from this pull request, comment: `atlas apply`\n" in body
    assert body.endswith("<sub>atlas · commit `4f1c2d9`</sub>\n")
    assert_balanced(body)


def test_the_apply_all_hint_needs_several_projects_with_changes() -> None:
    body = render_plan_comment(
        [plan_result("app", CREATE_PLAN), plan_result("db", NO_CHANGES_PLAN)],
        command_prefix="atlas",
    )

    assert "To apply all unapplied plans" not in body
    assert "comment: `atlas apply -d app`" in body


def test_a_named_project_is_applied_by_name_and_the_prefix_is_configurable() -> None:
    body = render_plan_comment([plan_result("infra/app", name="app-prod")], command_prefix="atlas-staging")

    assert "Ran Plan for project: `app-prod` dir: `infra/app` workspace: `default`" in body
    assert "comment: `atlas-staging apply -p app-prod`" in body


def test_a_destroy_warning_counts_from_the_summary_atlas_parsed() -> None:
    summary = PlanSummary(add=0, change=0, destroy=1)

    body = render_plan_comment([plan_result("app", "  - resource ...", summary=summary)])

    assert "Plan: 0 to add, 0 to change, 1 to destroy.\n" in body
    assert "> This plan will **destroy** 1 resource.\n" in body


def test_a_failed_plan_shows_the_error() -> None:
    body = render_plan_comment([plan_result("broken", PLAN_ERROR, status=ProjectStatus.FAILED)])

    assert body.startswith(
        "Ran Plan for dir: `broken` workspace: `default`\n"
        "\n"
        "**Plan Error**: Invalid function argument\n"
        "\n"
        "<details><summary>Show Output</summary>\n"
        "\n"
        "```\n"
        "Planning failed. Terraform encountered an error while generating this plan.\n"
    )
    assert '│ var.port is "eighty"\n' in body
    assert "comment: `atlas plan -d broken`" in body
    assert "atlas apply" not in body
    assert_balanced(body)


def test_locked_and_skipped_projects_say_why_in_a_sentence() -> None:
    body = render_plan_comment(
        [
            plan_result("app", status=ProjectStatus.LOCKED, output="", error="Locked by PR #7 (alice)"),
            plan_result("db", status=ProjectStatus.SKIPPED, output="", error="Skipped: the plan was cancelled"),
            plan_result("web"),
        ]
    )

    assert "\n:lock: Locked by PR #7 (alice).\n" in body
    assert "\nSkipped: the plan was cancelled.\n" in body
    assert "3 projects, 1 with changes, 0 with no changes, 0 failed, 2 not planned." in body


def test_output_containing_a_code_fence_cannot_break_out_of_its_block() -> None:
    output = "Error: bad heredoc\n\n  on main.tf line 3:\n   3:   x = <<EOT\n```\n# injected heading\n````\n"

    body = render_plan_comment([plan_result("app", output, status=ProjectStatus.FAILED)])

    assert "\n`````\nError: bad heredoc\n" in body
    assert "\n````\n# injected heading\n" not in body.split("`````")[0]
    assert_balanced(body)


# Apply, error and usage comments.


def test_an_apply_comment_shows_terraforms_result_line() -> None:
    output = (
        "terraform_data.service: Creating...\n"
        "terraform_data.service: Creation complete after 0s [id=5da7435b]\n"
        "\n"
        "Apply complete! Resources: 1 added, 0 changed, 0 destroyed.\n"
    )
    applied = ProjectResult(
        project=Project(dir="app"), command=CommandName.APPLY, status=ProjectStatus.SUCCEEDED, output=output
    )
    failed = ProjectResult(
        project=Project(dir="broken"),
        command=CommandName.APPLY,
        status=ProjectStatus.FAILED,
        output=PLAN_ERROR,
    )

    single = render_apply_comment([applied], head_sha="abcdef123456")
    several = render_apply_comment([applied, failed])

    assert single.startswith("Ran Apply for dir: `app` workspace: `default`\n\n<details>")
    assert "</details>\n\nApply complete! Resources: 1 added, 0 changed, 0 destroyed.\n" in single
    assert single.endswith("<sub>atlas · commit `abcdef1`</sub>\n")
    assert several.startswith("Ran Apply for 2 projects:\n")
    assert "**Apply Error**: Invalid function argument\n" in several
    assert "2 projects, 1 succeeded, 1 failed." in several
    assert_balanced(several)


def test_an_error_comment_fences_multiline_details() -> None:
    assert render_error_comment("Cannot plan", "The repository has no Terraform files.") == (
        "**Cannot plan**\n\nThe repository has no Terraform files.\n"
    )
    assert render_error_comment("Clone failed", "fatal: couldn't find remote ref\nexit status 128") == (
        "**Clone failed**\n\n```\nfatal: couldn't find remote ref\nexit status 128\n```\n"
    )


def test_usage_names_the_commands_with_the_configured_prefix() -> None:
    body = render_usage("atlas", problem="Unknown command `plna`")

    assert body.startswith("**Unknown command `plna`**\n\n```\nUsage: atlas <command> [flags]\n")
    for command in ("plan", "apply", "unlock", "help"):
        assert re.search(rf"^  {command} ", body, re.MULTILINE)
    assert_balanced(body)


# Splitting long comments.


def assert_balanced(body: str) -> None:
    """Every code fence and <details> block the body opens, it closes."""
    fence: str | None = None
    details = 0
    for line in body.split("\n"):
        found = re.match(r"^\s*(`{3,}|~{3,})(.*)$", line)
        if fence is not None:
            closes = found and found.group(1)[0] == fence[0] and len(found.group(1)) >= len(fence)
            if closes and found and not found.group(2).strip():
                fence = None
            continue
        if found:
            fence = found.group(1)
            continue
        details += len(re.findall(r"<details\b", line)) - line.count("</details>")
        assert details >= 0, f"</details> without <details> at {line!r}"
    assert fence is None, f"unclosed fence {fence}"
    assert details == 0, f"{details} unclosed <details>"


SYNTHETIC_LINE = re.compile(
    r"^(\*\*atlas [a-z ]+, part \d+ of \d+\*\*|`{3,}.*|~{3,}.*|</?details>.*|"
    r"<details><summary>.* \(continued\)</summary>|)$"
)


def assert_split_keeps_every_line(body: str, parts: list[str], limit: int) -> None:
    """Parts fit, each is balanced, and the body's lines appear in order with only
    headers, blank lines and fence/<details> lines added between them."""
    assert all(len(part) <= limit for part in parts)
    for number, part in enumerate(parts, start=1):
        assert part.startswith(f"**atlas plan output, part {number} of {len(parts)}**\n\n")
        assert_balanced(part)
    original = body.split("\n")
    position = 0
    for line in (line for part in parts for line in part.split("\n")):
        if position < len(original) and line == original[position]:
            position += 1
        else:
            assert SYNTHETIC_LINE.match(line), f"line {line!r} is neither the body's nor a split marker"
    assert position == len(original), f"lost line {original[position]!r}"


def long_plan_comment(resources: int) -> str:
    """A real-looking plan comment for many created resources (a body of any size we need)."""
    block = CREATE_PLAN.split("Terraform will perform the following actions:\n\n")[1].split("\nPlan:")[0]
    output = "".join(block.replace("service", f"server_{i:04d}") for i in range(resources))
    summary = f"Plan: {resources} to add, 0 to change, 0 to destroy."
    return render_plan_comment([plan_result("app", f"{output}\n{summary}")])


def body_of_length(length: int) -> str:
    body = long_plan_comment(length // 250 + 10)
    # Shorten the end of the plan inside its fence, so the body is exactly as long as asked.
    cut = body.index("\n```\n\n</details>")
    return body[: cut - (len(body) - length)] + body[cut:]


@pytest.mark.parametrize(("length", "count"), [(COMMENT_LIMIT, 1), (COMMENT_LIMIT + 1, 2), (200_000, 4)])
def test_a_long_comment_splits_into_parts_that_each_fit(length: int, count: int) -> None:
    body = body_of_length(length)
    assert len(body) == length

    parts = split_comment(body)

    assert len(parts) == count
    if count == 1:
        assert parts == [body]
        return
    assert_split_keeps_every_line(body, parts, COMMENT_LIMIT)
    assert parts[-1].endswith("<sub>atlas</sub>\n")


def test_a_split_inside_the_plan_closes_its_block_and_reopens_it_in_the_next_part() -> None:
    body = body_of_length(200_000)

    parts = split_comment(body)

    for part in parts[:-1]:
        assert part.endswith("\n```\n</details>")
    for number, part in enumerate(parts[1:], start=2):
        assert part.startswith(
            f"**atlas plan output, part {number} of 4**\n\n"
            "<details><summary>Show Output (continued)</summary>\n\n```diff\n"
        )


def test_small_limits_split_everywhere_and_still_balance() -> None:
    body = long_plan_comment(20)
    for limit in (400, 555, 1000, 4096):
        assert_split_keeps_every_line(body, split_comment(body, limit), limit)


def test_a_line_longer_than_the_limit_is_wrapped_not_dropped() -> None:
    long_line = "x" * 150_000
    body = render_plan_comment([plan_result("app", f'  + value = "{long_line}"')])

    parts = split_comment(body)

    assert all(len(part) <= COMMENT_LIMIT for part in parts)
    assert len(parts) == 3
    assert sum(part.count("x") for part in parts) == 150_000
    for part in parts:
        assert_balanced(part)


def test_the_long_plan_fixture_splits_when_terraform_plans_it(tmp_path: Path) -> None:
    terraform = require_binary("terraform", "install Terraform from developer.hashicorp.com/terraform/install")
    work = tmp_path / "long-plan"
    shutil.copytree(FIXTURES / "long-plan", work)
    main = work / "main.tf"
    main.write_text(main.read_text().replace("__STATE_DIR__", str(tmp_path / "state")))
    env = {key: value for key, value in os.environ.items() if key != "TF_CLI_CONFIG_FILE"}
    env["TF_IN_AUTOMATION"] = "1"
    for args in (["init", "-input=false", "-no-color"], ["plan", "-input=false", "-no-color"]):
        run = subprocess.run([terraform, *args], cwd=work, env=env, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
    body = render_plan_comment([plan_result(".", run.stdout)], head_sha="0" * 40)

    parts = split_comment(body)

    assert len(body) > 70_000
    assert len(parts) == 2
    assert_split_keeps_every_line(body, parts, COMMENT_LIMIT)
    assert '+   resource "terraform_data" "server" {' in parts[0]
    assert "Plan: 240 to add, 0 to change, 0 to destroy." in parts[1]
    assert "atlas apply -d ." in parts[1]


def test_comment_parts_keep_the_last_parts_and_say_where_the_rest_is() -> None:
    from atlas.render.comments import comment_parts

    body = "Ran Plan for x\n\n" + "\n".join(f"line {n}" for n in range(3000))
    every = comment_parts(body, max_comments=0, limit=4000)
    kept = comment_parts(body, max_comments=2, job_url="https://atlas.example.test/jobs/1", limit=4000)
    assert len(every) > 2 and len(kept) == 2
    assert all(len(part) <= 4000 for part in kept)
    assert "line 2999" in kept[-1] and "line 0\n" not in "".join(kept)
    assert "parts of this output are not posted (--max-comments-per-command 2)" in kept[0]
    assert kept[-1].endswith("is on its job page: https://atlas.example.test/jobs/1")
    assert comment_parts("short", max_comments=1) == ["short"]


def test_a_template_overrides_dir_that_is_missing_is_reported_and_the_built_ins_stay(tmp_path: Path) -> None:
    from atlas.render.comments import use_template_overrides

    missing = tmp_path / "nowhere"
    try:
        assert use_template_overrides(missing) == [
            f"{missing} is not a directory; atlas uses its built-in comment templates"]
        assert render_error_comment("title", "details").startswith("**title**")
    finally:
        use_template_overrides(None)
