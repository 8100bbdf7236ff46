"""Time from a pull_request delivery to its plan comment, against raw terraform on the same fixture.

For each run a new pull request changes `app/` of the multi-project fixture; atlas clones it,
finds the project, runs init, plan and show, and posts the comment. The baseline is
`terraform init && terraform plan` in a fresh copy of the same directory. Usage:

    python benchmarks/plan_latency.py [--runs 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.world import FIXTURES, WEBHOOK_SECRET, World, describe_ms, raw_app_copy, wait_for, world
from tests.emulator import deliver, webhook_payload


def raw_terraform(replicas: int) -> float:
    """Seconds for `terraform init && terraform plan` in a fresh copy of the fixture."""
    with raw_app_copy(replicas) as terraform:
        started = time.perf_counter()
        terraform("init", "-input=false")
        terraform("plan", "-input=false")
        return time.perf_counter() - started


def plan_once(w: World, run: int) -> float:
    """Seconds from the delivery of a new pull request (changing `app/`, in its own repository) to its plan comment."""
    app = (FIXTURES / "multi-project/app/main.tf").read_text()
    replicas = 10 + run
    # A repository per run: the pull requests of one repository would wait for each other's locks.
    name = f"acme/infra-{run}"
    w.emulator.create_repo(name, source_dir=FIXTURES / "multi-project",
                           substitutions={"__STATE_DIR__": str(w.state_dir / name)})
    pull = w.emulator.open_pull(name, f"bench-{run}",
                                {"app/main.tf": app.replace("replicas = 2", f"replicas = {replicas}")})
    payload = webhook_payload("pull_request", pull, "opened")
    started = time.perf_counter()
    response = deliver(f"{w.atlas_url}/events", "pull_request", payload, secret=WEBHOOK_SECRET)
    assert response.status_code == 202, response.text
    number = pull.number
    wait_for(lambda: bool(w.emulator.comments(name, number)), 120, "the plan comment")
    elapsed = time.perf_counter() - started
    body = w.emulator.comments(name, pull.number)[0]["body"]
    assert "Plan: 1 to add" in body, body[:500]
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    atlas_times: list[float] = []
    raw_times: list[float] = []
    with world() as w:
        for run in range(args.runs + 1):
            elapsed = plan_once(w, run)
            raw = raw_terraform(10 + run)
            if run > 0:  # the first run warms caches on both sides
                atlas_times.append(elapsed)
                raw_times.append(raw)
    atlas_median = statistics.median(atlas_times)
    raw_median = statistics.median(raw_times)
    print(f"atlas delivery→comment: {describe_ms(atlas_times)}")
    print(f"raw init+plan:          {describe_ms(raw_times)}")
    print(f"ratio atlas/raw (median): {atlas_median / raw_median:.2f}x  "
          f"overhead (median): {(atlas_median - raw_median) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
