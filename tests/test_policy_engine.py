"""The policy engine over real `terraform show -json` plans, with real regopy."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from atlas.policy.engine import PolicySetCache, evaluate_policy_sets, load_policy_set
from atlas.policy.results import PolicyOutcome, PolicySetResult, overall_outcome
from atlas.policy.sets import parse_policies
from tests.conftest import require_binary
from tests.policy_plans import INSTALL_HINT, prepare_fixture, show_plan

PUBLIC_BUCKET = """\
package main
import rego.v1

deny contains msg if {
    some rc in input.resource_changes
    rc.change.after.input.acl == "public-read"
    msg := sprintf("%s must not be public", [rc.address])
}
"""

MANY_INSTANCES = """\
package main
import rego.v1

warn contains msg if {
    count([rc | some rc in input.resource_changes; rc.change.after.input.kind == "instance"]) > 3
    msg := "more than 3 instances"
}
"""


@pytest.fixture(scope="module")
def plans(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """`private`: 1 private bucket and 2 small instances; `public`: a public bucket, 5 huge instances."""
    terraform = require_binary("terraform", INSTALL_HINT)
    root = tmp_path_factory.mktemp("policy-plans")
    workdir = prepare_fixture(root / "work", root / "state", terraform)
    return {
        "private": show_plan(workdir, terraform, "private", {}),
        "public": show_plan(workdir, terraform, "public",
                            {"bucket_acl": "public-read", "instance_size": "huge", "instances": 5}),
    }


@pytest.fixture
def policy_dir(tmp_path: Path) -> Callable[..., Path]:
    def write(files: dict[str, str], name: str = "policies") -> Path:
        root = tmp_path / name
        root.mkdir()
        for relative, text in files.items():
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        return root
    return write


def evaluate(directory: Path, plan: str, **options: object) -> PolicySetResult:
    return load_policy_set(directory, **options).evaluate(plan)  # type: ignore[arg-type]


def errors(result: PolicySetResult) -> list[str]:
    return [str(problem) for problem in result.errors]


def test_a_plan_the_policies_allow_passes(plans: dict[str, str], policy_dir: Callable[..., Path]) -> None:
    result = evaluate(policy_dir({"buckets.rego": PUBLIC_BUCKET}), plans["private"])
    assert result.outcome is PolicyOutcome.PASSED
    assert result.passed and result.failures == () and result.errors == ()
    assert result.policy_set == "policies"


def test_deny_fails_the_set_with_each_message(plans: dict[str, str], policy_dir: Callable[..., Path]) -> None:
    result = evaluate(policy_dir({"buckets.rego": PUBLIC_BUCKET}), plans["public"])
    assert result.outcome is PolicyOutcome.FAILED
    assert [(f.namespace, f.rule, f.message) for f in result.failures] == [
        ("main", "deny", "terraform_data.bucket must not be public")]


def test_violation_may_yield_objects_whose_other_keys_are_details(
        plans: dict[str, str], policy_dir: Callable[..., Path]) -> None:
    policy = """\
package main
import rego.v1

violation contains {"msg": msg, "resource": rc.address, "size": size} if {
    some rc in input.resource_changes
    size := rc.change.after.input.size
    size == "huge"
    msg := sprintf("%s is %s", [rc.address, size])
}
violation contains "instances must be small" if {
    some rc in input.resource_changes
    rc.change.after.input.size == "huge"
}
"""
    result = evaluate(policy_dir({"size.rego": policy}), plans["public"])
    assert result.outcome is PolicyOutcome.FAILED
    messages = sorted(f.message for f in result.failures)
    assert messages[0] == "instances must be small"
    assert messages[1:] == [f"terraform_data.instance[{i}] is huge" for i in range(5)]
    detailed = next(f for f in result.failures if f.message == "terraform_data.instance[0] is huge")
    assert detailed.rule == "violation"
    assert detailed.details == {"resource": "terraform_data.instance[0]", "size": "huge"}


def test_warn_warns_without_failing(plans: dict[str, str], policy_dir: Callable[..., Path]) -> None:
    result = evaluate(policy_dir({"count.rego": MANY_INSTANCES}), plans["public"])
    assert result.outcome is PolicyOutcome.PASSED
    assert [(w.rule, w.message) for w in result.warnings] == [("warn", "more than 3 instances")]
    assert evaluate(policy_dir({"count.rego": MANY_INSTANCES}, name="again"), plans["private"]).warnings == ()


def test_only_package_main_is_evaluated_unless_the_set_names_namespaces(
        plans: dict[str, str], policy_dir: Callable[..., Path]) -> None:
    directory = policy_dir({
        "main.rego": MANY_INSTANCES,
        "buckets/public.rego": PUBLIC_BUCKET.replace("package main", "package buckets"),
        "helpers.rego": "package lib\nimport rego.v1\n\nhuge(rc) if rc.change.after.input.size == \"huge\"\n",
        "sizes.rego": """\
