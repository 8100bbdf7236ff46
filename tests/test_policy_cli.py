"""`atlas policy test`: the server's evaluation, run locally by a policy author."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from atlas.cli.main import main

PLAN = {"format_version": "1.2", "resource_changes": [
    {"address": "aws_s3_bucket.logs", "type": "aws_s3_bucket",
     "change": {"actions": ["create"], "after": {"acl": "public-read"}}}]}
POLICY = """\
package main
import rego.v1

deny contains msg if {
    some rc in input.resource_changes
    rc.change.after.acl == "public-read"
    msg := sprintf("%s must not be public", [rc.address])
}

warn contains "has buckets" if {
    some rc in input.resource_changes
    rc.type == "aws_s3_bucket"
}
"""


def test_a_failing_plan_exits_non_zero_and_prints_each_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "buckets.rego").write_text(POLICY)
    (tmp_path / "plan.json").write_text(json.dumps(PLAN))
    assert main(["policy", "test", str(tmp_path / "policies"), str(tmp_path / "plan.json")]) == 1
    out = capsys.readouterr().out
    assert "FAIL - main.deny: aws_s3_bucket.logs must not be public" in out
    assert "WARN - main.warn: has buckets" in out

    PLAN["resource_changes"][0]["change"]["after"]["acl"] = "private"  # type: ignore[index]
    (tmp_path / "plan.json").write_text(json.dumps(PLAN))
    assert main(["policy", "test", str(tmp_path / "policies"), str(tmp_path / "plan.json")]) == 0


def test_a_broken_policy_exits_non_zero_naming_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "bad.rego").write_text("package main\n\ndeny[msg] {\n  msg := 1\n}\n")
    (tmp_path / "plan.json").write_text(json.dumps(PLAN))
    assert main(["policy", "test", str(tmp_path / "p"), str(tmp_path / "plan.json")]) == 1
    assert "ERROR - bad.rego:3" in capsys.readouterr().out
