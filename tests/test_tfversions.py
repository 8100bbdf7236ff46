"""Choosing terraform per project: constraint matching, local binaries first, verified downloads installed once.

Downloads come from a local release server (`tests/tf_release_server.py`) over real HTTP; its
binaries report the version they stand for and run the real terraform for everything else.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from atlas.config.versions import Version, VersionConstraint, VersionSyntaxError
from atlas.runtime.tfversions import TerraformVersionError, TerraformVersions, binary_version
from tests.conftest import require_binary
from tests.tf_release_server import ReleaseServer, serve_releases, write_fake_terraform

REPO_ROOT = Path(__file__).resolve().parents[1]
RELEASED = ("1.5.7", "1.6.0", "1.6.6", "1.11.4", "1.12.0-beta1")
FOREIGN_ONLY = ("1.3.10",)
"""Listed by the server with a build for another platform only."""


@pytest.fixture
def real_terraform() -> str:
    return require_binary("terraform", "install Terraform 1.11 from https://developer.hashicorp.com/terraform/install")


@pytest.fixture
def releases(tmp_path: Path, real_terraform: str) -> Iterator[ReleaseServer]:
    with serve_releases(tmp_path / "releases", RELEASED, real_terraform, foreign_only=FOREIGN_ONLY) as server:
        yield server


def versions_for(
    tmp_path: Path,
    server_url: str,
    *,
    default_binary: str | None = None,
    allow_download: bool = True,
    default_version: str | None = None,
) -> TerraformVersions:
    """A TerraformVersions on this test's dirs; by default no terraform on PATH takes part."""
    return TerraformVersions(
        tmp_path / "bin",
        tmp_path / "cache",
        download_url=server_url,
        default_binary=default_binary or str(tmp_path / "no-default-terraform"),
        allow_download=allow_download,
        default_version=default_version,
    )


def reported_version(binary: Path | str) -> str:
    """What `binary version -json` says, by running it."""
    completed = subprocess.run(
        [str(binary), "version", "-json"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "CHECKPOINT_DISABLE": "1"},
    )
    return str(json.loads(completed.stdout)["terraform_version"])


# --- constraints: Terraform's semantics (hashicorp/go-version, which checks required_version) ---

