"""Planning throughput on Redis: 40 pull requests changing 2 projects each, planned by 1 and by 2 worker processes.

Every run builds a fresh world: the GitHub emulator with one repository of the multi-project fixture
per pull request (so no pull request waits for another's project lock), a fresh redis-server and
terraform state, `atlas server --redis-url ... --web-workers 2`, and the run's `atlas worker`
processes, each with a data directory of its own, started and listening before the clock starts.
Then every pull request's `opened` event is delivered at once, and the run is timed until each pull
request has its plan comment. Layouts, as WORKERSxCONCURRENCY:

    1x1  one `atlas worker --concurrency 1`
    2x1  two `atlas worker --concurrency 1` (two data directories, as on two hosts)
    1x2  one `atlas worker --concurrency 2` (two worker processes sharing one data directory)

Each pull request costs atlas 5 content-creating GitHub requests (statuses and the comment), and
atlas paces those at GitHub's documented 80 per minute per token (`atlas.github.ratelimit`), so 40 pull
requests need at least 1.5 minutes of budget. Each layout therefore runs twice:

    shipped  atlas as it is: the write budget bounds the throughput
    lifted   the write budget raised out of the way (the emulator has no secondary rate limit),
             to measure what the worker processes themselves can do

Usage:

    python benchmarks/scale.py [--pulls 40] [--layouts 1x1,2x1,1x2] [--budgets shipped,lifted] [--repeat 1]
                               [--timeout 900]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.world import percentile
from tests.emulator import EmulatedPull, GitHubEmulator
from tests.scale_world import RedisProcess, ScaleWorld, new_world

LIFTED_BUDGET_ATLAS = (
    sys.executable, "-c",
    "import sys\n"
    "from atlas.github import ratelimit\n"
    "for name in ('WriteBudget', 'SharedWriteBudget'):\n"
    "    if hasattr(ratelimit, name):\n"
    "        getattr(ratelimit, name).acquire = lambda self: 0.0\n"
    "from atlas.cli.main import main\n"
    "sys.exit(main())\n",
)
"""`atlas` whose GitHub write budgets (per process, or shared in Redis) never wait; forked workers inherit it."""

BUDGETS = {"shipped": None, "lifted": LIFTED_BUDGET_ATLAS}


@dataclass(frozen=True)
class Layout:
    """How many `atlas worker` processes run, and the `--concurrency` of each."""

    workers: int
    concurrency: int

    @classmethod
    def parse(cls, text: str) -> Layout:
        workers, _, concurrency = text.partition("x")
        return cls(int(workers), int(concurrency or 1))

    @property
    def processes(self) -> int:
        """Worker processes that run jobs."""
        return self.workers * self.concurrency

    def __str__(self) -> str:
        return f"{self.workers} x atlas worker --concurrency {self.concurrency}"


@dataclass(frozen=True)
class RunResult:
    budget: str
    layout: Layout
    pulls: int
    wall_seconds: float
    latencies: list[float]
    successes: int

    @property
    def per_minute(self) -> float:
        return self.pulls / self.wall_seconds * 60


def run(budget: str, layout: Layout, pulls: int, timeout: float) -> RunResult:
    """One timed run of `layout` on a fresh world."""
    root = Path(tempfile.mkdtemp(prefix="atlas-bench-scale-"))
    emulator = GitHubEmulator(root / "github").start()
    redis = RedisProcess(root / "redis").start()
    world = new_world(root, emulator, redis.url())
    command = BUDGETS[budget]
    if command is not None:
        world.atlas_command = command
    try:
        opened: list[EmulatedPull] = []
        for number in range(1, pulls + 1):
            name = f"acme/infra-{number:02d}"
            world.create_repo(name)
            opened.append(world.open_pull(name, "both", ("app", "db")))
        server = world.start_server()
        workers = [world.start_worker(concurrency=layout.concurrency, wait=False) for _ in range(layout.workers)]
        for worker in workers:
            worker.wait_for_log("listening on queue", count=layout.concurrency)

        started = time.monotonic()
        with ThreadPoolExecutor(pulls) as pool:
            answers = list(pool.map(lambda pull: server.pull_event(pull).status_code, opened))
        if set(answers) != {202}:
            raise RuntimeError(f"deliveries answered {sorted(set(answers))}, expected 202 for all")
        latencies = _wait_for_plans(world, opened, started, timeout)
        wall = max(latencies)
        successes = sum(_planned_both(world, pull) for pull in opened)
        return RunResult(budget, layout, pulls, wall, latencies, successes)
    finally:
        world.stop()
        redis.stop()
        emulator.stop()
        shutil.rmtree(root, ignore_errors=True)


def _wait_for_plans(world: ScaleWorld, pulls: list[EmulatedPull], started: float, timeout: float) -> list[float]:
    """Seconds from the first delivery until each pull request's plan comment appeared (polled every 0.2 s)."""
    seen: dict[int, float] = {}
    deadline = started + timeout
    while len(seen) < len(pulls):
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(seen)} of {len(pulls)} plan comments after {timeout:g} s")
        for index, pull in enumerate(pulls):
            if index not in seen and any(body.startswith("Ran Plan") for body in world.bot_comments(pull)):
                seen[index] = time.monotonic() - started
        time.sleep(0.2)
    return [seen[index] for index in range(len(pulls))]


