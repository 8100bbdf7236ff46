"""What a policy check adds to delivery → comment: the same pull requests with policy checks off and on.

Each run opens a new pull request changing `app/` of the multi-project fixture (in a repository of
its own, so that no run waits for another's lock) and times from the delivery of `pull_request`
to atlas's last comment: the plan comment with policy checks off, the policy check comment with
`--enable-policy-checks` and one policy set of the 20 rules of `benchmarks/policy_eval.py`. The
baseline is raw `terraform init && terraform plan` in a fresh copy of the same directory. Usage:

    python benchmarks/policy_delivery.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.plan_latency import raw_terraform
from benchmarks.policy_eval import policy_source
from benchmarks.world import FIXTURES, WEBHOOK_SECRET, World, describe_ms, wait_for, world
from tests.emulator import deliver, webhook_payload


def policy_config(directory: Path) -> Path:
    """A repos.yaml with one policy set (the 20 rules) for every repository."""
    (directory / "policies" / "rules").mkdir(parents=True)
    (directory / "policies" / "rules" / "rules.rego").write_text(policy_source())
    config = directory / "repos.yaml"
    config.write_text("repos:\n- id: /.*/\npolicies:\n  owners: {users: [olga]}\n  policy_sets:\n"
                      "    - {name: rules, path: policies/rules, source: local}\n")
    return config


def deliver_once(w: World, run: int, *, checked: bool) -> tuple[float, float]:
    """Seconds from the delivery to the plan comment, and to the last comment (the policy check's when on)."""
    app = (FIXTURES / "multi-project/app/main.tf").read_text()
    name = f"acme/infra-{run}"
    w.emulator.create_repo(name, source_dir=FIXTURES / "multi-project",
                           substitutions={"__STATE_DIR__": str(w.state_dir / name)})
    pull = w.emulator.open_pull(name, f"bench-{run}",
                                {"app/main.tf": app.replace("replicas = 2", f"replicas = {10 + run}")})
    payload = webhook_payload("pull_request", pull, "opened")
    seen: dict[str, float] = {}

    def comments_arrived() -> bool:
        bodies = [c["body"] for c in w.emulator.comments(name, pull.number)]
        now = time.perf_counter()
        if any("Plan: 1 to add" in b for b in bodies):
            seen.setdefault("plan", now)
        if any("Policy Check" in b for b in bodies):
            seen.setdefault("policy", now)
        return "plan" in seen and (not checked or "policy" in seen)

    started = time.perf_counter()
    response = deliver(f"{w.atlas_url}/events", "pull_request", payload, secret=WEBHOOK_SECRET)
    assert response.status_code == 202, response.text
    wait_for(comments_arrived, 180, "atlas's comments")
    return seen["plan"] - started, seen.get("policy", seen["plan"]) - started


def series(runs: int, extra_args: tuple[str, ...], *, checked: bool) -> tuple[list[float], list[float]]:
    to_plan: list[float] = []
    to_last: list[float] = []
    with world(extra_args=extra_args) as w:
        for run in range(runs + 1):
            plan, last = deliver_once(w, run, checked=checked)
            if run > 0:  # the first run warms caches (and compiles the policy set)
                to_plan.append(plan)
                to_last.append(last)
    return to_plan, to_last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="atlas-policy-bench-") as directory:
        config = policy_config(Path(directory))
        off_plan, _ = series(args.runs, (), checked=False)
        on_plan, on_last = series(args.runs, ("--repo-config", str(config), "--enable-policy-checks"), checked=True)
    raw = [raw_terraform(10 + run) for run in range(args.runs)]
    off, on, baseline = statistics.median(off_plan), statistics.median(on_last), statistics.median(raw)
    print(f"policy checks off, delivery→plan comment:         {describe_ms(off_plan)}")
    print(f"policy checks on,  delivery→plan comment:         {describe_ms(on_plan)}")
    print(f"policy checks on,  delivery→policy check comment: {describe_ms(on_last)}")
    print(f"raw init+plan:                                    {describe_ms(raw)}")
    print(f"overhead of the policy check (median): {(on - off) * 1000:.0f} ms ({on / off:.2f}x off); "
          f"ratio against raw terraform: off {off / baseline:.2f}x, on {on / baseline:.2f}x")


if __name__ == "__main__":
    main()