MATCHES = [
    # exact, with or without `=`, a `v`, or fewer numbers (padded with zeros)
    ("1.6.6", "1.6.6", True),
    ("1.6.6", "1.6.7", False),
    ("= 1.6.6", "1.6.6", True),
    ("=1.6.6", "1.6.5", False),
    ("v1.6.6", "1.6.6", True),
    ("= v1.6.6", "1.6.6", True),
    ("1.6", "1.6.0", True),
    ("1.6", "1.6.1", False),
    ("1.0", "1.0.0", True),
    ("= 1.0", "1.1.5", False),
    # comparisons and ranges
    (">= 1.5", "1.5.0", True),
    (">= 1.5", "1.4.99", False),
    ("> 1.5", "1.5.0", False),
    ("> 1.5", "1.5.1", True),
    ("< 2", "1.99.99", True),
    ("< 2", "2.0.0", False),
    ("<= 1.6.6", "1.6.6", True),
    ("<= 1.6.6", "1.6.7", False),
    (">= 1.5, < 2", "1.11.4", True),
    (">= 1.5, < 2", "2.0.0", False),
    (">= 1.5, < 2", "1.4.6", False),
    (">= 1.0, < 1.2", "1.1.5", True),
    ("< 1.0, < 1.2", "1.1.5", False),
    (">=1.5,<1.7", "1.6.6", True),
    # exclusions
    ("!= 1.5.0", "1.5.0", False),
    ("!= 1.5.0", "1.5.1", True),
    ("!= 1.5", "1.5.0", False),
    (">= 1.5, != 1.6.6, < 1.7", "1.6.6", False),
    (">= 1.5, != 1.6.6, < 1.7", "1.6.5", True),
    # ~> lets only the rightmost written number grow
    ("~> 1.6.0", "1.6.0", True),
    ("~> 1.6.0", "1.6.6", True),
    ("~> 1.6.0", "1.7.0", False),
    ("~> 1.6.0", "1.5.9", False),
    ("~> 1.6.3", "1.6.2", False),
    ("~> 1.6.3", "1.6.3", True),
    ("~> 1.6.3", "1.6.10", True),
    ("~> 1.0.4", "1.0.5", True),
    ("~> 1.0.4", "1.0.10", True),
    ("~> 1.0.4", "1.1.0", False),
    ("~> 1.6", "1.6.0", True),
    ("~> 1.6", "1.11.4", True),
    ("~> 1.6", "1.5.7", False),
    ("~> 1.6", "2.0.0", False),
    ("~> 1.0", "1.1.0", True),
    ("~> 1.0", "1.2.3", True),
    ("~> 1.0", "2.0.0", False),
    ("~> 1.0.0", "1.2.3", False),
    ("~> 1.0.0", "1.0.7", True),
    ("~> 1.0.0", "1.1.0", False),
    ("~> 1", "1.0.0", True),
    ("~> 1", "1.11.4", True),
    ("~> 1", "2.0.0", True),  # the only written number is the major one, and it may grow
    ("~> 1", "0.15.5", False),
    ("~> 0.12", "0.12.31", True),
    ("~> 0.12", "0.13.0", True),
    ("~> 0.12", "1.0.0", False),
    ("~> 0.12.0", "0.13.0", False),
    ("~> 1.0.7", "1.0.7.5", True),
    ("~> 1.0.7", "1.0.6.99", False),
    ("~> 1.0.9.5", "1.0.9.6", True),
    ("~> 1.0.9.5", "1.0.9.4", False),
    ("~> 1.0.9.5", "1.0.10", False),
    ("~> v1.6.0", "1.6.6", True),
    ("~>1.6.0", "1.6.6", True),
    ("~> 1.6.0, != 1.6.6", "1.6.6", False),
    ("~> 1.6, < 1.8", "1.8.0", False),
    # pre-releases: only when named exactly
    ("1.12.0-beta1", "1.12.0-beta1", True),
    ("= 1.12.0-beta1", "1.12.0-beta1", True),
    ("v1.12.0-beta1", "1.12.0-beta1", True),
    ("1.12.0-beta1", "1.12.0-beta2", False),
    ("1.12.0-beta1", "1.12.0", False),
    ("1.12.0", "1.12.0-beta1", False),
    (">= 1.6", "1.12.0-beta1", False),
    ("> 1.11.4", "1.12.0-beta1", False),
    ("< 1.13", "1.12.0-beta1", False),
    ("~> 1.12.0", "1.12.0-beta1", False),
    ("~> 1.11", "1.12.0-rc1", False),
    ("!= 1.12.0", "1.12.0-beta1", False),
    (">= 1.12.0-beta1", "1.12.0-beta2", False),
    (">= 1.12.0-beta1", "1.12.0", True),
    (">= 1.12.0-beta1", "1.12.1", True),
    ("< 1.12.0-beta1", "1.11.4", True),
    ("<= 1.12.0-beta1", "1.12.0", False),
    ("= 1.12.0-beta1, != 1.12.0-beta1", "1.12.0-beta1", False),
]


@pytest.mark.parametrize(("constraint", "version", "expected"), MATCHES)
def test_constraint_matches_as_terraform_does(constraint: str, version: str, expected: bool) -> None:
    assert VersionConstraint.parse(constraint).matches(Version.parse(version)) is expected


@pytest.mark.parametrize(
    ("constraint", "newest"),
    [
        ("~> 1.6.0", "1.6.6"),
        ("~> 1.6", "1.11.4"),
        ("~> 1.5.0", "1.5.7"),
        (">= 1.5, < 1.6", "1.5.7"),
        ("!= 1.11.4", "1.6.6"),
        (">= 1.0", "1.11.4"),
        ("1.12.0-beta1", "1.12.0-beta1"),
        ("v1.6.0", "1.6.0"),
        ("~> 2.0", None),
        ("< 1.0", None),
    ],
)
def test_newest_matching_version_skips_pre_releases_not_named(constraint: str, newest: str | None) -> None:
    candidates = [Version.parse(v) for v in ("1.5.7", "1.6.0", "1.6.6", "1.11.4", "1.12.0-beta1", "1.12.0-rc1")]
    found = VersionConstraint.parse(constraint).newest(candidates)
    assert (str(found) if found else None) == newest


