"""Project detection for a PR changing 10,000 files in a repository of 1,000 projects and 100 modules.

Generates the repository (the same shape as tests/test_projects.py), then times `find_projects`
cold (parse caches cleared) and warm. Usage:

    python benchmarks/project_detection.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from atlas.runtime import projects
from atlas.runtime.projects import find_projects
from tests.test_projects import generate_monorepo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        changes = generate_monorepo(root)
        cold: list[float] = []
        warm: list[float] = []
        for _ in range(args.runs):
            projects._parse_hcl.cache_clear()
            projects._source_value.cache_clear()
            started = time.perf_counter()
            matches = find_projects(root, changes)
            cold.append(time.perf_counter() - started)
            started = time.perf_counter()
            find_projects(root, changes)
            warm.append(time.perf_counter() - started)
    print(f"changed files={len(changes)} projects found={len(matches)}")
    print(f"cold: median={statistics.median(cold) * 1000:.0f}ms max={max(cold) * 1000:.0f}ms")
    print(f"warm: median={statistics.median(warm) * 1000:.0f}ms max={max(warm) * 1000:.0f}ms")


if __name__ == "__main__":
    main()