def _planned_both(world: ScaleWorld, pull: EmulatedPull) -> bool:
    plans = [body for body in world.bot_comments(pull) if body.startswith("Ran Plan")]
    return bool(plans) and plans[-1].startswith("Ran Plan for 2 projects:") and "Plan Error" not in plans[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pulls", type=int, default=40, help="pull requests, each changing app and db")
    parser.add_argument("--layouts", default="1x1,2x1,1x2", help="WORKERSxCONCURRENCY, comma-separated")
    parser.add_argument("--budgets", default="shipped,lifted", help="write budgets to run with: shipped, lifted")
    parser.add_argument("--timeout", type=float, default=900, help="seconds a run may take before it fails")
    parser.add_argument("--repeat", type=int, default=1, help="runs per layout; the median run is reported")
    args = parser.parse_args()
    layouts = [Layout.parse(text) for text in args.layouts.split(",")]
    budgets = args.budgets.split(",")
    unknown = set(budgets) - set(BUDGETS)
    if unknown:
        parser.error(f"unknown budgets {sorted(unknown)}; choose from {sorted(BUDGETS)}")
    print(f"{args.pulls} pull requests x 2 projects; {os.cpu_count()} CPU cores; terraform {shutil.which('terraform')}")
    for budget in budgets:
        results: list[RunResult] = []
        for layout in layouts:
            runs = sorted((run(budget, layout, args.pulls, args.timeout) for _ in range(args.repeat)),
                          key=lambda result: result.wall_seconds)
            result = runs[len(runs) // 2]
            results.append(result)
            walls = ", ".join(f"{r.wall_seconds:.1f}s" for r in runs)
            print(f"budget={budget:<8} {layout!s:<36} processes={layout.processes} "
                  f"wall={result.wall_seconds:6.1f}s throughput={result.per_minute:6.1f} PRs/min "
                  f"({result.per_minute * 2:6.1f} projects/min) latency p50={percentile(result.latencies, 50):5.1f}s "
                  f"max={max(result.latencies):5.1f}s planned-both={result.successes}/{result.pulls}"
                  + (f" (median of walls {walls})" if len(runs) > 1 else ""), flush=True)
        single = next((r for r in results if r.layout.processes == 1), None)
        if single is not None:
            for result in results:
                if result.layout.processes > 1:
                    print(f"budget={budget:<8} scaling {result.layout} vs 1 process: "
                          f"{result.per_minute / single.per_minute:.2f}x", flush=True)

if __name__ == "__main__":
    main()
