"""Chaos figures: 40 pull requests planned by 3 `atlas worker`s while one is SIGKILLed every 3 seconds.

The run of tests/test_chaos_e2e.py (tests/chaos_run.py), outside pytest and repeated: the GitHub
emulator, a redis-server, `atlas server` with 2 web workers and real terraform in the sandbox. Prints
for each run the workers killed, the pull requests planned and those interrupted (told so, to be
re-run), the time from the first delivery to the last final status, and any problem. Usage:

    python benchmarks/chaos.py [--pulls 40] [--workers 3] [--kill-every 3] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.chaos_run import run_chaos
from tests.emulator import GitHubEmulator
from tests.scale_world import RedisProcess, new_world


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pulls", type=int, default=40)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--kill-every", type=float, default=3.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for index in range(args.repeat):
        root = Path(tempfile.mkdtemp(prefix="atlas-bench-chaos-"))
        emulator = GitHubEmulator(root / "github").start()
        redis = RedisProcess(root / "redis", append_only=True).start()
        world = new_world(root / "world", emulator, redis.url())
        try:
            run = run_chaos(world, pulls=args.pulls, workers=args.workers, kill_every=args.kill_every, seed=index)
            load = os.getloadavg()[0]
            print(f"run {index + 1}: {run.summary()} (load average {load:.1f})", flush=True)
            for problem in run.problems[:10]:
                print(f"  {problem}", flush=True)
        finally:
            world.stop()
            redis.stop()
            emulator.stop()
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
