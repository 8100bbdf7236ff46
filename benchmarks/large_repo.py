"""Pull requests of a large repository (20,000 files, 2,000 commits) against the same projects in a small one.

The large repository holds `projects/pNN/` (small root modules) among 20,000 files, with 2,000
commits of history that rewrite generated files (hundreds of MB of objects). The small one holds the
same projects and nothing else. In each, pull request k changes `projects/pk/` (a project of its
own, so no pull request waits for another's lock): the first pull request's plan fetches into a
new mirror, later ones fetch only what the mirror lacks and check out a work tree. Reported: delivery
→ plan comment of the first and of later pull requests, disk per open pull request (its work tree,
`.terraform` included, and its index in the mirror) against the size of the checked-out files and
against a full clone of the repository. Usage:

    python benchmarks/large_repo.py [--files 20000] [--commits 2000] [--pulls 5]
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
from random import Random

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.world import WEBHOOK_SECRET, World, describe_ms, wait_for, world
from tests.emulator import deliver, webhook_payload

PROJECT = """terraform {{
  backend "local" {{
    path = "{state}/{repo}/p{index:02d}.tfstate"
  }}
}}

resource "terraform_data" "service" {{
  input = {{ name = "service-{index:02d}", replicas = {replicas} }}
}}
"""


def projects(w: World, repo: str, count: int, replicas: int = 1) -> dict[str, str]:
    return {f"projects/p{i:02d}/main.tf": PROJECT.format(state=w.state_dir, repo=repo, index=i, replicas=replicas)
            for i in range(count)}


def generate_history(w: World, name: str, files: int, commits: int) -> None:
    """`files` generated files at the first commit, then `commits` commits each rewriting four of the first 40."""
    random = Random(files + commits)
    git = w.emulator.repo(name).git
    parent = git.resolve("refs/heads/main")
    stream = bytearray()

    def commit(number: int, changes: dict[str, bytes]) -> None:
        nonlocal stream
        message = f"generated: revision {number}".encode()
        committer = f"Acme <acme@example.test> {1_600_000_000 + number} +0000"
        stream += f"commit refs/heads/main\ncommitter {committer}\n".encode()
        stream += f"data {len(message)}\n".encode() + message + b"\n"
        if number == 0:
            stream += f"from {parent}\n".encode()
        for path, data in changes.items():
            stream += f"M 100644 inline {path}\ndata {len(data)}\n".encode() + data + b"\n"

    paths = [f"services/team{i % 40:02d}/svc{i // 40 % 50:02d}/config-{i:05d}.yaml" for i in range(files)]
    commit(0, {path: random.randbytes(300).hex().encode() for path in paths})
    # History grows by rewriting a few generated files (40 KB each), as lock files and rendered
    # manifests do; the checked-out tree stays mostly small files.
    generated = paths[:40]
    for number in range(1, commits):
        commit(number, {random.choice(generated): random.randbytes(20_000).hex().encode() for _ in range(4)})
    stream += b"done\n"
    git.git("fast-import", "--quiet", "--done", input=bytes(stream))


def plan_pull(w: World, name: str, index: int) -> tuple[float, int]:
    """Seconds from delivery to plan comment of a new pull request changing `projects/pINDEX`; its number."""
    change = projects(w, name, index + 1, replicas=2)[f"projects/p{index:02d}/main.tf"]
    pull = w.emulator.open_pull(name, f"change-{index}", {f"projects/p{index:02d}/main.tf": change})
    started = time.perf_counter()
    response = deliver(f"{w.atlas_url}/events", "pull_request", webhook_payload("pull_request", pull, "opened"),
                       secret=WEBHOOK_SECRET)
    assert response.status_code == 202, response.text
    wait_for(lambda: bool(w.emulator.comments(name, pull.number)), 600, "the plan comment")
    elapsed = time.perf_counter() - started
    body = w.emulator.comments(name, pull.number)[0]["body"]
    assert "Plan: 1 to add" in body, body[:800]
    return elapsed, pull.number


def disk(path: Path) -> int:
    """Bytes of disk `path` takes (`du`: blocks, not lengths)."""
    done = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True)
    return int(done.stdout.split()[0]) * 1024


def per_pull_disk(w: World, name: str, number: int) -> int:
    """Disk of one open pull request: its work tree and the mirror's records of it (index, HEAD)."""
    owner, repo = name.split("/")
    tree = w.data_dir / "repos" / owner / repo / str(number) / "default"
    git_file = (tree / ".git").read_text().split(":", 1)[1].strip()
    return disk(tree) + disk(Path(git_file))


def checked_out_size(w: World, name: str) -> tuple[int, int, float]:
    """Disk of the default branch's files extracted alone, disk of a full clone, and that clone's seconds."""
    bare = w.emulator.repo(name).git.path
    with tempfile.TemporaryDirectory() as tmp:
        files = Path(tmp) / "files"
        files.mkdir()
        archive = subprocess.run(["git", "--git-dir", str(bare), "archive", "main"], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(files)], input=archive.stdout, check=True)
        started = time.perf_counter()
        subprocess.run(["git", "clone", "-q", "--no-local", str(bare), str(Path(tmp) / "clone")], check=True,
                       env={**os.environ, "GIT_CONFIG_GLOBAL": os.devnull})
        seconds = time.perf_counter() - started
        return disk(files), disk(Path(tmp) / "clone"), seconds


def measure(w: World, name: str, pulls: int) -> tuple[float, list[float], list[int]]:
    first, number = plan_pull(w, name, 0)
    later: list[float] = []
    numbers = [number]
    for index in range(1, pulls + 1):
        elapsed, number = plan_pull(w, name, index)
        later.append(elapsed)
        numbers.append(number)
    return first, later, [per_pull_disk(w, name, n) for n in numbers]


def mib(size: float) -> str:
    return f"{size / 2**20:.1f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--commits", type=int, default=2_000)
    parser.add_argument("--pulls", type=int, default=5, help="pull requests timed after the first, per repository")
    args = parser.parse_args()
    count = args.pulls + 1
    with world() as w:
        w.emulator.create_repo("acme/small", files=projects(w, "acme/small", count))
        w.emulator.create_repo("acme/large", files=projects(w, "acme/large", count))
        started = time.perf_counter()
        generate_history(w, "acme/large", args.files, args.commits)
        print(f"generated {args.files} files, {args.commits} commits in {time.perf_counter() - started:.0f} s; "
              f"objects: {mib(disk(w.emulator.repo('acme/large').git.path))}", flush=True)
        small_first, small_later, small_disk = measure(w, "acme/small", args.pulls)
        large_first, large_later, large_disk = measure(w, "acme/large", args.pulls)
        files_size, clone_size, clone_seconds = checked_out_size(w, "acme/large")
        mirror = disk(w.data_dir / "repos" / ".mirrors" / "acme" / "large.git")
    median = statistics.median
    print(f"small repository, first PR:  {small_first * 1000:.1f} ms; later PRs: {describe_ms(small_later)}")
    print(f"large repository, first PR:  {large_first * 1000:.1f} ms; later PRs: {describe_ms(large_later)}")
    print(f"later PRs, large / small (median): {median(large_later) / median(small_later):.2f}x")
    print(f"disk per open PR, large repository (median): {mib(median(large_disk))}; its checked-out files alone: "
          f"{mib(files_size)} ({median(large_disk) / files_size:.2f}x); a full clone: {mib(clone_size)} "
          f"(cloned in {clone_seconds:.1f} s)")
    print(f"the mirror, shared by every PR: {mib(mirror)}; disk per open PR, small repository: "
          f"{mib(median(small_disk))}")


if __name__ == "__main__":
    main()
