"""A world for benchmarks: the GitHub emulator, a fixture repository and a real `atlas server`.

Benchmarks use the same parts as the tests (tests/emulator), but time them instead of asserting.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.emulator import GitHubEmulator  # noqa: E402

FIXTURES = REPO_ROOT / "terraform-fixtures"
WEBHOOK_SECRET = "benchmark-secret"


@dataclass
class World:
    root: Path
    emulator: GitHubEmulator
    state_dir: Path
    atlas_url: str
    data_dir: Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.005) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


@contextmanager
def world(
    fixture: str = "multi-project", *, extra_args: tuple[str, ...] = (), sandbox: str = "required",
    front: str | None = None,
) -> Iterator[World]:
    """The emulator with `acme/infra` holding `fixture`, and `atlas server` in front of it.

    Pull-request code runs as `sandbox` says (`--sandbox`), the shared state reached through `--sandbox-paths`.
    `front` names another HTTP server from `benchmarks/fronts.py` to serve the same app with, for comparisons.
    """
    root = Path(tempfile.mkdtemp(prefix="atlas-bench-"))
    emulator = GitHubEmulator(root / "github").start()
    state_dir = root / "tfstate"
    state_dir.mkdir()
    emulator.create_repo("acme/infra", source_dir=FIXTURES / fixture,
                         substitutions={"__STATE_DIR__": str(state_dir)})
    port = free_port()
    data_dir = root / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATLAS_")}
    env.update({"ATLAS_GH_TOKEN": emulator.token, "ATLAS_GH_WEBHOOK_SECRET": WEBHOOK_SECRET})
    log = (root / "server.log").open("w")
    command = ["-m", "atlas", "server"] if front is None else [str(REPO_ROOT / "benchmarks" / "fronts.py"), front]
    server = subprocess.Popen(
        [sys.executable, *command, "--port", str(port), "--data-dir", str(data_dir),
         "--gh-api-url", emulator.api_url, "--repo-allowlist", "*", "--log-level", "warning", "--sandbox", sandbox,
         *(("--sandbox-paths", str(state_dir)) if sandbox != "off" else ()), *extra_args],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if server.poll() is not None:
            raise RuntimeError(f"atlas server exited: {(root / 'server.log').read_text()}")
        try:
            return requests.get(f"{url}/healthz", timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    try:
        wait_for(healthy, 30, "atlas server", interval=0.05)
        yield World(root, emulator, state_dir, url, data_dir)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
        log.close()
        emulator.stop()
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def raw_app_copy(replicas: int) -> Iterator[Callable[..., None]]:
    """A fresh copy of the multi-project fixture's `app` with state of its own, for raw terraform runs.

    Yields `terraform(*args)`, which runs the real terraform in the copy (as atlas's runner would:
    in automation, no input) and raises when it fails.
    """
    work = Path(tempfile.mkdtemp(prefix="atlas-raw-"))
    try:
        shutil.copytree(FIXTURES / "multi-project", work / "repo")
        app = work / "repo/app"
        (app / "backend.tf").write_text((app / "backend.tf").read_text().replace("__STATE_DIR__", str(work / "state")))
        (app / "main.tf").write_text((app / "main.tf").read_text().replace("replicas = 2", f"replicas = {replicas}"))
        env = {**os.environ, "TF_IN_AUTOMATION": "1", "TF_INPUT": "0"}

        def terraform(*args: str) -> None:
            subprocess.run(["terraform", *args, "-no-color"], cwd=app, env=env, check=True, capture_output=True)

        yield terraform
    finally:
        shutil.rmtree(work, ignore_errors=True)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def describe_ms(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (f"n={len(ms)} p50={percentile(ms, 50):.1f}ms p99={percentile(ms, 99):.1f}ms "
            f"mean={statistics.fmean(ms):.1f}ms max={max(ms):.1f}ms")
