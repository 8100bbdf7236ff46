"""Terraform versions and version constraints as written, by Terraform's own rules (hashicorp/go-version).

Pure parsing and comparison: the config validates `terraform_version` with it, and
`atlas.runtime.tfversions` chooses a binary with it. `~>` lets only the rightmost written
component grow, so `~> 1.6.0` means `>= 1.6.0, < 1.7.0`, `~> 1.6` means `>= 1.6.0, < 2.0.0` and
`~> 1` means `>= 1.0.0`. A pre-release such as `1.12.0-beta1` matches only when a constraint names
it exactly (`1.12.0-beta1` or `= 1.12.0-beta1`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

# go-version's grammar, minus the dash-less pre-release (`1.2beta`) that no terraform release uses.
VERSION_PATTERN = r"v?(\d+(?:\.\d+)*)(?:-([0-9A-Za-z~-]+(?:\.[0-9A-Za-z~-]+)*))?(?:\+[0-9A-Za-z~.-]+)?"
VERSION = re.compile(VERSION_PATTERN)
_CONDITION = re.compile(rf"(~>|!=|>=|<=|>|<|=)?\s*({VERSION_PATTERN})")

_EXAMPLES = 'write a version such as 1.11.4, or a constraint such as "~> 1.11.0" or ">= 1.5, < 2"'


class VersionSyntaxError(ValueError):
    """A version or constraint that is not written in Terraform's syntax; the message says what to write."""


@functools.total_ordering
@dataclass(frozen=True, eq=False)
class Version:
    """A terraform version: numeric components (at least three) and an optional pre-release."""

    numbers: tuple[int, ...]
    prerelease: str = ""
    written: int = 3
    """How many numbers the text had; `~>` lets the last of them grow."""

    @classmethod
    def parse(cls, text: str) -> Version:
        """`1.11.4`, `v1.11.4`, `1.11` (= 1.11.0) or `1.12.0-beta1`; ValueError otherwise."""
        found = VERSION.fullmatch(text.strip())
        if found is None:
            raise VersionSyntaxError(f"{text!r} is not a version")
        written = [int(part) for part in found.group(1).split(".")]
        padded = written + [0] * (3 - len(written))
        return cls(tuple(padded), found.group(2) or "", len(written))

    def __str__(self) -> str:
        numbers = ".".join(str(number) for number in self.numbers)
        return f"{numbers}-{self.prerelease}" if self.prerelease else numbers

    def _identity(self) -> tuple[tuple[int, ...], str]:
        numbers = list(self.numbers)
        while len(numbers) > 3 and numbers[-1] == 0:
            numbers.pop()
        return tuple(numbers), self.prerelease

    def __hash__(self) -> int:
        return hash(self._identity())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._identity() == other._identity()

    def __lt__(self, other: Version) -> bool:
        return _compare(self, other) < 0


def _compare(left: Version, right: Version) -> int:
    """-1, 0 or 1 by semantic-version precedence; a release is newer than its own pre-releases."""
    width = max(len(left.numbers), len(right.numbers))
    left_numbers = left.numbers + (0,) * (width - len(left.numbers))
    right_numbers = right.numbers + (0,) * (width - len(right.numbers))
    if left_numbers != right_numbers:
        return -1 if left_numbers < right_numbers else 1
    if left.prerelease == right.prerelease:
        return 0
    if not left.prerelease:
        return 1
    if not right.prerelease:
        return -1
    return _compare_prereleases(left.prerelease.split("."), right.prerelease.split("."))


def _compare_prereleases(left: list[str], right: list[str]) -> int:
    for mine, theirs in zip(left, right, strict=False):
        if mine == theirs:
            continue
        if mine.isdigit() and theirs.isdigit():
            return -1 if int(mine) < int(theirs) else 1
        if mine.isdigit() != theirs.isdigit():
            return -1 if mine.isdigit() else 1
        return -1 if mine < theirs else 1
    return (len(left) > len(right)) - (len(left) < len(right))