package sizes
import rego.v1
import data.lib

deny contains sprintf("%s is huge", [rc.address]) if {
    some rc in input.resource_changes
    lib.huge(rc)
}
""",
    })
    default = evaluate(directory, plans["public"])
    assert default.outcome is PolicyOutcome.PASSED and len(default.warnings) == 1

    named = evaluate(directory, plans["public"], namespaces=["buckets", "sizes"])
    assert named.outcome is PolicyOutcome.FAILED
    assert {f.namespace for f in named.failures} == {"buckets", "sizes"}
    assert named.warnings == ()

    everything = evaluate(directory, plans["public"], namespaces=None)
    assert {f.namespace for f in everything.failures} == {"buckets", "sizes"}
    assert [w.namespace for w in everything.warnings] == ["main"]


def test_a_namespace_no_file_declares_is_an_error(plans: dict[str, str], policy_dir: Callable[..., Path]) -> None:
    result = evaluate(policy_dir({"main.rego": PUBLIC_BUCKET}), plans["public"], namespaces=["main", "bukets"])
    assert result.outcome is PolicyOutcome.ERROR
    assert errors(result) == ["namespace 'bukets' is not declared by any policy file (packages here: main); "
                              "a namespace without policies would pass every plan"]


def test_data_documents_are_merged_at_their_directory_path(
        plans: dict[str, str], policy_dir: Callable[..., Path]) -> None:
    policy = """\
package main
import rego.v1

