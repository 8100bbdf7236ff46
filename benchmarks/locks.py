"""Lock throughput of the embedded store: acquire + release pairs per second on a fresh `atlas.db`.

Measures one thread taking and releasing the lock of a 1-project and of a 10-project command, and
8 threads (each its own pull request) contending for the same project, where most attempts are
refused and the figure that matters is how many complete acquire/release pairs still get through.
Usage:

    python benchmarks/locks.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from atlas.models import Project, PullRequest, Repo
from atlas.stores.sqlite.locks import SQLiteLockStore

REPO = Repo(
    full_name="acme/infra", clone_url="https://github.com/acme/infra.git", html_url="https://github.com/acme/infra"
)


def pull(number: int) -> PullRequest:
    return PullRequest(
        repo=REPO,
        number=number,
        head_sha="a" * 40,
        head_ref=f"change-{number}",
        base_ref="main",
        author=f"dev{number}",
        html_url=f"{REPO.html_url}/pull/{number}",
    )


def single_thread(store: SQLiteLockStore, projects: list[Project], seconds: float) -> float:
    """Acquire + release pairs per second for one pull request taking `projects`."""
    change = pull(1)
    pairs = 0
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        attempt = store.acquire(change, projects, "dev1")
        assert attempt.complete
        store.release_pull(REPO.full_name, change.number)
        pairs += 1
    return pairs / (time.perf_counter() - started)


def contending(
    store: SQLiteLockStore, threads: int, projects_of: Callable[[int], list[Project]], seconds: float
) -> str:
    """Attempts and completed pairs per second with `threads` pull requests taking `projects_of(number)`."""
    start = threading.Barrier(threads + 1)
    attempts = [0] * threads
    pairs = [0] * threads
    stop = threading.Event()

    def work(index: int) -> None:
        change = pull(100 + index)
        projects = projects_of(index)
        start.wait()
        while not stop.is_set():
            attempts[index] += 1
            if store.acquire(change, projects, change.author).complete:
                store.release_pull(REPO.full_name, change.number)
                pairs[index] += 1

    workers = [threading.Thread(target=work, args=(index,)) for index in range(threads)]
    for worker in workers:
        worker.start()
    start.wait()
    started = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    fairness = f"min/max pairs per thread {min(pairs)}/{max(pairs)}"
    return f"{sum(attempts) / elapsed:.0f} attempts/s, {sum(pairs) / elapsed:.0f} pairs/s ({fairness})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="how long each measurement runs")
    args = parser.parse_args()
    one = [Project(dir="app")]
    ten = [Project(dir=f"envs/{index}") for index in range(10)]
    with tempfile.TemporaryDirectory(prefix="atlas-locks-bench-") as scratch:
        store = SQLiteLockStore(Path(scratch) / "atlas.db")
        single_thread(store, one, 0.5)  # warm up: connection, schema, page cache
        print(f"1 thread,  1-project command:  {single_thread(store, one, args.seconds):.0f} pairs/s")
        print(f"1 thread, 10-project command:  {single_thread(store, ten, args.seconds):.0f} pairs/s")
        print(f"8 threads, same project:       {contending(store, 8, lambda index: one, args.seconds)}")
        print(f"8 threads, own project each:   "
              f"{contending(store, 8, lambda index: [Project(dir=f'own/{index}')], args.seconds)}")


if __name__ == "__main__":
    main()
