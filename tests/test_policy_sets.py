"""The repos.yaml `policies:` block: Atlantis's shape, validated with key paths in every refusal."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from atlas.policy.sets import PolicyConfigError, PolicySets, namespaces_from_extra_args, parse_policies

ATLANTIS_EXAMPLE = """\
policies:
  conftest_version: v0.46.0
  owners:
    users: [nishkrishnan]
    teams: [platform]
  policy_sets:
    - name: deny_null_resource
      path: /policies/deny_null_resource/
      source: local
    - name: deny_local_exec
      path: /policies/deny_local_exec/
      source: local
      approve_count: 2
      prevent_self_approve: true
      owners:
        users: [pseudomorph]
"""


def problems(raw: Any, **options: Any) -> list[str]:
    with pytest.raises(PolicyConfigError) as caught:
        parse_policies(raw, **options)
    return caught.value.problems


def sets_of(**policy_set: Any) -> dict[str, Any]:
    return {"policy_sets": [{"name": "s", "path": "/p", "source": "local", **policy_set}]}


def test_atlantis_shape_is_accepted_with_its_defaults() -> None:
    policies = parse_policies(yaml.safe_load(ATLANTIS_EXAMPLE)["policies"])
    first, second = policies.policy_sets
    assert (first.name, first.path, first.source) == ("deny_null_resource", "/policies/deny_null_resource", "local")
    assert first.approve_count == 1 and first.prevent_self_approve is False
    assert first.namespaces == ("main",)
    assert second.approve_count == 2 and second.prevent_self_approve is True
    assert second.owners.users == ("pseudomorph",)
    assert policies.owners.teams == ("platform",)


def test_conftest_version_is_accepted_and_reported_as_not_used() -> None:
    policies = parse_policies(yaml.safe_load(ATLANTIS_EXAMPLE)["policies"])
    assert policies.conftest_version == "v0.46.0"
    assert policies.notices == (
        "policies.conftest_version: 'v0.46.0' is not used: atlas evaluates Rego in-process (regopy) and downloads "
        "no conftest binary; policies must be Rego v1",)
    assert parse_policies(sets_of()).notices == ()


def test_a_top_level_approve_count_is_the_default_of_every_set() -> None:
    policies = parse_policies({"approve_count": 3, **sets_of()})
    assert policies.policy_sets[0].approve_count == 3
    assert parse_policies({"approve_count": 3, **sets_of(approve_count=1)}).policy_sets[0].approve_count == 1


def test_a_source_other_than_local_is_refused_naming_it() -> None:
    assert problems(sets_of(source="github")) == [
        "policies.policy_sets[0].source: source 'github' is not supported: atlas loads policy sets from a directory "
        "on the server (source: local); fetch remote policies onto the server and point `path` at them"]


def test_missing_and_unknown_keys_are_named_by_their_path() -> None:
    assert problems({"policy_sets": [{"path": "/p", "source": "local", "aprove_count": 2}]}) == [
        "policies.policy_sets[0].name: is required",
        "policies.policy_sets[0].aprove_count: unknown key",
    ]
    assert problems({}) == ["policies.policy_sets: is required"]
    assert problems({"policy_sets": []}) == ["policies.policy_sets: must declare at least one policy set"]
    assert problems({"owner": {}, **sets_of()}) == ["policies.owner: unknown key"]


def test_wrong_types_are_refused_with_the_value_given() -> None:
    assert problems(sets_of(prevent_self_approve="yes", owners={"users": [1234]})) == [
        "policies.policy_sets[0].owners.users[0]: Input should be a valid string (got 1234)",
        "policies.policy_sets[0].prevent_self_approve: Input should be a valid boolean (got 'yes')",
    ]
    assert problems("policy_sets") == ["policies: must be a mapping with `policy_sets` (got str)"]


def test_an_approve_count_below_one_is_refused() -> None:
    assert problems(sets_of(approve_count=0)) == [
        "policies.policy_sets[0].approve_count: must be at least 1 (got 0); a set whose failures need no approval "
        "would gate nothing"]
    assert problems({"approve_count": -1, **sets_of()})[0].startswith("policies.approve_count: must be at least 1")


def test_set_names_must_be_unique() -> None:
    raw = {"policy_sets": [{"name": "a", "path": "/a", "source": "local"},
                           {"name": "a", "path": "/b", "source": "local"}]}
    assert problems(raw) == [
        "policies.policy_sets[1].name: 'a' is already the name of policies.policy_sets[0]; names must be unique"]


def test_relative_paths_resolve_against_the_config_directory_or_are_refused() -> None:
    assert problems(sets_of(path="policies/buckets")) == [
        "policies.policy_sets[0].path: 'policies/buckets' is relative; give an absolute path"]
    policies = parse_policies(sets_of(path="policies/buckets"), base_dir="/etc/atlas")
    assert policies.policy_sets[0].path == "/etc/atlas/policies/buckets"


def test_namespaces_must_be_package_names() -> None:
    assert parse_policies(sets_of(namespaces=["main", "terraform.aws"])).policy_sets[0].namespaces == (
        "main", "terraform.aws")
    assert problems(sets_of(namespaces=["no-dashes"])) == [
        "policies.policy_sets[0].namespaces: 'no-dashes' is not a Rego package name (like main or terraform.aws)"]
    assert problems(sets_of(namespaces=[])) == [
        "policies.policy_sets[0].namespaces: must name at least one Rego package"]


def test_owners_of_the_set_and_top_level_owners_may_approve() -> None:
    policies: PolicySets = parse_policies(yaml.safe_load(ATLANTIS_EXAMPLE)["policies"])
    null_set, exec_set = policies.policy_sets
    assert policies.can_approve(null_set, "NishKrishnan")  # logins compare case-insensitively
    assert policies.can_approve(null_set, "carol", ["Platform"])
    assert not policies.can_approve(null_set, "pseudomorph")
    assert policies.can_approve(exec_set, "pseudomorph")
    assert policies.approvers(exec_set).users == ("nishkrishnan", "pseudomorph")


def test_prevent_self_approve_refuses_the_pull_request_author() -> None:
    policies = parse_policies(yaml.safe_load(ATLANTIS_EXAMPLE)["policies"])
    null_set, exec_set = policies.policy_sets
    assert not policies.can_approve(exec_set, "pseudomorph", pull_author="Pseudomorph")
    assert policies.can_approve(null_set, "nishkrishnan", pull_author="nishkrishnan")


def test_conftest_namespace_arguments_of_a_policy_check_step_select_packages() -> None:
    assert namespaces_from_extra_args([]) == ("main",)
    assert namespaces_from_extra_args(["--namespace", "buckets", "-n sizes", "--namespace=buckets"]) == (
        "buckets", "sizes")
    assert namespaces_from_extra_args(["--all-namespaces"]) is None


def test_conftest_arguments_that_would_do_nothing_are_refused_by_name() -> None:
    with pytest.raises(PolicyConfigError) as caught:
        namespaces_from_extra_args(["-p /home/atlantis/conftest_policies/", "--all-namespaces"])
    assert caught.value.problems == [
        "policy_check.extra_args: -p is not supported: a policy set's directory is its `path` in repos.yaml's "
        "policies.policy_sets"]
    with pytest.raises(PolicyConfigError) as caught:
        namespaces_from_extra_args(["--update", "s3::https://s3.amazonaws.com/bucket/foo"])
    assert caught.value.problems == [
        "policy_check.extra_args: '--update' is not supported: atlas evaluates Rego in-process and understands "
        "only --namespace NAME and --all-namespaces"]


POLICIES = "policies:\n  policy_sets:\n    - {name: s, path: p, source: local}\n"


@pytest.mark.parametrize(("text", "message"), [
    pytest.param("repos:\n- id: /.*/\n  apply_requirements: [policies_passed]\n",
                 "repos.yaml: repos[0].apply_requirements: policies_passed needs policy sets to check, and this "
                 "file has no `policies:` block", id="no-policy-sets"),
    pytest.param("repos:\n- id: /.*/\n  apply_requirements: [approved, policies_passed]\n  policy_check: false\n"
                 + POLICIES,
                 "repos.yaml: repos[0].apply_requirements: policies_passed cannot hold where `policy_check: false`",
                 id="policy-check-off"),
    pytest.param("repos:\n- id: /.*/\n- id: /.*/\n  plan_requirements: [policies_passed]\n" + POLICIES,
                 "repos.yaml: repos[1].plan_requirements: policies_passed can only be an apply requirement",
                 id="plan-requirement"),
])
def test_a_repos_yaml_requiring_policies_passed_where_nothing_can_judge_them_is_refused(
    text: str, message: str,
) -> None:
    from atlas.config.raw import ConfigError
    from atlas.config.server import parse_server_config

    with pytest.raises(ConfigError) as refused:
        parse_server_config(text, "repos.yaml")
    assert str(refused.value).startswith(message), str(refused.value)


def test_a_repos_yaml_requiring_policies_passed_with_policy_sets_is_valid() -> None:
    from atlas.config.server import parse_server_config

    config = parse_server_config("repos:\n- id: /.*/\n  apply_requirements: [policies_passed]\n" + POLICIES,
                                 "repos.yaml")
    assert config.repos[0].apply_requirements == ("policies_passed",)
