"""Delivery → plan comment with the sandbox and without it, side by side, and what one sandbox costs.

Two `atlas server`s on loopback, each in front of its own GitHub emulator: one with
`--sandbox required` (bubblewrap confines every terraform run), one with `--sandbox off`. Each run
opens a new pull request on both, alternately, and times the delivery to the plan comment (clone,
config, init, plan, show -json, comment, statuses: three sandboxed terraform runs per plan). The
start cost of one sandbox is measured alone too: `bwrap … true` against `true`, with the layout
atlas uses. Usage:

    python benchmarks/sandbox_overhead.py [--runs 10]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from atlas.runtime.sandbox import RunScope, choose_sandbox
from benchmarks.plan_latency import plan_once
from benchmarks.world import describe_ms, world


def start_cost(runs: int = 200) -> tuple[list[float], list[float]]:
    """Seconds to run `true` directly and in atlas's sandbox, `runs` times each."""
    sandbox = choose_sandbox("required")
    confined = sandbox.command(["true"], Path("/"), RunScope(writable=(Path("/tmp"),)))
    times: dict[str, list[float]] = {"direct": [], "sandboxed": []}
    for _ in range(runs):
        for label, argv in (("direct", ["true"]), ("sandboxed", confined)):
            started = time.perf_counter()
            subprocess.run(argv, check=True)
            times[label].append(time.perf_counter() - started)
    return times["direct"], times["sandboxed"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    timings: dict[str, list[float]] = {"required": [], "off": []}
    with world(sandbox="required") as confined, world(sandbox="off") as unconfined:
        for run in range(args.runs + 1):
            for mode, w in (("required", confined), ("off", unconfined)) if run % 2 else (
                    ("off", unconfined), ("required", confined)):
                elapsed = plan_once(w, run)
                if run > 0:  # the first run warms caches on both sides
                    timings[mode].append(elapsed)
    direct, sandboxed = start_cost()
    with_sandbox, without = statistics.median(timings["required"]), statistics.median(timings["off"])
    print(f"delivery→comment, --sandbox required: {describe_ms(timings['required'])}")
    print(f"delivery→comment, --sandbox off:      {describe_ms(timings['off'])}")
    print(f"ratio required/off (median): {with_sandbox / without:.2f}x  "
          f"sandbox cost per plan (median): {(with_sandbox - without) * 1000:.0f} ms")
    print(f"one process, direct:    {describe_ms(direct)}")
    print(f"one process, sandboxed: {describe_ms(sandboxed)}")
    print(f"start cost of one sandbox (median): "
          f"{(statistics.median(sandboxed) - statistics.median(direct)) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