def test_versions_order_by_precedence() -> None:
    texts = ["1.12.0", "1.12.0-rc1", "1.12.0-beta2", "1.12.0-beta1", "1.11.10", "1.11.4", "1.2.0", "0.15.5"]
    parsed = [Version.parse(text) for text in texts]
    assert [str(v) for v in sorted(parsed, reverse=True)] == texts
    assert Version.parse("v1.6") == Version.parse("1.6.0")
    assert str(Version.parse("v1.6")) == "1.6.0"


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("~> 1.x", "'~> 1.x' is not a condition"),
        ("latest", "'latest' is not a condition"),
        (">= 1.5,", "an empty condition"),
        ("=> 1.5", "'=> 1.5' is not a condition"),
        (">= 1.5 < 2", "'>= 1.5 < 2' is not a condition"),
        ("~> 1.12.0-beta1", "chosen only when named exactly"),
    ],
)
def test_a_malformed_constraint_says_what_to_write(text: str, complaint: str) -> None:
    with pytest.raises(VersionSyntaxError) as raised:
        VersionConstraint.parse(text)
    assert complaint in str(raised.value)
    assert f'"{text}"' in str(raised.value)


# --- finding binaries locally ---


def test_binaries_in_the_bin_dir_are_found_by_their_names(tmp_path: Path, real_terraform: str) -> None:
    bin_dir = tmp_path / "bin"
    atlantis_style = write_fake_terraform(bin_dir / "terraform1.6.0", "1.6.0", real_terraform)
    underscored = write_fake_terraform(bin_dir / "terraform_1.5.7", "1.5.7", real_terraform)
    nested = write_fake_terraform(bin_dir / "1.11.4" / "terraform", "1.11.4", real_terraform)
    not_executable = bin_dir / "terraform1.9.0"
    not_executable.write_text("#!/bin/sh\n")
    versions = versions_for(tmp_path, "http://127.0.0.1:9", allow_download=False)

    assert versions.binary_for("~> 1.6.0") == atlantis_style
    assert versions.binary_for("1.5.7") == underscored
    assert versions.binary_for("v1.5.7") == underscored
    assert versions.binary_for(">= 1.5") == nested
    assert versions.binary_for("< 1.11") == atlantis_style
    assert {str(v) for v in versions.local_versions()} == {"1.5.7", "1.6.0", "1.11.4"}


def test_a_local_match_is_used_without_asking_the_release_server(
    tmp_path: Path, real_terraform: str, releases: ReleaseServer
) -> None:
    local = write_fake_terraform(tmp_path / "bin" / "terraform1.6.0", "1.6.0", real_terraform)
    versions = versions_for(tmp_path, releases.url)

    # 1.6.6 is released and newer, but a matching local binary wins.
    assert versions.binary_for("~> 1.6.0") == local
    assert releases.requests == []


def test_the_bin_dir_wins_over_the_cache_for_the_same_version(
    tmp_path: Path, real_terraform: str, releases: ReleaseServer
) -> None:
    versions = versions_for(tmp_path, releases.url)
    cached = versions.binary_for("1.6.6")
    assert cached == tmp_path / "cache" / "1.6.6" / "terraform"

    preferred = write_fake_terraform(tmp_path / "bin" / "terraform1.6.6", "1.6.6", real_terraform)
    assert versions.binary_for("1.6.6") == preferred
    assert versions.binary_for("~> 1.6.0") == preferred


def test_the_default_terraform_counts_by_the_version_it_reports(
    tmp_path: Path, real_terraform: str, releases: ReleaseServer
) -> None:
    on_path = binary_version(real_terraform)
    assert on_path is not None
    versions = versions_for(tmp_path, releases.url, default_binary=real_terraform)

    assert versions.binary_for(None) == real_terraform
    assert versions.binary_for("  ") == real_terraform
    assert versions.binary_for(str(on_path)) == real_terraform
    assert versions.binary_for(f">= {on_path}") == real_terraform
    assert releases.requests == []


def test_a_default_version_is_resolved_like_any_other(tmp_path: Path, releases: ReleaseServer) -> None:
    versions = versions_for(tmp_path, releases.url, default_version="~> 1.5.0")

    binary = versions.binary_for(None)

    assert binary == tmp_path / "cache" / "1.5.7" / "terraform"
    assert reported_version(binary) == "1.5.7"


