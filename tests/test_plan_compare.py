"""Comparing the plan reviewed on a pull request with the plan made after merge, and explaining a difference.

Real plans come from the real terraform over the fixtures (or small configurations written
here); the few situations terraform cannot produce simply are built as `show -json` documents.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from itertools import count
from pathlib import Path
from typing import Any

import pytest

from atlas.models import Project, ProjectStatus
from atlas.render.comments import render_plan_difference, split_comment
from atlas.runtime.joblog import JobLog
from atlas.runtime.plan_compare import (
    ABSENT,
    UNKNOWN,
    AttributeDifference,
    PlanDifference,
    PlannedChange,
    Sensitive,
    attribute_differences,
    compare_plans,
    describe_actions,
    dump_changes,
    format_path,
    format_value,
    load_changes,
    planned_changes,
)
from atlas.runtime.plans import plan_project
from atlas.runtime.terraform import TerraformRunner
from tests.conftest import require_binary

FIXTURES = Path(__file__).resolve().parent.parent / "terraform-fixtures"
NEXT_STEPS = (
    "Review the new plan above; to apply it comment `atlas apply` on this pull request, or `atlas unlock` to give up."
)


class PlanWorld:
    """A repository in tmp (a fixture, or files written by the test) that real terraform plans."""

    def __init__(self, tmp_path: Path, fixture: str | None = None) -> None:
        self.repo = tmp_path / "repo"
        state = tmp_path / "state"
        if fixture:
            shutil.copytree(FIXTURES / fixture, self.repo, ignore=shutil.ignore_patterns("expected"))
        else:
            self.repo.mkdir()
        for path in self.repo.rglob("*.tf"):
            path.write_text(path.read_text().replace("__STATE_DIR__", str(state)))
        terraform = require_binary("terraform", "install Terraform >= 1.4 from https://developer.hashicorp.com")
        self.runner = TerraformRunner(terraform, plugin_cache_dir=tmp_path / "plugin-cache")
        self.log = JobLog(tmp_path / "jobs" / "job.log")
        self.plans = tmp_path / "plans"
        self._numbers = count()

    def write(self, relative: str, text: str) -> None:
        path = self.repo / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))

    def show(self, project_dir: str, *extra_args: str) -> dict[str, Any]:
        """`terraform show -json` of a fresh plan of one directory, made the way atlas plans it."""
        project = Project(dir=project_dir)
        planfile = self.plans / f"plan-{next(self._numbers)}.tfplan"
        result = plan_project(self.runner, self.repo, project, planfile, self.log, extra_args=extra_args)
        assert result.status is ProjectStatus.SUCCEEDED, result.error
        shown = self.runner.run(["show", "-json", str(planfile)], self.repo / project_dir, self.log, echo=False)
        assert shown.ok, shown.output
        document: dict[str, Any] = json.loads(shown.output)
        return document

    def apply(self, project_dir: str, *extra_args: str) -> None:
        applied = self.runner.run(
            ["apply", "-auto-approve", "-input=false", "-no-color", *extra_args], self.repo / project_dir, self.log
        )
        assert applied.ok, applied.output


def code_blocks(markdown: str) -> list[str]:
    """The ```diff blocks of a comment, without their fences."""
    blocks: list[str] = []
    current: list[str] = []
    fence = ""
    for line in markdown.split("\n"):
        if not fence and line.startswith("```"):
            fence = line[: len(line) - len(line.lstrip("`"))]
            current = []
        elif fence and line == fence:
            blocks.append("\n".join(current))
            fence = ""
        elif fence:
            current.append(line)
    assert not fence, "a fence was left open"
    return blocks


# --- real plans ----------------------------------------------------------------------------------


def test_an_identical_replan_makes_the_same_changes_even_with_values_known_only_after_apply(tmp_path: Path) -> None:
    world = PlanWorld(tmp_path, "multi-project")

    reviewed = planned_changes(world.show("app"))
    new = planned_changes(world.show("app"))

    assert sorted(reviewed) == ["output.service_name", "terraform_data.service"]
    service = reviewed["terraform_data.service"]
    assert service.actions == ("create",)
    assert service.values["input"] == {"name": "production-app", "replicas": 2}
    assert service.values["id"] is UNKNOWN, "terraform knows a new resource's id only after apply"
    assert service.values["output"] is UNKNOWN
    assert reviewed["output.service_name"].values == {"value": "production-app"}
    difference = compare_plans(reviewed, new)
    assert difference.same
    assert difference == PlanDifference(only_reviewed=[], only_new=[], changed=[])


