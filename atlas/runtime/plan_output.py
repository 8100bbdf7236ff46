"""What users read of terraform's output: the plan summary, the cleaned plan text, the summary line.

Pure functions of terraform's output and `show -json` document, shared by the step runners, the
plan and apply commands and drift checks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from atlas.models import PlanSummary, ResourceChange

_NOISE_LINE = re.compile(
    r"""^(
        .*:\ Refreshing\ state\.\.\.(\ \[.*\])?
      | .*:\ Reading\.\.\.
      | .*:\ Read\ complete\ after\ .*
      | .*:\ Still\ [a-z]+\.\.\.\ \[.*\]
      | (Acquiring|Releasing)\ state\ lock\.\ This\ may\ take\ a\ few\ moments\.\.\.
    )$""",
    re.VERBOSE,
)
_RULE_LINE = re.compile(r"^─+$")
_SUMMARY_LINE = re.compile(r"^(Plan: .*|No changes\..*|Apply complete! Resources: .*)$")
_APPLY_COMPLETE = re.compile(
    r"Apply complete! Resources: (?:(?P<imported>\d+) imported, )?(?P<added>\d+) added, "
    r"(?P<changed>\d+) changed, (?P<destroyed>\d+) destroyed\."
)


def summarise_plan(show_json: Mapping[str, Any]) -> PlanSummary:
    """The counts of `Plan: …` as terraform computes them, and the changes behind them.

    A replacement counts as one add and one destroy. A resource being imported appears in
    `changes` with `import` before its other actions (`("import",)` for an import alone).
    """
    summary = PlanSummary()
    for resource in show_json.get("resource_changes") or []:
        change = resource.get("change") or {}
        actions = tuple(str(action) for action in change.get("actions") or ())
        importing = change.get("importing") is not None
        effective = tuple(action for action in actions if action not in ("no-op", "read"))
        if resource.get("mode", "managed") != "managed" or not (effective or importing):
            continue
        if importing:
            summary.import_ += 1
        if "create" in effective:
            summary.add += 1
        if "delete" in effective:
            summary.destroy += 1
        if effective == ("update",):
            summary.change += 1
        address = str(resource.get("address", ""))
        if resource.get("deposed"):
            address = f"{address} (deposed object {resource['deposed']})"
        summary.changes.append(
            ResourceChange(address=address, actions=(("import",) if importing else ()) + effective)
        )
    return summary


def clean_plan_output(text: str) -> str:
    """Terraform's plan or apply output as users should read it in a comment.

    Drops the refresh and progress noise and the "Saved the plan to … terraform apply …" footer
    (atlas prints its own apply command); keeps the diff, `Plan:`/`No changes.`, output changes,
    warnings and errors.
    """
    kept: list[str] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index].rstrip()
        if _is_plan_footer(lines, index):
            index = _skip_plan_footer(lines, index)
            continue
        if not _NOISE_LINE.match(line) and (line or (kept and kept[-1])):
            kept.append(line)
        index += 1
    while kept and not kept[-1]:
        kept.pop()
    return "\n".join(kept) + "\n" if kept else ""


def summary_line_from_output(text: str) -> str | None:
    """The last `Plan: …`, `No changes. …` or `Apply complete! Resources: …` line of terraform's output."""
    found = None
    for line in text.splitlines():
        if _SUMMARY_LINE.match(line.strip()):
            found = line.strip()
    return found


def apply_summary_from_output(text: str) -> PlanSummary | None:
    """The counts of `Apply complete! Resources: N added, M changed, K destroyed.`, if printed."""
    matches = list(_APPLY_COMPLETE.finditer(text))
    if not matches:
        return None
    found = matches[-1]
    summary = PlanSummary(
        add=int(found["added"]), change=int(found["changed"]), destroy=int(found["destroyed"])
    )
    summary.import_ = int(found["imported"] or 0)
    return summary


def _is_plan_footer(lines: Sequence[str], index: int) -> bool:
    """Whether a "Saved the plan to:" footer (possibly after a ─── rule) starts at `index`."""
    line = lines[index].strip()
    if line.startswith("Saved the plan to:"):
        return True
    if _RULE_LINE.match(line):
        following = [text.strip() for text in lines[index + 1 :] if text.strip()]
        return bool(following) and following[0].startswith("Saved the plan to:")
    return False


def _skip_plan_footer(lines: Sequence[str], index: int) -> int:
    """The index just after the footer's `terraform apply …` line (or its end, if that is missing)."""
    for position in range(index, len(lines)):
        if lines[position].strip().startswith("terraform apply"):
            return position + 1
    return len(lines)
