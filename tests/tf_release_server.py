"""A HashiCorp-style terraform release server (or OpenTofu's) on a free local port, built from the terraform on PATH.

It serves what releases.hashicorp.com serves for terraform: `/terraform/index.json` and, per
version, `/terraform/<v>/terraform_<v>_<os>_<arch>.zip` with `terraform_<v>_SHA256SUMS`. Each zip
holds a small `terraform` script that reports the version it stands for (`terraform version` and
`version -json`) and runs the real terraform for every other command, so a downloaded binary really
works without shipping several copies of terraform. The server records every GET, so a test can
count downloads, and can be made slow or can serve a zip that no longer matches its checksum.

`serve_tofu_releases` serves OpenTofu's layout instead: the version list `/tofu/api.json` (as
get.opentofu.org serves it) and, as its GitHub releases do, `/v<v>/tofu_<v>_<os>_<arch>.zip` with
`tofu_<v>_SHA256SUMS`. Its `tofu` says it is OpenTofu, records each call in a log file, and runs
the real terraform for every other command.
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
import time
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from atlas.runtime.tfversions import current_platform

FAKE_TERRAFORM = """#!/bin/sh
# Stands in for terraform {version}: says it is {version}; every other command runs the real terraform.
case "$1" in
  version|-version|-v|--version)
    if [ "$2" = "-json" ]; then
      printf '%s\\n' '{version_json}'
    else
      printf 'Terraform v{version}\\non {platform}\\n'
    fi
    exit 0
    ;;
esac
exec '{real}' "$@"
"""


FAKE_TOFU = """#!/bin/sh
# Stands in for OpenTofu {version}: says so, writes each call to its log, and runs the real terraform.
printf 'tofu %s\\n' "$*" >> '{calls}'
case "$1" in
  version|-version|-v|--version)
    if [ "$2" = "-json" ]; then
      printf '%s\\n' '{version_json}'
    else
      printf 'OpenTofu v{version}\\non {platform}\\n'
    fi
    exit 0
    ;;
esac
exec '{real}' "$@"
"""


def fake_tofu_script(version: str, real_terraform: str, calls: Path, platform: str | None = None) -> str:
    """The text of a `tofu` that reports OpenTofu `version`, logs its calls to `calls` and execs `real_terraform`."""
    platform = platform or current_platform()
    # OpenTofu keeps terraform's key in `version -json`, so tools that read it keep working.
    version_json = json.dumps(
        {"terraform_version": version, "platform": platform, "provider_selections": {}, "terraform_outdated": False}
    )
    return FAKE_TOFU.format(version=version, version_json=version_json, platform=platform, real=real_terraform,
                            calls=calls)


def write_fake_tofu(path: Path, version: str, real_terraform: str, calls: Path) -> Path:
    """Write an executable `tofu` for `version` at `path` that logs each call to `calls`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(fake_tofu_script(version, real_terraform, calls))
    path.chmod(0o755)
    return path


def fake_terraform_script(version: str, real_terraform: str, platform: str | None = None) -> str:
    """The text of a `terraform` that reports `version` and otherwise execs `real_terraform`."""
    platform = platform or current_platform()
    version_json = json.dumps(
        {"terraform_version": version, "platform": platform, "provider_selections": {}, "terraform_outdated": False}
    )
    return FAKE_TERRAFORM.format(version=version, version_json=version_json, platform=platform, real=real_terraform)


