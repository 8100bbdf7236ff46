"""A pull request touching 50 of 1,000 projects, planned in parallel by a pool of 4, against raw terraform.

A generated repository of 1,000 root modules (`projects/pNNN/`, each a local-backend `terraform_data`)
with `parallel_plan: true` in its `atlantis.yaml`; `atlas server --parallel-pool-size 4`. A pull request
changes every 20th project: from the delivery to the combined `atlas/plan` status saying 50/50 (the
comments are posted by then). The baseline is the sum of raw `terraform init && terraform plan` of
those 50 projects in fresh copies, one at a time, divided by the pool size: what a perfect pool of 4
would take. Project selection (which of the 1,000 projects the 50 changed files plan) is timed apart,
on the checked-out head. Usage:

    python benchmarks/monorepo.py [--projects 1000] [--changed 50] [--pool 4] [--runs 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from atlas.runtime.projects import find_projects
from atlas.vcs import ChangedFile
from benchmarks.world import WEBHOOK_SECRET, World, describe_ms, wait_for, world
from tests.emulator import deliver, webhook_payload

PROJECT = """terraform {{
  backend "local" {{
    path = "{state}/p{index:04d}.tfstate"
  }}
}}

variable "size" {{
  type    = number
  default = {size}
}}

resource "terraform_data" "volume" {{
  input = {{ name = "volume-{index:04d}", size = var.size }}
}}
"""


def project_files(state: Path, count: int, changed: set[int], size: int) -> dict[str, str]:
    return {f"projects/p{i:04d}/main.tf": PROJECT.format(state=state, index=i, size=size if i in changed else 10)
            for i in range(count)}


def plan_status(w: World, name: str, sha: str) -> str:
    plans = [s for s in w.emulator.statuses(name, sha) if s["context"] == "atlas/plan"]
    return plans[-1]["state"] + ": " + plans[-1]["description"] if plans else ""


def atlas_run(w: World, run: int, count: int, changed: set[int]) -> float:
    name = f"acme/mono-{run}"
    state = w.state_dir / name
    files = project_files(state, count, set(), 10)
    files["atlantis.yaml"] = "version: 3\nparallel_plan: true\n"
    w.emulator.create_repo(name, files=files)
    changes = {path: text for path, text in project_files(state, count, changed, 20 + run).items()
               if int(path.split("/")[1][1:]) in changed}
    pull = w.emulator.open_pull(name, f"resize-{run}", changes)
    started = time.perf_counter()
    response = deliver(f"{w.atlas_url}/events", "pull_request", webhook_payload("pull_request", pull, "opened"),
                       secret=WEBHOOK_SECRET)
    assert response.status_code == 202, response.text
    done = f"{len(changed)}/{len(changed)} projects planned"
    wait_for(lambda: done in plan_status(w, name, pull.head_sha) or "fail" in plan_status(w, name, pull.head_sha),
             900, "the combined plan status")
    elapsed = time.perf_counter() - started
    assert done in plan_status(w, name, pull.head_sha), plan_status(w, name, pull.head_sha)
    return elapsed


def raw_sum(count: int, changed: set[int]) -> float:
    """Seconds of raw `terraform init && terraform plan` of each changed project, one after another."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATLAS_")}
    env.update(TF_IN_AUTOMATION="1", TF_INPUT="0", CHECKPOINT_DISABLE="1")
    total = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for index in sorted(changed):
            directory = Path(tmp) / f"p{index:04d}"
            directory.mkdir()
            (directory / "main.tf").write_text(PROJECT.format(state=Path(tmp) / "state", index=index, size=20))
            started = time.perf_counter()
            for command in ("init", "plan"):
                subprocess.run(["terraform", command, "-input=false", "-no-color"], cwd=directory, env=env,
                               check=True, capture_output=True)
            total += time.perf_counter() - started
    return total


def selection_seconds(count: int, changed: set[int], runs: int) -> tuple[float, int]:
    """Median seconds of choosing the projects the changed files plan, in a checkout of the repository."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for path, text in project_files(root / "state", count, changed, 20).items():
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_text(text)
        (root / "atlantis.yaml").write_text("version: 3\nparallel_plan: true\n")
        files = [ChangedFile(filename=f"projects/p{i:04d}/main.tf") for i in sorted(changed)]
        timings = []
        for _ in range(runs):
            started = time.perf_counter()
            found = find_projects(root, files)
            timings.append(time.perf_counter() - started)
        return statistics.median(timings), len(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--projects", type=int, default=1000)
    parser.add_argument("--changed", type=int, default=50)
    parser.add_argument("--pool", type=int, default=4)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    step = max(1, args.projects // args.changed)
    changed = set(range(0, args.projects, step)[: args.changed])
    selection, found = selection_seconds(args.projects, changed, 5)
    raw = raw_sum(args.projects, changed)
    walls = []
    with world(extra_args=("--parallel-pool-size", str(args.pool))) as w:
        for run in range(args.runs):
            walls.append(atlas_run(w, run, args.projects, changed))
            print(f"run {run}: {walls[-1]:.1f} s", flush=True)
    wall = statistics.median(walls)
    print(f"{args.projects} projects, {len(changed)} changed, pool {args.pool}, {os.cpu_count()} CPUs")
    print(f"atlas, delivery → {len(changed)}/{len(changed)} planned: {describe_ms(walls)}")
    print(f"raw terraform init && plan, summed: {raw:.1f} s; / pool {args.pool}: {raw / args.pool:.1f} s")
    print(f"ratio atlas / (raw sum / pool) (median): {wall / (raw / args.pool):.2f}x")
    print(f"project selection ({found} of {args.projects} projects): {selection * 1000:.0f} ms")


if __name__ == "__main__":
    main()