def test_a_different_variable_value_is_a_change_at_its_attribute_path(tmp_path: Path) -> None:
    world = PlanWorld(tmp_path, "multi-project")
    reviewed = planned_changes(world.show("app"))
    new = planned_changes(world.show("app", "-var", "environment=staging"))

    difference = compare_plans(reviewed, new)

    assert not difference.same
    assert difference.only_reviewed == [] and difference.only_new == []
    assert [(old.address, now.address) for old, now in difference.changed] == [
        ("output.service_name", "output.service_name"),
        ("terraform_data.service", "terraform_data.service"),
    ]
    assert attribute_differences(*difference.changed[1]) == [
        AttributeDifference(path=("input", "name"), reviewed="production-app", new="staging-app")
    ]
    comment = render_plan_difference("app", difference)
    assert comment.startswith("### :warning: atlas did not apply `app`\n\n")
    assert (
        "The plan made after merging into `main` differs from the plan reviewed on this pull request, "
        "so atlas applied nothing in `app`" in comment
    )
    assert code_blocks(comment) == [
        "  output.service_name (create)\n"
        '-   value = "production-app"\n'
        '+   value = "staging-app"\n'
        "\n"
        "  terraform_data.service (create)\n"
        '-   input.name = "production-app"\n'
        '+   input.name = "staging-app"'
    ]
    assert "**Changed since review** (2):\n\n```diff\n" in comment
    assert "Only in" not in comment
    assert comment.endswith(f"\n\n{NEXT_STEPS}\n")


def test_an_extra_resource_is_only_in_the_new_plan_and_missing_from_it_only_in_the_reviewed_one(
    tmp_path: Path,
) -> None:
    world = PlanWorld(tmp_path, "multi-project")
    reviewed = planned_changes(world.show("app"))
    world.write(
        "app/extra.tf",
        """\
        resource "terraform_data" "extra" {
          input = "added after review"
        }
        """,
    )
    new = planned_changes(world.show("app"))

    difference = compare_plans(reviewed, new)

    assert [change.address for change in difference.only_new] == ["terraform_data.extra"]
    assert difference.only_new[0].actions == ("create",)
    assert difference.only_reviewed == [] and difference.changed == []
    comment = render_plan_difference("app", difference, command_prefix="tfbot", base_ref="develop")
    assert "merging into `develop`" in comment
    assert "**Only in the plan after merge** (1), never reviewed:\n\n```diff\n+ terraform_data.extra: create\n```" in (
        comment
    )
    assert comment.endswith(
        "Review the new plan above; to apply it comment `tfbot apply` on this pull request, "
        "or `tfbot unlock` to give up.\n"
    )

    backwards = compare_plans(new, reviewed)
    assert [change.address for change in backwards.only_reviewed] == ["terraform_data.extra"]
    assert "**Only in the reviewed plan** (1), no longer planned:\n\n```diff\n- terraform_data.extra: create\n```" in (
        render_plan_difference("app", backwards)
    )


def test_a_value_unknown_at_review_but_known_after_merge_is_a_difference(tmp_path: Path) -> None:
    world = PlanWorld(tmp_path)
    world.write(
        "chain/main.tf",
        """\
        resource "terraform_data" "first" {
          input = "first"
        }

        resource "terraform_data" "second" {
          input = terraform_data.first.id
        }
        """,
    )
    reviewed = planned_changes(world.show("chain"))
    # Someone applied the first resource by hand before the merge: its id is now known.
    world.apply("chain", "-target=terraform_data.first")
    new = planned_changes(world.show("chain"))

    difference = compare_plans(reviewed, new)

    assert reviewed["terraform_data.second"].values["input"] is UNKNOWN
    known_id = new["terraform_data.second"].values["input"]
    assert isinstance(known_id, str) and known_id
    assert [change.address for change in difference.only_reviewed] == ["terraform_data.first"]
    assert [new.address for _, new in difference.changed] == ["terraform_data.second"]
    assert attribute_differences(*difference.changed[0]) == [
        AttributeDifference(path=("input",), reviewed=UNKNOWN, new=known_id)
    ]
    assert code_blocks(render_plan_difference("chain", difference)) == [
        f'  terraform_data.second (create)\n-   input = (known after apply)\n+   input = "{known_id}"',
        "- terraform_data.first: create",
    ]


