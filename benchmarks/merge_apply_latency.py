"""Apply on merge: time from the merge delivery to the apply comment, against raw terraform.

Each run opens a pull request changing `app/` of the multi-project fixture, lets atlas plan it (not
timed), merges it on the emulated GitHub and times the `closed`/`merged` delivery until atlas's
apply comment appears (fresh working copy at the merge commit, init, plan, show, comparison with
the reviewed plan, apply, comment, status). The baseline is `terraform plan -out` then `terraform
apply PLANFILE` in an initialised copy of the same directory. Usage:

    python benchmarks/merge_apply_latency.py [--runs 6]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.world import FIXTURES, WEBHOOK_SECRET, describe_ms, raw_app_copy, wait_for, world
from tests.emulator import deliver, webhook_payload


def raw_plan_and_apply(replicas: int) -> float:
    """Seconds for `terraform plan -out` + `terraform apply PLANFILE` after an untimed init."""
    with raw_app_copy(replicas) as terraform:
        terraform("init", "-input=false")
        started = time.perf_counter()
        terraform("plan", "-input=false", "-out=plan.tfplan")
        terraform("apply", "-input=false", "plan.tfplan")
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=6)
    args = parser.parse_args()
    atlas_times: list[float] = []
    raw_times: list[float] = []
    with world(extra_args=("--apply-on-merge", "true")) as w:
        app = (FIXTURES / "multi-project/app/main.tf").read_text()
        for run in range(args.runs + 1):
            replicas = 10 + run
            pull = w.emulator.open_pull("acme/infra", f"bench-{run}",
                                        {"app/main.tf": app.replace("replicas = 2", f"replicas = {replicas}")})

            def atlas_said(n: int = pull.number) -> list[str]:
                return [c["body"] for c in w.emulator.comments("acme/infra", n) if c["user"] == w.emulator.bot_login]

            deliver(f"{w.atlas_url}/events", "pull_request", webhook_payload("pull_request", pull, "opened"),
                    secret=WEBHOOK_SECRET)
            wait_for(lambda: any(b.startswith("Ran Plan") for b in atlas_said()), 120, "the plan comment")
            merged = webhook_payload("pull_request", pull, "closed", merged=True)  # merges on the emulator
            started = time.perf_counter()
            deliver(f"{w.atlas_url}/events", "pull_request", merged, secret=WEBHOOK_SECRET)
            wait_for(lambda: any("Apply complete!" in b for b in atlas_said()), 120, "the apply comment")
            elapsed = time.perf_counter() - started
            raw = raw_plan_and_apply(replicas)
            if run > 0:
                atlas_times.append(elapsed)
                raw_times.append(raw)
    atlas_median, raw_median = statistics.median(atlas_times), statistics.median(raw_times)
    print(f"atlas merge delivery→apply comment: {describe_ms(atlas_times)}")
    print(f"raw terraform plan + apply:         {describe_ms(raw_times)}")
    print(f"ratio atlas/raw (median): {atlas_median / raw_median:.2f}x  "
          f"overhead (median): {(atlas_median - raw_median) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
