"""Whether the plan made after merge makes the same changes as the plan reviewed on the pull request.

With apply-on-merge atlas re-plans a project at the merge commit and applies only when the new
plan changes what reviewers approved and nothing else. Everything here is a pure function of
`terraform show -json`: `planned_changes` reads what a plan would do, `compare_plans` finds what
differs, and `attribute_differences`, `format_path`, `format_value` and `describe_actions` say it
in words for the comment that asks a human to decide.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, field_serializer

STORED_FORMAT_VERSION = 1
"""The version of the JSON that `dump_changes` writes; `load_changes` refuses any other."""


class Unknown(Enum):
    """A value terraform will know only after apply (`(known after apply)` in its plan)."""

    UNKNOWN = "unknown"

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Final = Unknown.UNKNOWN


class Absent(Enum):
    """Where one plan has a map key or attribute that the other plan has not."""

    ABSENT = "absent"

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Final = Absent.ABSENT


@dataclass(frozen=True)
class Sensitive:
    """A sensitive value, kept only as a digest: plans compare by value, yet the value is never held.

    The digest covers the resource address and attribute path as well as the value, so equal
    secrets in different places do not share a digest.
    """

    digest: str = field(repr=False)

    def __repr__(self) -> str:
        return "Sensitive(...)"


class PlannedChange(BaseModel):
    """What a plan would do to one resource or root output: its actions and the values it would leave.

    `values` is terraform's planned `after` value, with `UNKNOWN` wherever terraform will know the
    value only after apply and a `Sensitive` digest wherever the value is sensitive. An output's
    value sits under the key `value`.
    """

    model_config = ConfigDict(frozen=True)

    address: str
    actions: tuple[str, ...]
    values: dict[str, Any]

    @field_serializer("values")
    def _stored_values(self, values: dict[str, Any]) -> Any:
        # The markers are not JSON; serialising them as tagged objects keeps a dump lossless.
        return _encode(values)


@dataclass(frozen=True)
class AttributeDifference:
    """One attribute path whose planned value differs: what was reviewed and what would happen now."""

    path: tuple[str | int, ...]
    reviewed: Any
    new: Any

    @property
    def path_text(self) -> str:
        return format_path(self.path)


class PlanDifference(BaseModel):
    """How the plan made after merge differs from the reviewed plan, each list in address order."""

    only_reviewed: list[PlannedChange]
    only_new: list[PlannedChange]
    changed: list[tuple[PlannedChange, PlannedChange]]

    @property
    def same(self) -> bool:
        """Whether both plans make exactly the same changes, so applying the new plan applies what was reviewed."""
        return not (self.only_reviewed or self.only_new or self.changed)


def planned_changes(show_json: Mapping[str, Any]) -> dict[str, PlannedChange]:
    """The changes a plan would make, keyed by address, from the JSON of `terraform show -json PLANFILE`.

    Resources that stay as they are (`no-op`) and data sources that are only read are left out;
    root outputs that change are included as `output.NAME`. A resource being imported has `import`
    before its other actions, as in `plans.summarise_plan`.
    """
    changes: dict[str, PlannedChange] = {}
    for resource in show_json.get("resource_changes") or []:
        change = resource.get("change") or {}
        importing = change.get("importing") is not None
        actions = tuple(str(action) for action in change.get("actions") or () if action not in ("no-op", "read"))
        if resource.get("mode", "managed") != "managed" or not (actions or importing):
            continue
        address = str(resource.get("address", ""))
        if resource.get("deposed"):
            address = f"{address} (deposed object {resource['deposed']})"
        values = _planned_value(address, change)
        if values is None:
            values = {}
        elif not isinstance(values, dict):
            values = {"value": values}
        changes[address] = PlannedChange(
            address=address, actions=(("import",) if importing else ()) + actions, values=values
        )
    for name, change in (show_json.get("output_changes") or {}).items():
        actions = tuple(str(action) for action in change.get("actions") or () if action != "no-op")
        if not actions:
            continue
        address = f"output.{name}"
        wrapped = {
            "after": {"value": change.get("after")},
            "after_unknown": {"value": change.get("after_unknown", False)},
            "after_sensitive": {"value": change.get("after_sensitive", False)},
        }
        changes[address] = PlannedChange(address=address, actions=actions, values=_planned_value(address, wrapped))
    return changes


def compare_plans(reviewed: Mapping[str, PlannedChange], new: Mapping[str, PlannedChange]) -> PlanDifference:
    """What differs between the reviewed plan and the new one: addresses, actions and planned values.

    A value unknown until apply equals only a value also unknown at that path; sensitive values
    compare by digest.
    """
    changed = [
        (reviewed[address], new[address])
        for address in sorted(reviewed.keys() & new.keys())
        if reviewed[address].actions != new[address].actions
        or any(_differences(reviewed[address].values, new[address].values, ()))
    ]
    return PlanDifference(
        only_reviewed=[reviewed[address] for address in sorted(reviewed.keys() - new.keys())],
        only_new=[new[address] for address in sorted(new.keys() - reviewed.keys())],
        changed=changed,
    )


def attribute_differences(reviewed: PlannedChange, new: PlannedChange) -> list[AttributeDifference]:
    """The attribute paths whose planned values differ between two changes of one address.

    Lists of different lengths are reported whole, since elements that shifted position would
    otherwise all look changed.
    """
    return list(_differences(reviewed.values, new.values, ()))


def describe_actions(actions: tuple[str, ...]) -> str:
    """Terraform's actions as a plan reader says them: `create`, `update in-place`, `replace (destroy, then create)`."""
    importing = actions[:1] == ("import",)
    rest = actions[1:] if importing else actions
    described = _ACTION_WORDS.get(rest, ", then ".join(rest))
    if importing:
        return f"import, then {described}" if rest else "import"
    return described or "no change"