class Operator(StrEnum):
    """The operators of Terraform's version constraints."""

    EQUAL = "="
    NOT_EQUAL = "!="
    GREATER = ">"
    GREATER_OR_EQUAL = ">="
    LESS = "<"
    LESS_OR_EQUAL = "<="
    PESSIMISTIC = "~>"


@dataclass(frozen=True)
class Condition:
    """One comma-separated part of a constraint, such as `>= 1.5`."""

    operator: Operator
    version: Version

    def allows(self, candidate: Version) -> bool:
        """Whether `candidate` meets this condition, exactly as go-version's `Constraint.Check` decides."""
        wanted = self.version
        if self.operator is Operator.EQUAL:
            return candidate == wanted
        if self.operator is Operator.NOT_EQUAL:
            return candidate != wanted
        if not _prerelease_comparable(candidate, wanted):
            return False
        order = _compare(candidate, wanted)
        if self.operator is Operator.GREATER:
            return order > 0
        if self.operator is Operator.GREATER_OR_EQUAL:
            return order >= 0
        if self.operator is Operator.LESS:
            return order < 0
        if self.operator is Operator.LESS_OR_EQUAL:
            return order <= 0
        return _pessimistic_allows(candidate, wanted)

    def __str__(self) -> str:
        return f"{self.operator} {self.version}"


def _prerelease_comparable(candidate: Version, wanted: Version) -> bool:
    """go-version's `prereleaseCheck`: a pre-release compares only with a pre-release of its own numbers."""
    if candidate.prerelease and wanted.prerelease:
        return candidate.numbers == wanted.numbers
    return not candidate.prerelease


def _pessimistic_allows(candidate: Version, wanted: Version) -> bool:
    """go-version's `constraintPessimistic`: at least `wanted`, and the same in all but its last written number."""
    if wanted.prerelease and not candidate.prerelease:
        return False
    if _compare(candidate, wanted) < 0:
        return False
    width = len(wanted.numbers)
    if width > len(candidate.numbers):
        return False
    if candidate.numbers[: wanted.written - 1] != wanted.numbers[: wanted.written - 1]:
        return False
    return wanted.numbers[width - 1] <= candidate.numbers[width - 1]


@dataclass(frozen=True)
class VersionConstraint:
    """A version or a constraint as written (`1.11.4`, `~> 1.6.0`, `>= 1.5, < 2`): all its conditions must hold."""

    text: str
    conditions: tuple[Condition, ...]

    @classmethod
    def parse(cls, text: str) -> VersionConstraint:
        """Parse Terraform's constraint syntax; VersionSyntaxError says what is wrong and what to write."""
        conditions = []
        for part in text.split(","):
            found = _CONDITION.fullmatch(part.strip())
            if found is None:
                reason = "an empty condition" if not part.strip() else f"{part.strip()!r} is not a condition"
                raise VersionSyntaxError(
                    f'"{text}" is not a terraform version or constraint ({reason}); {_EXAMPLES}'
                )
            operator = Operator(found.group(1) or "=")
            version = Version.parse(found.group(2))
            if version.prerelease and operator is Operator.PESSIMISTIC:
                raise VersionSyntaxError(
                    f'"{text}": a pre-release such as {version} is chosen only when named exactly, '
                    f'as "{version}", so "~> {version}" would match no terraform'
                )
            conditions.append(Condition(operator, version))
        return cls(text.strip(), tuple(conditions))

    @property
    def exact(self) -> Version | None:
        """The one version this names, when it is a bare version or `= version`."""
        if len(self.conditions) == 1 and self.conditions[0].operator is Operator.EQUAL:
            return self.conditions[0].version
        return None

    def matches(self, candidate: Version) -> bool:
        """Whether `candidate` meets every condition; a pre-release must also be named by an `=`."""
        if candidate.prerelease and not any(
            condition.operator is Operator.EQUAL and condition.version == candidate for condition in self.conditions
        ):
            return False
        return all(condition.allows(candidate) for condition in self.conditions)

    def newest(self, candidates: Iterable[Version]) -> Version | None:
        """The newest candidate that matches, or None."""
        return max((candidate for candidate in candidates if self.matches(candidate)), default=None)

    def __str__(self) -> str:
        return self.text