def test_a_bad_default_version_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(TerraformVersionError, match="is not a terraform version or constraint"):
        versions_for(tmp_path, "http://127.0.0.1:9", default_version="one point six")


# --- downloading ---


def test_a_constraint_downloads_the_newest_release_verifies_and_caches_it(
    tmp_path: Path, releases: ReleaseServer
) -> None:
    versions = versions_for(tmp_path, releases.url)

    binary = versions.binary_for("~> 1.6.0")

    assert binary == tmp_path / "cache" / "1.6.6" / "terraform"
    assert reported_version(binary) == "1.6.6"
    assert releases.requests == [
        "/terraform/index.json",
        "/terraform/1.6.6/terraform_1.6.6_SHA256SUMS",
        f"/terraform/1.6.6/{releases.zip_name('1.6.6')}",
    ]
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [".locks", "1.6.6"]
    assert [p.name for p in (tmp_path / "cache" / "1.6.6").iterdir()] == ["terraform"]

    # Later asks, in this process or a fresh one on the same cache, find it there.
    assert versions.binary_for("~> 1.6.0") == binary
    assert versions.binary_for("1.6.6") == binary
    assert versions_for(tmp_path, releases.url).binary_for("~> 1.6") == binary
    assert len(releases.requests) == 3


def test_an_exact_version_downloads_without_reading_the_index(tmp_path: Path, releases: ReleaseServer) -> None:
    binary = versions_for(tmp_path, releases.url).binary_for("v1.5.7")

    assert reported_version(binary) == "1.5.7"
    assert releases.requests == [
        "/terraform/1.5.7/terraform_1.5.7_SHA256SUMS",
        f"/terraform/1.5.7/{releases.zip_name('1.5.7')}",
    ]


def test_the_downloaded_binary_runs_terraform(tmp_path: Path, releases: ReleaseServer) -> None:
    binary = versions_for(tmp_path, releases.url).binary_for("~> 1.11.0")

    assert reported_version(binary) == "1.11.4"
    formatted = subprocess.run(
        [str(binary), "fmt", "-"],
        input='resource "null_resource" "x" {\ntriggers={a="b"}\n}\n',
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "CHECKPOINT_DISABLE": "1"},
    )
    assert formatted.stdout == 'resource "null_resource" "x" {\n  triggers = { a = "b" }\n}\n'


def test_pre_releases_are_downloaded_only_when_named(tmp_path: Path, releases: ReleaseServer) -> None:
    versions = versions_for(tmp_path, releases.url)

    assert reported_version(versions.binary_for(">= 1.6")) == "1.11.4"
    assert reported_version(versions.binary_for("1.12.0-beta1")) == "1.12.0-beta1"
    # Now installed, the pre-release still does not answer a range.
    assert reported_version(versions.binary_for(">= 1.11")) == "1.11.4"


def test_a_tampered_download_is_refused_and_nothing_is_installed(tmp_path: Path, releases: ReleaseServer) -> None:
    expected = (releases.zip_path("1.6.6").parent / "terraform_1.6.6_SHA256SUMS").read_text().split()[0]
    releases.tamper("1.6.6")
    actual = hashlib.sha256(releases.zip_path("1.6.6").read_bytes()).hexdigest()
    versions = versions_for(tmp_path, releases.url)

    with pytest.raises(TerraformVersionError) as raised:
        versions.binary_for("~> 1.6.0")

    message = str(raised.value)
    assert message.startswith("refused terraform 1.6.6: ")
    assert f"expected sha256 {expected}, got {actual}" in message
    assert "nothing was installed" in message
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [".locks"]
    assert "1.6.6" not in {str(v) for v in versions.local_versions()}


