"""Drift checks of many projects with the terraform pool, against the sum of raw `terraform plan` times.

A generated repository of N root modules (each a local-backend `terraform_data`, applied beforehand
with raw terraform, a tenth of them then changed by hand) is checked by `atlas drift run` with
`--parallel-pool-size P`: a cold run (clone, `init` of every project), then warm ones (working
copies kept; `init` is skipped at an unchanged commit). The baselines are the sums over all
projects of `terraform plan` in an initialised copy, and of `terraform init && terraform plan` in
a fresh one, run one at a time. Usage:

    python benchmarks/drift.py [--projects 100] [--pool 4] [--warm-runs 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.world import REPO_ROOT
from tests.emulator import GitHubEmulator

PROJECT = """terraform {{
  backend "local" {{
    path = "{state}/p{index:03d}.tfstate"
  }}
}}

variable "size" {{
  type    = number
  default = 10
}}

resource "terraform_data" "volume" {{
  input = {{ name = "volume-{index:03d}", size = var.size }}
}}
"""


def terraform_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATLAS_")}
    env.update(TF_IN_AUTOMATION="1", TF_INPUT="0", CHECKPOINT_DISABLE="1")
    return env


def terraform(directory: Path, *args: str) -> float:
    """Seconds one terraform command took in `directory`."""
    started = time.perf_counter()
    subprocess.run(["terraform", *args, "-input=false", "-no-color"], cwd=directory, env=terraform_env(),
                   check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--projects", type=int, default=100)
    parser.add_argument("--pool", type=int, default=4, help="--parallel-pool-size of the drift run")
    parser.add_argument("--warm-runs", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="atlas-drift-bench-"))
    emulator = GitHubEmulator(root / "github").start()
    try:
        state = root / "tfstate"
        state.mkdir()
        files = {f"p{i:03d}/main.tf": PROJECT.format(state=state, index=i) for i in range(args.projects)}
        emulator.create_repo("acme/infra", files=files)
        (root / "repos.yaml").write_text("repos:\n- id: 127.0.0.1/acme/infra\n  drift: {enabled: true}\n")

        live = root / "live"
        init_and_plan: list[float] = []
        plan_only: list[float] = []
        print(f"applying {args.projects} projects with raw terraform, and timing raw plans…", flush=True)
        for index, (path, text) in enumerate(sorted(files.items())):
            directory = live / path.split("/")[0]
            directory.mkdir(parents=True)
            (directory / "main.tf").write_text(text)
            init = terraform(directory, "init")
            init_and_plan.append(init + terraform(directory, "plan"))
            terraform(directory, "apply", "-auto-approve")
            if index % 10 == 0:
                terraform(directory, "apply", "-auto-approve", "-var", "size=20")  # changed by hand
        for path in sorted(files):
            plan_only.append(terraform(live / path.split("/")[0], "plan", "-refresh=true"))

        env = {**terraform_env(), "ATLAS_GH_TOKEN": emulator.token, "HOME": str(root / "home")}
        command = [sys.executable, "-m", "atlas", "drift", "run", "--data-dir", str(root / "data"),
                   "--gh-api-url", emulator.api_url, "--repo-config", str(root / "repos.yaml"),
                   "--repo-allowlist", "*", "--parallel-pool-size", str(args.pool), "--log-level", "warning",
                   "--sandbox", "required", "--sandbox-paths", str(state)]
        timings: dict[str, list[float]] = {"cold": [], "warm": []}
        for run in ["cold"] + ["warm"] * args.warm_runs:
            started = time.perf_counter()
            done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
            timings[run].append(time.perf_counter() - started)
            summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-500:]
            assert done.returncode == 2, f"{run}: exit {done.returncode}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
            print(f"{run} run: {timings[run][-1]:.1f} s: {summary}", flush=True)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import atlas.cli.main, atlas.drift.check, atlas.commands.context"],
                       cwd=REPO_ROOT,
                       env=env, check=True)
        startup = time.perf_counter() - started
        cold, warm = timings["cold"][0], statistics.median(timings["warm"])

        drifted = len(emulator.issues("acme/infra", label="atlas-drift"))
        print(f"\n{args.projects} projects, {drifted} drifted, --parallel-pool-size {args.pool}, {os.cpu_count()} CPUs")
        print(f"atlas drift run, cold (clone, init, plan, report):   {cold:.1f} s")
        print(f"atlas drift run, warm (fetch, plan, report; median): {warm:.1f} s")
        print(f"  of which starting the process (imports):          {startup:.1f} s")
        print(f"sum of raw `terraform plan` (initialised):           {sum(plan_only):.1f} s")
        print(f"sum of raw `terraform init && terraform plan`:       {sum(init_and_plan):.1f} s")
        print(f"warm / sum of raw plans: {warm / sum(plan_only):.2f}x; "
              f"cold / sum of raw init+plan: {cold / sum(init_and_plan):.2f}x")
    finally:
        emulator.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
