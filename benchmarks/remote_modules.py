"""First plan against re-plan after a push, on the fixture whose modules come over git, against raw terraform.

Each run opens a pull request changing `service/` of `terraform-fixtures/remote-modules` (in a
repository of its own, so no run waits for another's lock): delivery → plan comment, where `init`
clones the module library (`acme/terraform-modules`, tag `v1`) from the emulator's git server. Then
a push that changes only a resource's argument: delivery → the second plan comment, where the copy
is fetched into, not cloned, and `init` is skipped. The baselines are raw `terraform init && terraform
plan` in a fresh copy and `terraform plan` alone in that initialised copy. `--library-history N`
gives the library N commits before `v1` (terraform clones a git module's whole history). Usage:

    python benchmarks/remote_modules.py [--runs 8] [--library-history 0]
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

from benchmarks.world import FIXTURES, WEBHOOK_SECRET, World, describe_ms, wait_for, world
from tests.emulator import deliver, webhook_payload
from tests.module_library import publish_module_library, remote_modules_repo

SERVICE = FIXTURES / "remote-modules/service/main.tf"


def service_text(w: World, replicas: int) -> str:
    text = SERVICE.read_text().replace("__MODULES_URL__", w.emulator.base_url)
    return text.replace("replicas    = 2", f"replicas    = {replicas}")


def delivered_to_comment(w: World, name: str, number: int, action: str, comments: int) -> float:
    pull = w.emulator.pull(name, number)
    started = time.perf_counter()
    response = deliver(f"{w.atlas_url}/events", "pull_request", webhook_payload("pull_request", pull, action),
                       secret=WEBHOOK_SECRET)
    assert response.status_code == 202, response.text
    wait_for(lambda: len(w.emulator.comments(name, number)) > comments, 180, "the plan comment")
    elapsed = time.perf_counter() - started
    body = w.emulator.comments(name, number)[-1]["body"]
    assert "Plan: 2 to add" in body, body[:800]
    return elapsed


def atlas_run(w: World, run: int) -> tuple[float, float]:
    """Seconds of the first plan and of the re-plan after a push, for a new pull request."""
    name = f"acme/infra-{run}"
    remote_modules_repo(w.emulator, w.state_dir / name, full_name=name)
    pull = w.emulator.open_pull(name, f"bench-{run}", {"service/main.tf": service_text(w, 3)})
    first = delivered_to_comment(w, name, pull.number, "opened", 0)
    w.emulator.push(name, pull.number, {"service/main.tf": service_text(w, 4)})
    replan = delivered_to_comment(w, name, pull.number, "synchronize", 1)
    return first, replan


def raw_run(w: World) -> tuple[float, float]:
    """Seconds of raw `init && plan` in a fresh copy, and of `plan` alone in it afterwards."""
    work = Path(tempfile.mkdtemp(prefix="atlas-raw-"))
    try:
        service = work / "service"
        shutil.copytree(FIXTURES / "remote-modules/service", service)
        (service / "main.tf").write_text(service_text(w, 3))
        (service / "backend.tf").write_text(
            (service / "backend.tf").read_text().replace("__STATE_DIR__", str(work / "state")))
        env = {**os.environ, "TF_IN_AUTOMATION": "1", "TF_INPUT": "0", "CHECKPOINT_DISABLE": "1"}

        def terraform(*args: str) -> None:
            subprocess.run(["terraform", *args, "-input=false", "-no-color"], cwd=service, env=env, check=True,
                           capture_output=True)

        started = time.perf_counter()
        terraform("init")
        terraform("plan")
        first = time.perf_counter() - started
        started = time.perf_counter()
        terraform("plan")
        return first, time.perf_counter() - started
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--library-history", type=int, default=0, metavar="COMMITS",
                        help="commits of 20 KB each in the module library before v1 (terraform clones them all)")
    args = parser.parse_args()
    firsts: list[float] = []
    replans: list[float] = []
    raw_firsts: list[float] = []
    raw_replans: list[float] = []
    with world() as w:
        publish_module_library(w.emulator, history=args.library_history)
        for run in range(args.runs + 1):
            first, replan = atlas_run(w, run)
            raw_first, raw_replan = raw_run(w)
            if run > 0:  # the first run warms caches on both sides
                firsts.append(first)
                replans.append(replan)
                raw_firsts.append(raw_first)
                raw_replans.append(raw_replan)
    median = statistics.median
    print(f"atlas first plan (clone, init with module download, plan): {describe_ms(firsts)}")
    print(f"atlas re-plan after a push (fetch, init skipped, plan):    {describe_ms(replans)}")
    print(f"raw terraform init && plan, fresh copy:                    {describe_ms(raw_firsts)}")
    print(f"raw terraform plan, initialised copy:                      {describe_ms(raw_replans)}")
    print(f"first / re-plan (median): atlas {median(firsts) / median(replans):.2f}x, "
          f"raw {median(raw_firsts) / median(raw_replans):.2f}x")
    print(f"atlas / raw (median): first plan {median(firsts) / median(raw_firsts):.2f}x, "
          f"re-plan {median(replans) / median(raw_replans):.2f}x")


if __name__ == "__main__":
    main()