SENSITIVE_CONFIG = """\
variable "password" {
  type      = string
  sensitive = true
}

resource "terraform_data" "credentials" {
  input = {
    user     = "admin"
    password = var.password
  }
}

output "password" {
  value     = var.password
  sensitive = true
}
"""


def test_sensitive_values_compare_by_value_but_never_appear_in_the_comment_or_the_stored_plan(tmp_path: Path) -> None:
    world = PlanWorld(tmp_path)
    world.write("secrets/main.tf", SENSITIVE_CONFIG)
    reviewed_json = world.show("secrets", "-var", "password=reviewed-hunter2")
    assert "reviewed-hunter2" in json.dumps(reviewed_json), "terraform's own JSON holds the secret"
    reviewed = planned_changes(reviewed_json)
    same = planned_changes(world.show("secrets", "-var", "password=reviewed-hunter2"))
    new = planned_changes(world.show("secrets", "-var", "password=merged-s3cret"))

    assert compare_plans(reviewed, same).same
    difference = compare_plans(reviewed, new)

    assert isinstance(reviewed["terraform_data.credentials"].values["input"]["password"], Sensitive)
    assert reviewed["terraform_data.credentials"].values["input"]["user"] == "admin"
    assert [now.address for _, now in difference.changed] == ["output.password", "terraform_data.credentials"]
    comment = render_plan_difference("secrets", difference)
    assert code_blocks(comment) == [
        "  output.password (create)\n"
        "-   value = (sensitive)\n"
        "+   value = (sensitive)\n"
        "\n"
        "  terraform_data.credentials (create)\n"
        "-   input.password = (sensitive)\n"
        "+   input.password = (sensitive)"
    ]
    for text in (comment, dump_changes(reviewed), dump_changes(new), repr(difference)):
        assert "hunter2" not in text and "s3cret" not in text
    assert compare_plans(load_changes(dump_changes(reviewed)), new) == difference


def test_real_plans_round_trip_through_their_stored_form(tmp_path: Path) -> None:
    world = PlanWorld(tmp_path, "multi-project")
    reviewed = planned_changes(world.show("app"))

    stored = dump_changes(reviewed)
    loaded = load_changes(stored)

    assert loaded == reviewed
    assert loaded["terraform_data.service"].values["id"] is UNKNOWN
    assert compare_plans(loaded, planned_changes(world.show("app"))).same
    assert dump_changes(loaded) == stored


# --- plans terraform cannot simply produce -------------------------------------------------------


def resource(address: str, actions: list[str], after: Any, **change: Any) -> dict[str, Any]:
    """One entry of `resource_changes` as `terraform show -json` writes it."""
    return {
        "address": address,
        "mode": change.pop("mode", "managed"),
        "type": address.split(".")[0],
        "name": address.split(".")[-1],
        **({"deposed": change.pop("deposed")} if "deposed" in change else {}),
        "change": {"actions": actions, "before": None, "after": after, **change},
    }


def one_change(after: Any, after_unknown: Any = False, after_sensitive: Any = False) -> PlannedChange:
    show = {
        "resource_changes": [
            resource("x.y", ["update"], after, after_unknown=after_unknown, after_sensitive=after_sensitive)
        ]
    }
    return planned_changes(show)["x.y"]


def test_unknown_compares_equal_only_to_unknown_at_the_same_path() -> None:
    known = {"tags": {}, "rules": [{"port": 80}, {}]}
    unknown_name = one_change(known, {"tags": {"name": True}, "rules": [{}, {"port": True}]})
    also_unknown = one_change(known, {"tags": {"name": True}, "rules": [{}, {"port": True}]})
    known_name = one_change(
        {"tags": {"name": "web"}, "rules": [{"port": 80}, {}]}, {"tags": {}, "rules": [{}, {"port": True}]}
    )

    assert unknown_name.values == {"tags": {"name": UNKNOWN}, "rules": [{"port": 80}, {"port": UNKNOWN}]}
    assert compare_plans({"x.y": unknown_name}, {"x.y": also_unknown}).same
    assert attribute_differences(unknown_name, known_name) == [
        AttributeDifference(path=("tags", "name"), reviewed=UNKNOWN, new="web")
    ]
    assert attribute_differences(known_name, unknown_name) == [
        AttributeDifference(path=("tags", "name"), reviewed="web", new=UNKNOWN)
    ]
    assert not compare_plans({"x.y": known_name}, {"x.y": unknown_name}).same


