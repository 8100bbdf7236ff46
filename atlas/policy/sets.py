"""The `policies:` block of repos.yaml, in Atlantis's shape, validated into policy sets.

    policies:
      conftest_version: v0.46.0     # accepted, reported as not used (see `PolicySets.notices`)
      owners: {users: [alice], teams: [platform]}
      approve_count: 1              # default for every set
      policy_sets:
        - name: no-public-buckets
          path: /etc/atlas/policies/buckets
          source: local
          owners: {users: [bob]}
          approve_count: 2
          prevent_self_approve: true
          namespaces: [main, buckets]   # atlas: the packages evaluated (conftest's --namespace)

`parse_policies` is a pure function from the parsed YAML to a model; every refusal names its key
path (`policies.policy_sets[0].source: ...`).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError, field_validator
from pydantic_core import PydanticCustomError

DEFAULT_NAMESPACES = ("main",)
"""The package conftest evaluates unless told otherwise."""

_NAMESPACE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class PolicyConfigError(ValueError):
    """The `policies:` block is invalid; `problems` holds one message per key path."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class PolicyOwners(BaseModel):
    """Who may approve failing policies: GitHub logins, and team slugs whose members may."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    users: tuple[StrictStr, ...] = ()
    teams: tuple[StrictStr, ...] = ()

    def includes(self, user: str, user_teams: tuple[str, ...] | list[str] = ()) -> bool:
        """Whether the user is an owner, by login or by a team (both compared case-insensitively,
        as GitHub treats logins and slugs)."""
        login = user.casefold()
        if any(owner.casefold() == login for owner in self.users):
            return True
        teams = {team.casefold() for team in user_teams}
        return any(team.casefold() in teams for team in self.teams)


class PolicySet(BaseModel):
    """One directory of Rego policies, who may approve its failures and how many approvals it needs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: StrictStr
    path: StrictStr
    source: StrictStr
    owners: PolicyOwners = Field(default_factory=PolicyOwners)
    approve_count: StrictInt | None = None
    """None in the raw block means the top-level `approve_count`; `parse_policies` fills it in."""
    prevent_self_approve: StrictBool = False
    namespaces: tuple[StrictStr, ...] = DEFAULT_NAMESPACES

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.strip():
            raise PydanticCustomError("policy_name", "must not be empty")
        return value

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.strip():
            raise PydanticCustomError("policy_path", "must not be empty")
        return value

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        if value != "local":
            raise PydanticCustomError(
                "policy_source",
                f"source {value!r} is not supported: atlas loads policy sets from a directory on the server "
                "(source: local); fetch remote policies onto the server and point `path` at them",
            )
        return value

    @field_validator("approve_count")
    @classmethod
    def _approve_count(cls, value: int | None) -> int | None:
        return value if value is None else _at_least_one(value)

    @field_validator("namespaces")
    @classmethod
    def _namespaces(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise PydanticCustomError("namespaces", "must name at least one Rego package")
        for namespace in value:
            if not _NAMESPACE.match(namespace):
                raise PydanticCustomError(
                    "namespaces", f"{namespace!r} is not a Rego package name (like main or terraform.aws)")
        return value

    @property
    def required_approvals(self) -> int:
        return self.approve_count or 1


class PolicySets(BaseModel):
    """The validated `policies:` block."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    conftest_version: StrictStr | None = None
    owners: PolicyOwners = Field(default_factory=PolicyOwners)
    approve_count: StrictInt = 1
    policy_sets: tuple[PolicySet, ...]
    notices: tuple[str, ...] = ()
    """Things the operator should know that are not errors (to log at start-up)."""

    @field_validator("approve_count")
    @classmethod
    def _approve_count(cls, value: int) -> int:
        return _at_least_one(value)

    @field_validator("policy_sets")
    @classmethod
    def _not_empty(cls, value: tuple[PolicySet, ...]) -> tuple[PolicySet, ...]:
        if not value:
            raise PydanticCustomError("policy_sets", "must declare at least one policy set")
        return value

    def get(self, name: str) -> PolicySet | None:
        return next((s for s in self.policy_sets if s.name == name), None)

    def can_approve(self, policy_set: PolicySet, user: str, user_teams: tuple[str, ...] | list[str] = (),
                    *, pull_author: str | None = None) -> bool:
        """Whether `user` may approve `policy_set`'s failures: a top-level owner or an owner of the set,
        and not the pull request's author when the set has `prevent_self_approve`."""
        if policy_set.prevent_self_approve and pull_author is not None and user.casefold() == pull_author.casefold():
            return False
        return self.owners.includes(user, user_teams) or policy_set.owners.includes(user, user_teams)

    def approvers(self, policy_set: PolicySet) -> PolicyOwners:
        """Everyone who may approve the set (for a refusal that says who can unblock it)."""
        return PolicyOwners(
            users=tuple(dict.fromkeys(self.owners.users + policy_set.owners.users)),
            teams=tuple(dict.fromkeys(self.owners.teams + policy_set.owners.teams)),
        )


def _at_least_one(value: int) -> int:
    if value < 1:
        raise PydanticCustomError(
            "approve_count",
            f"must be at least 1 (got {value}); a set whose failures need no approval would gate nothing")
    return value


def parse_policies(raw: object, *, base_dir: str | None = None, key: str = "policies") -> PolicySets:
    """Validate the raw `policies:` mapping of repos.yaml.

    Relative `path`s are resolved against `base_dir` (the directory of repos.yaml) and refused when
    it is not given: a path relative to the server's working directory would change meaning with it.
    Raises `PolicyConfigError` with every problem found, each prefixed by its key path.
    """
    if not isinstance(raw, Mapping):
        raise PolicyConfigError([f"{key}: must be a mapping with `policy_sets` (got {type(raw).__name__})"])
    try:
        parsed = PolicySets.model_validate(dict(raw))
    except ValidationError as err:
        raise PolicyConfigError([_problem(key, error) for error in err.errors()]) from None

    problems: list[str] = []
    seen: dict[str, int] = {}
    sets: list[PolicySet] = []
    for index, policy_set in enumerate(parsed.policy_sets):
        where = f"{key}.policy_sets[{index}]"
        if policy_set.name in seen:
            problems.append(f"{where}.name: {policy_set.name!r} is already the name of "
                            f"{key}.policy_sets[{seen[policy_set.name]}]; names must be unique")
        seen.setdefault(policy_set.name, index)
        path = PurePosixPath(policy_set.path)
        if not path.is_absolute():
            if base_dir is None:
                problems.append(f"{where}.path: {policy_set.path!r} is relative; give an absolute path")
            else:
                path = PurePosixPath(base_dir) / path
        sets.append(policy_set.model_copy(update={
            "path": str(path),
            "approve_count": policy_set.approve_count or parsed.approve_count,
            "namespaces": tuple(dict.fromkeys(policy_set.namespaces)),
        }))
    if problems:
        raise PolicyConfigError(problems)

    notices: list[str] = []
    if parsed.conftest_version is not None:
        notices.append(
            f"{key}.conftest_version: {parsed.conftest_version!r} is not used: atlas evaluates Rego in-process "
            "(regopy) and downloads no conftest binary; policies must be Rego v1"
        )
    return parsed.model_copy(update={"policy_sets": tuple(sets), "notices": tuple(notices)})


def _problem(key: str, error: Mapping[str, Any]) -> str:
    path = key
    for part in error["loc"]:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{path}: unknown key"
    if kind == "missing":
        return f"{path}: is required"
    got = error.get("input")
    message = str(error["msg"])
    if kind in ("string_type", "int_type", "bool_type", "tuple_type", "model_type", "dict_type"):
        message = f"{message} (got {got!r})"
    return f"{path}: {message}"


def namespaces_from_extra_args(extra_args: Sequence[str], default: tuple[str, ...] = DEFAULT_NAMESPACES,
                               *, key: str = "policy_check.extra_args") -> tuple[str, ...] | None:
    """The packages a `policy_check` step's conftest-style `extra_args` select: `--namespace NAME`
    (`-n`, `--namespace=NAME`, repeatable) or `--all-namespaces` (None: every package), else `default`.

    Atlantis hands these to conftest; atlas evaluates in-process, so any other argument (a policy
    path, `--update`, ...) would do nothing and is refused by name.
    """
    words: list[str] = []
    for arg in extra_args:
        words.extend(shlex.split(arg))
    namespaces: list[str] = []
    every = False
    index = 0
    while index < len(words):
        word = words[index]
        if word == "--all-namespaces":
            every = True
        elif word in ("--namespace", "-n"):
            if index + 1 >= len(words):
                raise PolicyConfigError([f"{key}: {word} needs a package name after it"])
            index += 1
            namespaces.append(words[index])
        elif word.startswith("--namespace="):
            namespaces.append(word.removeprefix("--namespace="))
        elif word in ("-p", "--policy") or word.startswith("--policy="):
            raise PolicyConfigError([f"{key}: {word} is not supported: a policy set's directory is its `path` "
                                     "in repos.yaml's policies.policy_sets"])
        else:
            raise PolicyConfigError([f"{key}: {word!r} is not supported: atlas evaluates Rego in-process and "
                                     "understands only --namespace NAME and --all-namespaces"])
        index += 1
    for namespace in namespaces:
        if not _NAMESPACE.match(namespace):
            raise PolicyConfigError([f"{key}: {namespace!r} is not a Rego package name"])
    if every:
        return None
    return tuple(dict.fromkeys(namespaces)) or default