deny contains sprintf("%s: size %s is not allowed", [rc.address, size]) if {
    some rc in input.resource_changes
    size := rc.change.after.input.size
    not size in data.sizes.allowed
}
deny contains sprintf("%s: zone %s is not allowed", [rc.address, zone]) if {
    some rc in input.resource_changes
    zone := rc.change.after.input.zone
    not zone in data.aws.zones
}
"""
    directory = policy_dir({
        "main.rego": policy,
        "sizes.yaml": "sizes:\n  allowed: [small, medium]\n",
        "aws/regions.json": json.dumps({"zones": ["eu-west-1a", "eu-west-1b"]}),
    })
    private = evaluate(directory, plans["private"])
    assert private.outcome is PolicyOutcome.PASSED, errors(private)
    public = evaluate(directory, plans["public"])
    messages = sorted(f.message for f in public.failures)
    assert "terraform_data.instance[2]: zone eu-west-1c is not allowed" in messages
    assert "terraform_data.instance[0]: size huge is not allowed" in messages
    assert len(messages) == 5 + 1  # five huge instances; one of them (index 2) in eu-west-1c


def test_data_documents_that_disagree_or_do_not_parse_are_load_errors(
        plans: dict[str, str], policy_dir: Callable[..., Path]) -> None:
    directory = policy_dir({
        "main.rego": PUBLIC_BUCKET,
        "a.yaml": "limits:\n  max: 3\n",
        "b.json": '{"limits": {"max": 4}}',
        "c.yml": "limits:\n  min: [1,\n",
    })
    result = evaluate(directory, plans["private"])
    assert result.outcome is PolicyOutcome.ERROR
    problems = errors(result)
    assert "b.json: data.limits.max is also given a different value by a.yaml" in problems
    assert any(p.startswith("c.yml:3:") and "invalid YAML" in p for p in problems), problems


def test_a_syntax_error_names_the_file_and_line(plans: dict[str, str], policy_dir: Callable[..., Path]) -> None:
    broken = "package main\nimport rego.v1\n\n# résumé: the message is\ndeny contains msg if {\n    msg := \n}\n"
    result = evaluate(policy_dir({"main.rego": PUBLIC_BUCKET, "team/broken.rego": broken}), plans["public"])
    assert result.outcome is PolicyOutcome.ERROR
    assert result.failures == ()
    assert errors(result) == ["team/broken.rego:6:9: Invalid assignment operator"]


def test_rego_v0_partial_sets_are_refused_with_file_and_line(
        plans: dict[str, str], policy_dir: Callable[..., Path]) -> None:
    v0 = 'package main\n\ndeny[msg] {\n    input.resource_changes[_].type == "terraform_data"\n    msg := "v0"\n}\n'
    result = evaluate(policy_dir({"old.rego": v0}), plans["public"])
    assert result.outcome is PolicyOutcome.ERROR
    assert errors(result) == [
        "old.rego:3:1: `deny[…]` is Rego v0 partial-set syntax; in Rego v1 write `deny contains msg if { … }`"]


def test_rego_v0_bodies_without_if_are_refused_with_file_and_line(
        plans: dict[str, str], policy_dir: Callable[..., Path]) -> None:
    v0 = ('package main\nimport rego.v1\n\npublic {\n    input.variables.bucket_acl.value == "public-read"\n}\n\n'
          'deny contains "public bucket" if public\n')
    result = evaluate(policy_dir({"old.rego": v0}), plans["public"])
    assert result.outcome is PolicyOutcome.ERROR
    assert errors(result) == [
        "old.rego:4:8: a rule body without `if` is Rego v0 syntax; in Rego v1 write `<rule head> if { … }`"]


def test_a_check_rule_that_is_not_a_set_is_an_error_at_its_line(
        plans: dict[str, str], policy_dir: Callable[..., Path]) -> None:
    result = evaluate(policy_dir({"main.rego": 'package main\nimport rego.v1\n\ndeny := "no"\n'}), plans["public"])
    assert result.outcome is PolicyOutcome.ERROR
    assert errors(result) == [
        "main.rego:4: `deny` in package main must be a set of messages (`deny contains msg if { … }`), not a string"]


def test_an_unknown_function_is_a_load_error_at_its_line(
        plans: dict[str, str], policy_dir: Callable[..., Path]) -> None:
    policy = 'package main\nimport rego.v1\n\ndeny contains "x" if {\n    any([true])\n}\n'
    result = evaluate(policy_dir({"main.rego": policy}), plans["public"])
    assert result.outcome is PolicyOutcome.ERROR
    assert errors(result) == ["main.rego:5: Function not found: any"]


def test_a_builtin_error_during_evaluation_fails_closed(
        plans: dict[str, str], policy_dir: Callable[..., Path]) -> None:
    policy = ('package main\nimport rego.v1\n\ndeny contains msg if {\n    some rc in input.resource_changes\n'
              '    msg := sprintf("%d", [to_number(rc.change.after.input.size)])\n}\n')
    result = evaluate(policy_dir({"main.rego": policy}), plans["public"])
    assert result.outcome is PolicyOutcome.ERROR
    assert result.failures == ()
    assert errors(result) and all(e.startswith("while evaluating the plan: ") for e in errors(result))


def test_an_empty_or_missing_directory_is_an_error_not_a_pass(
        plans: dict[str, str], policy_dir: Callable[..., Path], tmp_path: Path) -> None:
    empty = policy_dir({"README.md": "policies go here\n", "limits.yaml": "max: 1\n"})
    result = evaluate(empty, plans["private"])
    assert result.outcome is PolicyOutcome.ERROR
    assert errors(result) == [f"no .rego files in {empty}: a policy set without policies would pass every plan"]
    missing = evaluate(tmp_path / "nowhere", plans["private"])
    assert missing.outcome is PolicyOutcome.ERROR
    assert errors(missing) == [f"policy directory {tmp_path / 'nowhere'} does not exist or is not a directory"]


def test_a_plan_that_is_not_json_is_an_error(policy_dir: Callable[..., Path]) -> None:
    result = evaluate(policy_dir({"main.rego": PUBLIC_BUCKET}), "Error: no plan file")
    assert result.outcome is PolicyOutcome.ERROR
    assert errors(result)[0].startswith("the plan is not JSON")


def test_only_the_parts_of_the_plan_the_policies_read_are_handed_over(
        plans: dict[str, str], policy_dir: Callable[..., Path]) -> None:
    assert load_policy_set(policy_dir({"main.rego": PUBLIC_BUCKET})).input_keys == {"resource_changes"}
    whole = """\
package main
import rego.v1