def format_path(path: tuple[str | int, ...]) -> str:
    """An attribute path as terraform writes it: `input.replicas`, `tags["kubernetes.io/role"]`, `rule[0].cidr`."""
    text = ""
    for step in path:
        if isinstance(step, int):
            text += f"[{step}]"
        elif _IDENTIFIER.fullmatch(step):
            text += f".{step}" if text else step
        else:
            text += f"[{_quoted(step)}]"
    return text or "(whole value)"


def format_value(value: Any) -> str:
    """A planned value on one line, HCL-like; unknown and sensitive values as terraform prints them."""
    if value is UNKNOWN:
        return "(known after apply)"
    if isinstance(value, Sensitive):
        return "(sensitive)"
    if value is ABSENT:
        return "(absent)"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _quoted(value)
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = ", ".join(f"{_key(key)} = {format_value(item)}" for key, item in value.items())
        return f"{{ {items} }}"
    if isinstance(value, list):
        return "[" + ", ".join(format_value(item) for item in value) + "]"
    return json.dumps(value)


def dump_changes(changes: Mapping[str, PlannedChange]) -> str:
    """The stored form of a plan's changes: JSON that `load_changes` reads back, in another process too."""
    document = {
        "version": STORED_FORMAT_VERSION,
        "changes": [changes[address].model_dump(mode="json") for address in sorted(changes)],
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


def load_changes(text: str) -> dict[str, PlannedChange]:
    """A plan's changes from the JSON `dump_changes` wrote; a `ValueError` if it is not that JSON."""
    document = json.loads(text)
    if not isinstance(document, dict) or document.get("version") != STORED_FORMAT_VERSION:
        raise ValueError(f"not a stored plan of format version {STORED_FORMAT_VERSION}")
    changes: dict[str, PlannedChange] = {}
    for stored in document.get("changes") or []:
        values = _decode(stored["values"])
        if not isinstance(values, dict):
            raise ValueError(f"the stored values of {stored['address']} are not an object")
        change = PlannedChange(address=stored["address"], actions=tuple(stored["actions"]), values=values)
        changes[change.address] = change
    return changes


_ACTION_WORDS: dict[tuple[str, ...], str] = {
    ("create",): "create",
    ("update",): "update in-place",
    ("delete",): "destroy",
    ("delete", "create"): "replace (destroy, then create)",
    ("create", "delete"): "replace (create, then destroy)",
    ("forget",): "forget (remove from state, keep the object)",
}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
# The key that tags a marker in the stored form; a real object with this key is wrapped.
_TAG = "__atlas__"


def _planned_value(address: str, change: Mapping[str, Any]) -> Any:
    """A change's `after` value with its unknown and sensitive paths replaced by markers."""
    after = _mark_unknown(change.get("after"), change.get("after_unknown", False))
    return _mark_sensitive(after, change.get("after_sensitive", False), address, ())


def _mark_unknown(value: Any, unknown: Any) -> Any:
    """`value` with `UNKNOWN` at every path `unknown` (terraform's `after_unknown`) marks true."""
    if unknown is True:
        return UNKNOWN
    if isinstance(unknown, dict) and (isinstance(value, dict) or (value is None and _marks_any(unknown))):
        known = value or {}
        marked = dict(known)
        for key, inner in unknown.items():
            # Terraform leaves unknown attributes out of `after`, so a marked key may be missing.
            if key in known or _marks_any(inner):
                marked[key] = _mark_unknown(known.get(key), inner)
        return marked
    if isinstance(unknown, list) and isinstance(value, list):
        padded = [*value, *[None] * (len(unknown) - len(value))]
        marks = [*unknown, *[False] * (len(value) - len(unknown))]
        return [_mark_unknown(item, inner) for item, inner in zip(padded, marks, strict=True)]
    return value


def _mark_sensitive(value: Any, sensitive: Any, address: str, path: tuple[str | int, ...]) -> Any:
    """`value` with a `Sensitive` digest at every path `sensitive` (terraform's `after_sensitive`) marks true."""
    if sensitive is True:
        return Sensitive(_digest(address, path, value))
    if isinstance(sensitive, dict) and isinstance(value, dict):
        return {
            key: _mark_sensitive(item, sensitive.get(key, False), address, (*path, key)) for key, item in value.items()
        }
    if isinstance(sensitive, list) and isinstance(value, list):
        return [
            _mark_sensitive(item, sensitive[index] if index < len(sensitive) else False, address, (*path, index))
            for index, item in enumerate(value)
        ]
    return value


def _marks_any(marks: Any) -> bool:
    """Whether an `after_unknown`-shaped structure marks any path true."""
    if marks is True:
        return True
    if isinstance(marks, dict):
        return any(_marks_any(inner) for inner in marks.values())
    if isinstance(marks, list):
        return any(_marks_any(inner) for inner in marks)
    return False


def _digest(address: str, path: tuple[str | int, ...], value: Any) -> str:
    canonical = json.dumps(
        {"address": address, "path": list(path), "value": _encode(value)}, sort_keys=True, separators=(",", ":")
    )
    return "sha256:" + hashlib.sha256(b"atlas-sensitive-v1\0" + canonical.encode()).hexdigest()


def _differences(reviewed: Any, new: Any, path: tuple[str | int, ...]) -> Iterator[AttributeDifference]:
    if isinstance(reviewed, dict) and isinstance(new, dict):
        for key in sorted(reviewed.keys() | new.keys()):
            yield from _differences(reviewed.get(key, ABSENT), new.get(key, ABSENT), (*path, key))
    elif isinstance(reviewed, list) and isinstance(new, list) and len(reviewed) == len(new):
        for index, (before, after) in enumerate(zip(reviewed, new, strict=True)):
            yield from _differences(before, after, (*path, index))
    elif not _same_value(reviewed, new):
        yield AttributeDifference(path=path, reviewed=reviewed, new=new)


def _same_value(reviewed: Any, new: Any) -> bool:
    """Equality as terraform means it: `true` is not `1`, while `2` and `2.0` are one number."""
    if isinstance(reviewed, bool) or isinstance(new, bool):
        return type(reviewed) is type(new) and reviewed == new
    if isinstance(reviewed, int | float) and isinstance(new, int | float):
        return bool(reviewed == new)
    if isinstance(reviewed, list) and isinstance(new, list):
        return len(reviewed) == len(new) and all(map(_same_value, reviewed, new))
    if isinstance(reviewed, dict) and isinstance(new, dict):
        return reviewed.keys() == new.keys() and all(_same_value(reviewed[key], new[key]) for key in reviewed)
    return type(reviewed) is type(new) and bool(reviewed == new)


def _encode(value: Any) -> Any:
    """A value in the stored form: markers as tagged objects, a real object holding the tag wrapped."""
    if value is UNKNOWN:
        return {_TAG: "unknown"}
    if isinstance(value, Sensitive):
        return {_TAG: "sensitive", "digest": value.digest}
    if isinstance(value, dict):
        encoded = {key: _encode(item) for key, item in value.items()}
        return {_TAG: "object", "value": encoded} if _TAG in value else encoded
    if isinstance(value, list):
        return [_encode(item) for item in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(item) for item in value]
    if not isinstance(value, dict):
        return value
    if _TAG not in value:
        return {key: _decode(item) for key, item in value.items()}
    tag = value[_TAG]
    if tag == "unknown":
        return UNKNOWN
    if tag == "sensitive":
        return Sensitive(str(value["digest"]))
    if tag == "object":
        return {key: _decode(item) for key, item in value["value"].items()}
    raise ValueError(f"unknown marker {tag!r} in a stored plan")


def _quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _key(key: str) -> str:
    return key if _IDENTIFIER.fullmatch(key) else _quoted(key)
