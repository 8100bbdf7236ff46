"""Process start of the atlas CLI: wall time of `atlas version`, `atlas --help` and `atlas worker --help`, p50, p99.

Usage: python benchmarks/process_start.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def timed(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    runs = parser.parse_args().runs
    python = [sys.executable, "-c", "pass"]
    for label, argv in (("python -c pass", python), ("atlas version", [sys.executable, "-m", "atlas", "version"]),
                        ("atlas --help", [sys.executable, "-m", "atlas", "--help"]),
                        ("atlas worker --help", [sys.executable, "-m", "atlas", "worker", "--help"])):
        samples = sorted(timed(argv) for _ in range(runs))
        p99 = samples[min(len(samples) - 1, round(0.99 * (len(samples) - 1)))]
        print(f"{label:22} p50 {statistics.median(samples):7.1f} ms  p99 {p99:7.1f} ms")


if __name__ == "__main__":
    main()