def test_a_whole_value_unknown_and_nulls_left_as_they_are() -> None:
    change = one_change({"block": None, "list": None}, {"block": {}, "list": [], "whole": True})

    assert change.values == {"block": None, "list": None, "whole": UNKNOWN}


def test_values_compare_as_terraform_types_do() -> None:
    assert not compare_plans({"x.y": one_change({"a": True})}, {"x.y": one_change({"a": 1})}).same
    assert compare_plans({"x.y": one_change({"a": 2})}, {"x.y": one_change({"a": 2.0})}).same
    assert not compare_plans({"x.y": one_change({"a": None})}, {"x.y": one_change({})}).same
    lengthened = attribute_differences(one_change({"a": [1, 2]}), one_change({"a": [0, 1, 2]}))
    assert lengthened == [AttributeDifference(path=("a",), reviewed=[1, 2], new=[0, 1, 2])]
    assert attribute_differences(one_change({"m": {"k": 1}}), one_change({"m": {"j": 1}})) == [
        AttributeDifference(path=("m", "j"), reviewed=ABSENT, new=1),
        AttributeDifference(path=("m", "k"), reviewed=1, new=ABSENT),
    ]


def test_different_actions_on_the_same_address_are_a_difference() -> None:
    update = planned_changes({"resource_changes": [resource("x.y", ["update"], {"a": 1})]})
    replace = planned_changes({"resource_changes": [resource("x.y", ["delete", "create"], {"a": 1})]})

    difference = compare_plans(update, replace)

    assert [(old.actions, new.actions) for old, new in difference.changed] == [(("update",), ("delete", "create"))]
    assert code_blocks(render_plan_difference("app", difference)) == [
        "  x.y\n-   actions: update in-place\n+   actions: replace (destroy, then create)"
    ]


def test_planned_changes_leave_out_what_stays_and_reads_and_name_deposed_and_imported_objects() -> None:
    show = {
        "resource_changes": [
            resource("x.kept", ["no-op"], {"a": 1}),
            resource("data.x.read", ["read"], {"a": 1}, mode="data"),
            resource("x.old", ["delete"], None, deposed="00d1"),
            resource("x.adopted", ["no-op"], {"id": "i-1"}, importing={"id": "i-1"}),
            resource("x.moved", ["update"], {"a": 2}, importing={"id": "i-2"}),
        ],
        "output_changes": {
            "same": {"actions": ["no-op"], "after": 1, "after_unknown": False, "after_sensitive": False},
            "gone": {"actions": ["delete"], "after": None, "after_unknown": False, "after_sensitive": False},
        },
    }

    changes = planned_changes(show)

    assert changes == {
        "x.old (deposed object 00d1)": PlannedChange(
            address="x.old (deposed object 00d1)", actions=("delete",), values={}
        ),
        "x.adopted": PlannedChange(address="x.adopted", actions=("import",), values={"id": "i-1"}),
        "x.moved": PlannedChange(address="x.moved", actions=("import", "update"), values={"a": 2}),
        "output.gone": PlannedChange(address="output.gone", actions=("delete",), values={"value": None}),
    }


def test_the_stored_form_keeps_markers_apart_from_real_values_that_look_like_them() -> None:
    lookalike = {"__atlas__": "unknown"}
    wrapped_lookalike = {"__atlas__": "object", "value": {}}
    change = one_change({"a": lookalike, "b": None, "c": [wrapped_lookalike]}, {"b": True}, {"d": True})
    changes = {"x.y": change}

    loaded = load_changes(dump_changes(changes))

    assert loaded == changes
    assert loaded["x.y"].values["a"] == {"__atlas__": "unknown"}
    assert loaded["x.y"].values["b"] is UNKNOWN
    assert loaded["x.y"].values["c"] == [{"__atlas__": "object", "value": {}}]
    assert json.loads(PlannedChange.model_validate(change).model_dump_json())["values"]["b"] == {"__atlas__": "unknown"}


@pytest.mark.parametrize("text", ['{"changes": []}', '{"version": 99, "changes": []}', "[]"])
def test_a_stored_plan_of_another_format_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a stored plan of format version 1"):
        load_changes(text)