def write_fake_terraform(path: Path, version: str, real_terraform: str) -> Path:
    """Write an executable fake terraform for `version` at `path` (for bin dirs in tests)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(fake_terraform_script(version, real_terraform))
    path.chmod(0o755)
    return path


@dataclass
class ReleaseServer:
    """A running release server: its URL, its files on disk, and the paths it was asked for."""

    url: str
    root: Path
    platform: str
    zip_delay: float = 0.0
    """Seconds each zip download waits before its first byte, so concurrent requesters overlap."""
    _requests: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def requests(self) -> list[str]:
        """Every path requested so far, in order."""
        with self._lock:
            return list(self._requests)

    def count(self, suffix: str) -> int:
        """How many requests asked for a path ending in `suffix` (a file name such as the zip's)."""
        return sum(1 for path in self.requests if path.endswith(suffix))

    def zip_name(self, version: str) -> str:
        return f"terraform_{version}_{self.platform}.zip"

    def zip_path(self, version: str) -> Path:
        return self.root / "terraform" / version / self.zip_name(version)

    def tamper(self, version: str) -> None:
        """Replace the zip of `version` with another one, leaving SHA256SUMS as it was."""
        _write_zip(self.zip_path(version), "#!/bin/sh\necho 'not terraform'\n")

    def record(self, path: str) -> None:
        with self._lock:
            self._requests.append(path)


def build_release_dir(
    root: Path,
    versions: Sequence[str],
    real_terraform: str,
    *,
    foreign_only: Sequence[str] = (),
) -> str:
    """Write a release tree for `versions` (built for this platform) under `root`; returns the platform.

    `foreign_only` versions are listed with a build for another platform only, as a release that
    was never built for this machine's OS would be.
    """
    platform = current_platform()
    index: dict[str, Any] = {"name": "terraform", "versions": {}}
    for version, build_platform in [(v, platform) for v in versions] + [(v, "plan9_amd64") for v in foreign_only]:
        directory = root / "terraform" / version
        directory.mkdir(parents=True, exist_ok=True)
        zip_name = f"terraform_{version}_{build_platform}.zip"
        _write_zip(directory / zip_name, fake_terraform_script(version, real_terraform, build_platform))
        sums = f"terraform_{version}_SHA256SUMS"
        digest = hashlib.sha256((directory / zip_name).read_bytes()).hexdigest()
        (directory / sums).write_text(f"{digest}  {zip_name}\n")
        os_name, arch = build_platform.split("_", 1)
        index["versions"][version] = {
            "name": "terraform",
            "version": version,
            "shasums": sums,
            "shasums_signature": f"{sums}.sig",
            "shasums_signatures": [f"{sums}.72D7468F.sig", f"{sums}.sig"],
            "builds": [
                {
                    "name": "terraform",
                    "version": version,
                    "os": os_name,
                    "arch": arch,
                    "filename": zip_name,
                    "url": f"https://releases.hashicorp.com/terraform/{version}/{zip_name}",
                }
            ],
        }
    (root / "terraform" / "index.json").write_text(json.dumps(index, indent=2))
    return platform


def build_tofu_release_dir(root: Path, versions: Sequence[str], real_terraform: str, calls: Path) -> str:
    """Write OpenTofu's release layout for `versions` (built for this platform) under `root`; returns the platform."""
    platform = current_platform()
    listed = []
    for version in versions:
        directory = root / f"v{version}"
        directory.mkdir(parents=True, exist_ok=True)
        zip_name = f"tofu_{version}_{platform}.zip"
        _write_zip(directory / zip_name, fake_tofu_script(version, real_terraform, calls), binary="tofu")
        sums = f"tofu_{version}_SHA256SUMS"
        digest = hashlib.sha256((directory / zip_name).read_bytes()).hexdigest()
        (directory / sums).write_text(f"{digest}  {zip_name}\n")
        listed.append({"id": version, "files": [zip_name, sums, f"{sums}.sig", f"tofu_{version}_amd64.deb"]})
    (root / "tofu").mkdir(parents=True, exist_ok=True)
    (root / "tofu" / "api.json").write_text(json.dumps({"versions": listed}, indent=2))
    return platform


def _write_zip(path: Path, script: str, *, binary: str = "terraform") -> None:
    """A release zip as HashiCorp (or OpenTofu) ships it: the executable and a LICENSE.txt."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as bundle:
        binary_info = zipfile.ZipInfo(binary, date_time=(2024, 1, 1, 0, 0, 0))
        binary_info.external_attr = 0o755 << 16
        binary_info.compress_type = zipfile.ZIP_DEFLATED
        bundle.writestr(binary_info, script)
        bundle.writestr("LICENSE.txt", "Business Source License 1.1\n")


class _ReleaseHandler(SimpleHTTPRequestHandler):
    server_state: ReleaseServer

    def do_GET(self) -> None:
        self.server_state.record(self.path)
        if self.path.endswith(".zip") and self.server_state.zip_delay:
            time.sleep(self.server_state.zip_delay)
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reads `requests` instead."""


@contextmanager
def serve_releases(
    root: Path,
    versions: Sequence[str],
    real_terraform: str,
    *,
    foreign_only: Sequence[str] = (),
) -> Iterator[ReleaseServer]:
    """Build a release tree under `root` and serve it on 127.0.0.1 until the block ends."""
    platform = build_release_dir(root, versions, real_terraform, foreign_only=foreign_only)
    with _serve(root, platform) as state:
        yield state


@contextmanager
def serve_tofu_releases(
    root: Path, versions: Sequence[str], real_terraform: str, calls: Path
) -> Iterator[ReleaseServer]:
    """Build OpenTofu's release layout under `root` and serve it on 127.0.0.1 until the block ends.

    atlas finds it with `--tofu-download-url URL` and `--tofu-index-url URL/tofu/api.json`.
    """
    platform = build_tofu_release_dir(root, versions, real_terraform, calls)
    with _serve(root, platform) as state:
        yield state


@contextmanager
def _serve(root: Path, platform: str) -> Iterator[ReleaseServer]:
    state = ReleaseServer(url="", root=root, platform=platform)

    class Handler(_ReleaseHandler):
        server_state = state

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="tf-release-server", daemon=True
    )
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