def test_concurrent_threads_and_processes_download_a_version_once(tmp_path: Path, releases: ReleaseServer) -> None:
    releases.zip_delay = 0.5  # long enough that every requester is waiting while the first downloads
    program = textwrap.dedent(
        f"""
        import sys, threading
        from pathlib import Path
        from atlas.runtime.tfversions import TerraformVersions

        versions = TerraformVersions(
            Path({str(tmp_path / "bin")!r}), Path({str(tmp_path / "cache")!r}),
            download_url={releases.url!r}, default_binary={str(tmp_path / "none")!r},
        )
        found = []
        threads = [threading.Thread(target=lambda: found.append(versions.binary_for("1.6.6"))) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        print("\\n".join(str(path) for path in found))
        """
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", program], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    # This process's threads join while one of the others is mid-download, so they must wait for it.
    deadline = time.monotonic() + 30
    while releases.count(releases.zip_name("1.6.6")) == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    versions = versions_for(tmp_path, releases.url)
    results: list[Path | str] = []
    errors: list[BaseException] = []

    def ask() -> None:
        try:
            results.append(versions.binary_for("1.6.6"))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    outputs = [process.communicate(timeout=60)[0] for process in processes]

    assert errors == []
    assert [process.returncode for process in processes] == [0, 0, 0]
    expected = tmp_path / "cache" / "1.6.6" / "terraform"
    assert results == [expected] * 8
    assert [line for output in outputs for line in output.split()] == [str(expected)] * 24
    assert releases.count(releases.zip_name("1.6.6")) == 1
    assert releases.count("_SHA256SUMS") == 1
    assert reported_version(expected) == "1.6.6"


# --- what a pull request is told ---


def test_downloads_disabled_names_the_version_and_what_is_installed(
    tmp_path: Path, real_terraform: str, releases: ReleaseServer
) -> None:
    write_fake_terraform(tmp_path / "bin" / "terraform1.5.7", "1.5.7", real_terraform)
    versions = versions_for(tmp_path, releases.url, allow_download=False)

    with pytest.raises(TerraformVersionError) as raised:
        versions.binary_for("1.4.6")
    assert str(raised.value) == (
        "terraform 1.4.6 is not installed in --tf-bin-dir and downloads are disabled (--tf-download=false). "
        "Installed: 1.5.7 (--tf-bin-dir). Put a binary named terraform1.4.6 in --tf-bin-dir, or allow downloads."
    )

    with pytest.raises(TerraformVersionError) as raised:
        versions.binary_for("~> 1.6.0")
    assert str(raised.value) == (
        'no terraform matching "~> 1.6.0" is installed in --tf-bin-dir and downloads are disabled '
        "(--tf-download=false). Installed: 1.5.7 (--tf-bin-dir). Put a binary named terraform<version> in "
        "--tf-bin-dir, or allow downloads."
    )
    assert releases.requests == []


def test_a_constraint_no_release_meets_lists_the_newest_releases(tmp_path: Path, releases: ReleaseServer) -> None:
    with pytest.raises(TerraformVersionError) as raised:
        versions_for(tmp_path, releases.url).binary_for("~> 2.0")

    assert str(raised.value) == (
        f'no terraform release matches "~> 2.0": the newest at {releases.url} are 1.11.4, 1.6.6, 1.6.0, 1.5.7, '
        "1.3.10. Installed: none. Change the version constraint to one that exists."
    )


def test_an_unpublished_exact_version_is_reported_as_such(tmp_path: Path, releases: ReleaseServer) -> None:
    with pytest.raises(TerraformVersionError) as raised:
        versions_for(tmp_path, releases.url).binary_for("1.4.6")

    assert str(raised.value).startswith(f"terraform 1.4.6 is not published at {releases.url} (404 for ")
    assert not (tmp_path / "cache" / "1.4.6").exists()


def test_a_release_without_a_build_for_this_platform_says_so(tmp_path: Path, releases: ReleaseServer) -> None:
    versions = versions_for(tmp_path, releases.url)

    with pytest.raises(TerraformVersionError) as raised:
        versions.binary_for("~> 1.3.0")
    assert f"matches 1.3.10 at {releases.url}, but none of them has a build for {releases.platform}" in str(
        raised.value
    )

    with pytest.raises(TerraformVersionError) as raised:
        versions.binary_for("1.3.10")
    assert str(raised.value).startswith(f"terraform 1.3.10 has no build for {releases.platform}")


def test_an_unreachable_release_server_is_named_without_credentials(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    versions = versions_for(tmp_path, f"http://mirror-user:hunter2@127.0.0.1:{port}/")

    with pytest.raises(TerraformVersionError) as raised:
        versions.binary_for("~> 1.6.0")

    message = str(raised.value)
    assert message.startswith(
        f"cannot download the list of terraform releases from http://127.0.0.1:{port}/terraform/index.json: "
        "cannot connect."
    )
    assert "hunter2" not in message
    assert "mirror-user" not in message