def test_sensitive_digests_depend_on_the_place_as_well_as_the_value() -> None:
    change = one_change({"a": "same", "b": "same"}, False, {"a": True, "b": True})

    assert isinstance(change.values["a"], Sensitive) and isinstance(change.values["b"], Sensitive)
    assert change.values["a"] != change.values["b"]
    assert "same" not in repr(change)


# --- words -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("actions", "words"),
    [
        (("create",), "create"),
        (("update",), "update in-place"),
        (("delete",), "destroy"),
        (("delete", "create"), "replace (destroy, then create)"),
        (("create", "delete"), "replace (create, then destroy)"),
        (("import",), "import"),
        (("import", "update"), "import, then update in-place"),
        (("forget",), "forget (remove from state, keep the object)"),
    ],
)
def test_actions_read_as_in_a_plan(actions: tuple[str, ...], words: str) -> None:
    assert describe_actions(actions) == words


@pytest.mark.parametrize(
    ("path", "text"),
    [
        (("input", "replicas"), "input.replicas"),
        (("tags", "kubernetes.io/role"), 'tags["kubernetes.io/role"]'),
        (("rule", 0, "cidr"), "rule[0].cidr"),
        ((), "(whole value)"),
    ],
)
def test_paths_read_as_terraform_writes_them(path: tuple[str | int, ...], text: str) -> None:
    assert format_path(path) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (UNKNOWN, "(known after apply)"),
        (Sensitive("sha256:0"), "(sensitive)"),
        (ABSENT, "(absent)"),
        (None, "null"),
        (True, "true"),
        (3, "3"),
        ("line\nbreak", '"line\\nbreak"'),
        (
            {"name": "web", "a.b": UNKNOWN, "secret": Sensitive("sha256:1")},
            '{ name = "web", "a.b" = (known after apply), secret = (sensitive) }',
        ),
        ([1, "x", []], '[1, "x", []]'),
    ],
)
def test_values_read_on_one_line(value: Any, text: str) -> None:
    assert format_value(value) == text


# --- the comment -------------------------------------------------------------------------------


def test_the_comment_lists_every_kind_of_difference_in_reading_order() -> None:
    reviewed = {
        "x.changed": PlannedChange(address="x.changed", actions=("update",), values={"size": 1, "id": UNKNOWN}),
        "x.dropped": PlannedChange(address="x.dropped", actions=("delete",), values={}),
    }
    new = {
        "x.changed": PlannedChange(address="x.changed", actions=("update",), values={"size": 2, "id": "i-1"}),
        "x.added": PlannedChange(address="x.added", actions=("create",), values={}),
        "output.url": PlannedChange(address="output.url", actions=("create",), values={"value": UNKNOWN}),
    }

    comment = render_plan_difference("app/staging", compare_plans(reviewed, new))

    assert (
        comment
        == textwrap.dedent(
            """\
        ### :warning: atlas did not apply `app/staging`

        The plan made after merging into `main` differs from the plan reviewed on this pull request, \
so atlas applied nothing in `app/staging` and is waiting for a human. \
Below, `-` is what was reviewed and `+` is what would happen now.

        **Changed since review** (1):

        ```diff
          x.changed (update in-place)
        -   id = (known after apply)
        +   id = "i-1"
        -   size = 1
        +   size = 2
        ```

        **Only in the plan after merge** (2), never reviewed:

        ```diff
        + output.url: create
        + x.added: create
        ```

        **Only in the reviewed plan** (1), no longer planned:

        ```diff
        - x.dropped: destroy
        ```

        """
        )
        + NEXT_STEPS
        + "\n"
    )


def test_values_holding_backticks_cannot_close_the_block_and_long_comments_split_cleanly() -> None:
    reviewed = {"x.y": PlannedChange(address="x.y", actions=("update",), values={"doc": "```\nend"})}
    new = {"x.y": PlannedChange(address="x.y", actions=("update",), values={"doc": "````"})}
    many = {
        f"x.r{index}": PlannedChange(address=f"x.r{index}", actions=("create",), values={}) for index in range(3000)
    }

    comment = render_plan_difference("app", compare_plans(reviewed, new))
    long_comment = render_plan_difference("app", compare_plans({}, many))

    assert '`````diff\n  x.y (update in-place)\n-   doc = "```\\nend"\n+   doc = "````"\n`````' in comment
    parts = split_comment(long_comment, 20_000)
    assert len(parts) > 1
    assert all(len(part) <= 20_000 and part.count("```") % 2 == 0 for part in parts)
    assert parts[-1].endswith(NEXT_STEPS + "\n")
