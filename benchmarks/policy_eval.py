"""Policy evaluation time per project: 20 Rego rules over a plan of 500 resource changes.

The plan is real: the `policy` fixture planned with `instances=499` (plus its bucket) and shown
with `terraform show -json`. The baseline is that `terraform show -json PLANFILE`, the step that
produces the policy input, on the same saved plan. Figures: loading (compiling) the set once, then
per check the whole `evaluate` (JSON parse, conversion of the read part of the plan into the
interpreter, the query), and the same with a policy that reads `input` whole (so the entire plan
is converted). Usage:

    python benchmarks/policy_eval.py [--runs 5] [--instances 499]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import regopy

from atlas.policy.engine import load_policy_set, select_input
from tests.policy_plans import prepare_fixture, show_plan, terraform_env

RULES = [
    ('deny', 'rc.change.after.input.acl == "public-read"', '"%s: public bucket", [rc.address]'),
    ('deny', 'rc.change.after.input.size == "huge"', '"%s: instance size huge", [rc.address]'),
    ('deny', 'rc.change.after.input.size == "xlarge"', '"%s: instance size xlarge", [rc.address]'),
    ('deny', 'not rc.change.after.input.zone in {"eu-west-1a", "eu-west-1b", "eu-west-1c"}',
     '"%s: zone outside eu-west-1", [rc.address]'),
    ('deny', 'rc.change.after.input.kind == "instance"; not rc.change.after.input.tags.team',
     '"%s: no team tag", [rc.address]'),
    ('deny', 'rc.change.after.input.kind == "instance"; not rc.change.after.input.tags.env',
     '"%s: no env tag", [rc.address]'),
    ('deny', 'rc.change.after.input.tags.env == "production"', '"%s: production from a PR", [rc.address]'),
    ('deny', '"delete" in rc.change.actions; rc.change.before.input.kind == "bucket"',
     '"%s: bucket deletion", [rc.address]'),
    ('deny', '"delete" in rc.change.actions; rc.change.before.input.kind == "database"',
     '"%s: database deletion", [rc.address]'),
    ('deny', 'rc.change.after.input.kind == "instance"; not regex.match(`^web-[0-9]+$`, rc.change.after.input.name)',
     '"%s: bad instance name", [rc.address]'),
    ('deny', 'startswith(rc.change.after.input.name, "tmp-")', '"%s: temporary name", [rc.address]'),
    ('deny', 'rc.change.after.input.kind == "bucket"; count(rc.change.after.input.name) > 63',
     '"%s: bucket name too long", [rc.address]'),
    ('deny', 'rc.change.after.input.kind == "unknown"', '"%s: unknown kind", [rc.address]'),
    ('violation', 'rc.change.after.input.size == "metal"', '"%s: bare metal", [rc.address]'),
    ('violation', 'rc.change.after.input.tags.team == "nobody"', '"%s: team nobody", [rc.address]'),
    ('violation', 'contains(rc.change.after.input.name, "_")', '"%s: underscore in name", [rc.address]'),
    ('violation', 'rc.type != "terraform_data"', '"%s: unexpected type", [rc.address]'),
    ('warn', 'rc.change.after.input.size == "medium"', '"%s: medium instance", [rc.address]'),
    ('warn', '"update" in rc.change.actions', '"%s: in-place update", [rc.address]'),
    ('warn', 'rc.change.after.input.zone == "eu-west-1c"', '"%s: in eu-west-1c", [rc.address]'),
]


def policy_source() -> str:
    rules = [
        f"{rule} contains msg if {{\n    some rc in input.resource_changes\n"
        + "".join(f"    {condition.strip()}\n" for condition in conditions.split(";"))
        + f"    msg := sprintf({message})\n}}\n"
        for rule, conditions, message in RULES
    ]
    return "package main\nimport rego.v1\n\n" + "\n".join(rules)


WHOLE_INPUT = """\
package main
import rego.v1

warn contains "plan has no output changes" if {
    plan := input
    count(object.get(plan, "output_changes", {})) == 0
}
"""


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def timed(function: Callable[[], Any], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--instances", type=int, default=499)
    args = parser.parse_args()
    terraform = "terraform"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        workdir = prepare_fixture(root / "work", root / "state", terraform)
        plan = show_plan(workdir, terraform, "bench", {"instances": args.instances, "instance_size": "huge"})
        show = timed(lambda: subprocess.run([terraform, "show", "-json", "bench.tfplan"], cwd=workdir,
                                            env=terraform_env(), check=True, capture_output=True), args.runs)
        policies = root / "policies"
        policies.mkdir()
        (policies / "rules.rego").write_text(policy_source())
        load = timed(lambda: load_policy_set(policies), args.runs)
        compiled = load_policy_set(policies)
        result = compiled.evaluate(plan)
        assert not result.errors, result.errors
        changes = plan.count('"address"')
        evaluate = timed(lambda: compiled.evaluate(plan), args.runs)
        document = json.loads(plan)
        convert = timed(lambda: regopy.Input(select_input(document, compiled.input_keys)), args.runs)

        (policies / "whole.rego").write_text(WHOLE_INPUT)
        whole = load_policy_set(policies)
        assert whole.input_keys is None and not whole.errors, whole.errors
        evaluate_whole = timed(lambda: whole.evaluate(plan), args.runs)

    show_ms = median_ms(show)
    print(f"plan: {len(document['resource_changes'])} resource changes, {len(plan) / 1024:.0f} KiB of JSON "
          f"({changes} addresses); {len(RULES)} rules; {len(result.failures)} failures, "
          f"{len(result.warnings)} warnings; {args.runs} runs, medians")
    print(f"terraform show -json PLANFILE        {show_ms:9.1f} ms")
    print(f"load + compile the set (once)        {median_ms(load):9.1f} ms")
    print(f"check, reading resource_changes      {median_ms(evaluate):9.1f} ms  "
          f"(ratio {median_ms(evaluate) / show_ms:.2f}x terraform show)")
    print(f"  of which converting the input      {median_ms(convert):9.1f} ms")
    print(f"check, a policy reading input whole  {median_ms(evaluate_whole):9.1f} ms  "
          f"(ratio {median_ms(evaluate_whole) / show_ms:.2f}x terraform show)")


if __name__ == "__main__":
    main()
