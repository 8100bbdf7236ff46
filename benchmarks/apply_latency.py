"""Time from an `atlas apply` comment to the apply comment, against raw `terraform apply PLANFILE`.

Each run opens a pull request changing `app/` of the multi-project fixture and lets atlas plan it
(not timed); then it times the apply comment's delivery until atlas's apply comment appears. The
baseline is `terraform apply PLANFILE` in an initialised copy of the same directory with a plan
made beforehand (only the apply is timed). Usage:

    python benchmarks/apply_latency.py [--runs 8]
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


def raw_apply(replicas: int) -> float:
    """Seconds for `terraform apply PLANFILE` after an untimed init and plan -out."""
    with raw_app_copy(replicas) as terraform:
        terraform("init", "-input=false")
        terraform("plan", "-input=false", "-out=plan.tfplan")
        started = time.perf_counter()
        terraform("apply", "-input=false", "plan.tfplan")
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=8)
    args = parser.parse_args()
    atlas_times: list[float] = []
    raw_times: list[float] = []
    with world() as w:
        w.emulator.set_permission("acme/infra", "alice", "write")
        app = (FIXTURES / "multi-project/app/main.tf").read_text()
        for run in range(args.runs + 1):
            replicas = 10 + run
            pull = w.emulator.open_pull("acme/infra", f"bench-{run}",
                                        {"app/main.tf": app.replace("replicas = 2", f"replicas = {replicas}")},
                                        author="alice")
            number = pull.number

            def atlas_said(n: int = number) -> list[str]:
                return [c["body"] for c in w.emulator.comments("acme/infra", n) if c["user"] == w.emulator.bot_login]

            deliver(f"{w.atlas_url}/events", "pull_request", webhook_payload("pull_request", pull, "opened"),
                    secret=WEBHOOK_SECRET)
            wait_for(lambda: any(b.startswith("Ran Plan") for b in atlas_said()), 120, "the plan comment")
            apply_comment = webhook_payload("issue_comment", pull, "created", body="atlas apply", commenter="alice")
            started = time.perf_counter()
            deliver(f"{w.atlas_url}/events", "issue_comment", apply_comment, secret=WEBHOOK_SECRET)
            wait_for(lambda: any(b.startswith("Ran Apply") for b in atlas_said()), 120, "the apply comment")
            elapsed = time.perf_counter() - started
            assert any("Apply complete!" in b for b in atlas_said()), atlas_said()[-1][:500]
            # Close it, so the next pull request gets the lock.
            deliver(f"{w.atlas_url}/events", "pull_request",
                    webhook_payload("pull_request", pull, "closed", merged=True), secret=WEBHOOK_SECRET)
            raw = raw_apply(replicas)
            if run > 0:
                atlas_times.append(elapsed)
                raw_times.append(raw)
    atlas_median, raw_median = statistics.median(atlas_times), statistics.median(raw_times)
    print(f"atlas apply comment→apply comment: {describe_ms(atlas_times)}")
    print(f"raw terraform apply PLANFILE:      {describe_ms(raw_times)}")
    print(f"ratio atlas/raw (median): {atlas_median / raw_median:.2f}x  "
          f"overhead (median): {(atlas_median - raw_median) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