deny contains "public bucket variable" if {
    plan := input
    plan.variables.bucket_acl.value == "public-read"
}
"""
    compiled = load_policy_set(policy_dir({"main.rego": whole}, name="whole"))
    assert compiled.input_keys is None
    assert [f.message for f in compiled.evaluate(plans["public"]).failures] == ["public bucket variable"]
    assert compiled.evaluate(plans["private"]).passed


def test_a_compiled_set_is_reused_until_its_files_change(
        plans: dict[str, str], policy_dir: Callable[..., Path]) -> None:
    directory = policy_dir({"main.rego": PUBLIC_BUCKET})
    cache = PolicySetCache()
    first = cache.get(directory)
    assert cache.get(directory) is first
    (directory / "main.rego").write_text(MANY_INSTANCES)
    second = cache.get(directory)
    assert second is not first
    result = second.evaluate(plans["public"])
    assert result.passed and len(result.warnings) == 1


def test_configured_policy_sets_judge_one_plan(plans: dict[str, str], policy_dir: Callable[..., Path]) -> None:
    buckets = policy_dir({"main.rego": PUBLIC_BUCKET}, name="buckets")
    counts = policy_dir({"count.rego": MANY_INSTANCES.replace("package main", "package counts")}, name="counts")
    policies = parse_policies({"owners": {"users": ["alice"]}, "policy_sets": [
        {"name": "no-public-buckets", "path": str(buckets), "source": "local"},
        {"name": "instance-count", "path": str(counts), "source": "local", "namespaces": ["counts"]},
    ]})
    results = evaluate_policy_sets(policies.policy_sets, plans["public"])
    assert [(r.policy_set, r.outcome) for r in results] == [
        ("no-public-buckets", PolicyOutcome.FAILED), ("instance-count", PolicyOutcome.PASSED)]
    assert results[1].warnings[0].message == "more than 3 instances"
    assert overall_outcome(results) is PolicyOutcome.FAILED
    private = evaluate_policy_sets(policies.policy_sets, json.loads(plans["private"]))
    assert overall_outcome(private) is PolicyOutcome.PASSED


def test_the_forms_of_rego_v1_load_without_complaint(plans: dict[str, str], policy_dir: Callable[..., Path]) -> None:
    policy = """\
package main

# No `import rego.v1`: v1 is the default.
allowed_zones := {
    "eu-west-1a",
    "eu-west-1b",
}

limits := {"huge": 0, "small": 10}

default max_instances := 3

zone_of(rc) := rc.change.after.input.zone

size_rank(size) := 2 if {
    size == "huge"
} else := 1 if {
    size == "medium"
} else := 0

instances := [rc |
    some rc in input.resource_changes
    rc.change.after.input.kind == "instance"
]

deny contains {"msg": sprintf("%s: zone %s", [rc.address, zone_of(rc)]), "zone": zone_of(rc)} if {
    some rc in instances
    not zone_of(rc) in allowed_zones
}

deny contains msg if {
    count(instances) > max_instances
    every rc in instances { size_rank(rc.change.after.input.size) >= 2 }
    msg := sprintf("%d huge instances", [count(instances)])
}

warn contains "no limit for huge" if limits.huge == 0
"""
    compiled = load_policy_set(policy_dir({"main.rego": policy}))
    assert compiled.errors == ()
    result = compiled.evaluate(plans["public"])
    assert result.outcome is PolicyOutcome.FAILED, errors(result)
    assert sorted(f.message for f in result.failures) == [
        "5 huge instances", "terraform_data.instance[2]: zone eu-west-1c"]
    assert [w.message for w in result.warnings] == ["no limit for huge"]
    assert compiled.evaluate(plans["private"]).failures == ()


def test_two_values_for_one_rule_fail_closed(plans: dict[str, str], policy_dir: Callable[..., Path]) -> None:
    policy = 'package main\nimport rego.v1\n\nlimit := 1\nlimit := 2\n\ndeny contains "over" if limit > 0\n'
    result = evaluate(policy_dir({"main.rego": policy}), plans["private"])
    assert result.outcome is PolicyOutcome.ERROR
    assert errors(result) == ["complete rules must not produce multiple outputs"]


def test_a_boolean_deny_fails_when_true(plans: dict[str, str], policy_dir: Callable[..., Path]) -> None:
    policy = 'package main\nimport rego.v1\n\ndeny if input.variables.bucket_acl.value == "public-read"\n'
    directory = policy_dir({"main.rego": policy})
    assert [f.message for f in evaluate(directory, plans["public"]).failures] == ["main.deny is true"]
    assert evaluate(directory, plans["private"]).passed
