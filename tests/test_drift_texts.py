"""The drift issue's texts, byte for byte: each case's expected Markdown is kept in `tests/data/drift/`.

The expected files were written by the f-string renderer the templates replaced, so any change in a
drift issue's body or comments shows here as a diff.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from atlas.drift.report import fit_for_github
from atlas.models import (
    AttributeDrift,
    DriftRecord,
    DriftStatus,
    PlanSummary,
    Project,
    Remediation,
    RemediationStatus,
    Repo,
    ResourceDrift,
)
from atlas.render.drift import (
    render_back_in_sync,
    render_issue_body,
    render_remediation,
    render_still_drifted,
)

EXPECTED = Path(__file__).parent / "data" / "drift"
REPO = Repo(full_name="acme/infra", clone_url="https://github.com/acme/infra.git",
            html_url="https://github.com/acme/infra", default_branch="trunk")
SHA = "0123456789abcdef0123456789abcdef01234567"
CHECKED = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
PLAN_OUTPUT = (
    "terraform_data.app: Refreshing state... [id=1]\n\n"
    "Terraform will perform the following actions:\n\n"
    "  # terraform_data.app will be updated in-place\n"
    "  ~ resource \"terraform_data.app\" \"app\" {\n"
    "      ~ input = \"3\" -> \"2\"\n"
    "    }\n\n"
    "  # terraform_data.old must be replaced\n"
    "-/+ resource \"terraform_data.old\" \"old\" {\n"
    "      + id = (known after apply)\n"
    "    }\n\n"
    "  - resource \"terraform_data.gone\" \"gone\" {}\n"
    "```\nbackticks in the plan\n```\n\n"
    "Plan: 1 to add, 1 to change, 2 to destroy.\n"
)
RESOURCES = [
    ResourceDrift(address="terraform_data.app", actions=("update",), changed_outside=True,
                  differences=(AttributeDrift(path="input", live='"3"', wanted='"2"'),
                               AttributeDrift(path="triggers_replace[0].name", live="null", wanted='"x"'))),
    ResourceDrift(address="terraform_data.old", actions=("delete", "create")),
    ResourceDrift(address="terraform_data.gone", actions=("delete",), changed_outside=True),
]


def record(**fields: object) -> DriftRecord:
    values: dict[str, object] = {
        "repo": REPO.full_name, "project": Project(dir="envs/app", workspace="prod", name="app-prod"), "sha": SHA,
        "status": DriftStatus.DRIFTED, "resources": RESOURCES, "summary": PlanSummary(add=1, change=1, destroy=2),
        "output": PLAN_OUTPUT, "trigger": "schedule", "checked_at": CHECKED,
    }
    return DriftRecord.model_validate(values | fields)


WAITING = Remediation(status=RemediationStatus.WAITING, detail="the project is locked by pull request #4")
REFUSED = Remediation(status=RemediationStatus.REFUSED, detail="the plan destroys 2 resources")
APPLIED = Remediation(status=RemediationStatus.APPLIED, detail="applied the plan of trunk at 0123456",
                      output="terraform_data.app: Modifying...\n```\nApply complete! Resources: 0 added, 1 changed.\n")
FAILED = Remediation(status=RemediationStatus.FAILED, detail="Error: something broke\n\n  on main.tf line 3")
ONE = [ResourceDrift(address="terraform_data.app", actions=("update",))]

CASES: dict[str, Callable[[], str]] = {
    "issue_body": lambda: render_issue_body(record(), REPO, atlas_url="https://atlas.acme.com"),
    "issue_body_unnamed_waiting": lambda: render_issue_body(
        record(project=Project(dir="."), remediation=WAITING, trigger="", summary=None), REPO),
    "issue_body_refused_no_differences": lambda: render_issue_body(
        record(resources=[RESOURCES[1], RESOURCES[2]], remediation=REFUSED, output=""), REPO, atlas_url="http://a"),
    "issue_body_remediated": lambda: render_issue_body(
        record(status=DriftStatus.REMEDIATED, remediation=APPLIED), REPO),
    "still_drifted": lambda: render_still_drifted(record(remediation=WAITING)),
    "still_drifted_one_no_summary": lambda: render_still_drifted(
        record(resources=ONE, summary=None, trigger="")),
    "still_drifted_failed_apply": lambda: render_still_drifted(record(resources=ONE, remediation=FAILED)),
    "remediation_applied": lambda: render_remediation(record(remediation=APPLIED), REPO),
    "remediation_failed_no_output": lambda: render_remediation(
        record(remediation=FAILED.model_copy(update={"output": "  \n"}), output=""), REPO),
    "back_in_sync": lambda: render_back_in_sync(record(status=DriftStatus.IN_SYNC, resources=[]), REPO),
    "issue_body_cut_to_fit": lambda: fit_for_github(
        render_issue_body(record(output=PLAN_OUTPUT + "  + x = 1\n" * 3000), REPO), limit=20_000),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_drift_texts_are_unchanged(case: str) -> None:
    expected = (EXPECTED / f"{case}.md").read_text(encoding="utf-8")

    assert CASES[case]() == expected
