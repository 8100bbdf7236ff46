"""Choosing the terraform (or OpenTofu) binary for a project: by exact version or constraint, found locally or
downloaded once.

Versions and constraints follow Terraform's own rules for `required_version` (hashicorp/go-version):
`~>` lets only the rightmost written component grow, so `~> 1.6.0` means `>= 1.6.0, < 1.7.0`,
`~> 1.6` means `>= 1.6.0, < 2.0.0` and `~> 1` means `>= 1.0.0`. A pre-release such as `1.12.0-beta1`
is chosen only when a constraint names it exactly (`1.12.0-beta1` or `= 1.12.0-beta1`).

A local binary always wins over a download: binaries in the bin dir (named `terraform<version>`, as
Atlantis names them, `terraform_<version>` or `<version>/terraform`), earlier downloads in the
cache, and the default terraform's own version. Only when none matches (or an exact version is
missing) is the release server asked. A download is checked against the release's SHA256SUMS and
unpacked into `<cache>/<version>/terraform` with a rename, under a thread lock and a file lock, so
that every job and every process sharing the cache downloads a version once.

OpenTofu is chosen the same way, from its own places: binaries named `tofu<version>`,
`tofu_<version>` or `<version>/tofu` in the bin dir, its own cache, the default `tofu`, and
OpenTofu's releases (the version list of get.opentofu.org, the archives and SHA256SUMS of its
GitHub releases, `v<version>/tofu_<version>_<os>_<arch>.zip`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import re
import shutil
import stat
import subprocess
import tempfile
import threading
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

from atlas.config.versions import VERSION, VERSION_PATTERN, Version, VersionConstraint, VersionSyntaxError
from atlas.runtime.filelock import file_lock
from atlas.runtime.terraform import TerraformError, scrubbed_environ
from atlas.runtime.tfcli import UnreadableOutput, read_version

log = logging.getLogger(__name__)

DEFAULT_DOWNLOAD_URL = "https://releases.hashicorp.com"
"""HashiCorp's release server; a mirror must serve the same layout."""

DEFAULT_TOFU_DOWNLOAD_URL = "https://github.com/opentofu/opentofu/releases/download"
"""Where OpenTofu's release archives are: `<url>/v<version>/tofu_<version>_<os>_<arch>.zip`."""

DEFAULT_TOFU_INDEX_URL = "https://get.opentofu.org/tofu/api.json"
"""OpenTofu's list of every release and its files (the one its own downloader, tofudl, reads)."""

DEFAULT_HTTP_TIMEOUT = 60.0
"""Seconds a request to the release server may stay silent before atlas gives up."""

_VERSION_TIMEOUT_SECONDS = 30.0
_CHUNK_BYTES = 1 << 20
_SHOWN_RELEASES = 5
_ARCHITECTURES = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "i386": "386",
    "i686": "386",
    "armv6l": "arm",
    "armv7l": "arm",
}



@dataclass(frozen=True)
class ReleaseLayout:
    """How one distribution names its binaries and lays out its releases."""

    name: str
    """As comments and messages name it: Terraform or OpenTofu."""
    binary: str
    """The executable's name: terraform or tofu."""
    download_flag: str
    """The setting that points at the release server, for messages."""

    def index_url(self, download_url: str, index_url: str) -> str:
        return index_url if self.binary == "tofu" else f"{download_url}/terraform/index.json"

    def release_url(self, download_url: str, version: Version) -> str:
        if self.binary == "tofu":
            return f"{download_url}/v{version}"
        return f"{download_url}/terraform/{version}"

    def archive_name(self, version: Version, platform_name: str) -> str:
        return f"{self.binary}_{version}_{platform_name}.zip"

    def sums_name(self, version: Version) -> str:
        return f"{self.binary}_{version}_SHA256SUMS"

    def bin_dir_name(self) -> re.Pattern[str]:
        return re.compile(rf"{self.binary}_?({VERSION_PATTERN})")


TERRAFORM = ReleaseLayout("Terraform", "terraform", "--tf-download-url")
OPENTOFU = ReleaseLayout("OpenTofu", "tofu", "--tofu-download-url")


class TerraformVersionError(TerraformError):
    """No usable terraform for what a project asked; the message is fit for a pull request comment."""


@dataclass(frozen=True)
class LocalTerraform:
    """A terraform binary this machine already has, and where it was found (for messages)."""

    version: Version
    binary: Path | str
    found_in: str


@dataclass(frozen=True)
class Release:
    """One version the release server lists, and the platforms (`linux_amd64`) it has builds for."""

    version: Version
    platforms: frozenset[str] = field(default_factory=frozenset)


def current_platform() -> str:
    """This machine in HashiCorp's build naming, such as `linux_amd64` or `darwin_arm64`."""
    machine = platform.machine().lower()
    return f"{platform.system().lower()}_{_ARCHITECTURES.get(machine, machine)}"


class TerraformVersions:
    """Finds, or downloads once, the terraform (or tofu) binary a project asks for; safe to share between threads."""

    def __init__(
        self,
        bin_dir: Path,
        cache_dir: Path,
        *,
        download_url: str = DEFAULT_DOWNLOAD_URL,
        allow_download: bool = True,
        default_version: str | None = None,
        default_binary: str = "terraform",
        http_timeout: float = DEFAULT_HTTP_TIMEOUT,
        layout: ReleaseLayout = TERRAFORM,
        index_url: str = DEFAULT_TOFU_INDEX_URL,
    ) -> None:
        self.bin_dir = bin_dir
        self.cache_dir = cache_dir
        self.layout = layout
        self.download_url = download_url.rstrip("/")
        self.index_url = layout.index_url(self.download_url, index_url)
        # Where messages say the releases were looked up: the server for terraform, the version list for OpenTofu.
        self._source = self.index_url if layout is OPENTOFU else self.download_url
        self.allow_download = allow_download
        self.default_binary = default_binary
        self.http_timeout = http_timeout
        self.platform = current_platform()
        self.default_constraint = _parsed(default_version) if default_version else None
        self._guard = threading.Lock()
        self._default_version: tuple[tuple[str, int], Version | None] | None = None

    def binary_for(self, version_or_constraint: str | None) -> Path | str:
        """The binary to run for a version or constraint; None (or blank) means the default terraform.

        Raises TerraformVersionError when nothing local matches and the download is impossible.
        """
        text = (version_or_constraint or "").strip()
        if text:
            constraint = _parsed(text)
        elif self.default_constraint is not None:
            constraint = self.default_constraint
        else:
            return self.default_binary
        return self.binary_matching(constraint)

    def binary_matching(self, constraint: VersionConstraint) -> Path | str:
        """The newest local binary that meets `constraint`, else the newest release that does, installed."""
        local = self.local_versions()
        chosen = constraint.newest(local)
        if chosen is not None:
            return local[chosen].binary
        if not self.allow_download:
            raise TerraformVersionError(_not_installed_message(self.layout, constraint, local))
        version = constraint.exact or self._newest_release(constraint, local)
        return self.install(version)

    def local_versions(self) -> dict[Version, LocalTerraform]:
        """Every terraform found on this machine by version; the bin dir wins over the cache over the default."""
        found: dict[Version, LocalTerraform] = {}
        default = self.default_binary_version()
        if default is not None:
            found[default] = LocalTerraform(default, self.default_binary, f"the default, {self.default_binary}")
        for version, binary in _cached_binaries(self.cache_dir, self.layout):
            found[version] = LocalTerraform(version, binary, "the download cache")
        for version, binary in _bin_dir_binaries(self.bin_dir, self.layout):
            found[version] = LocalTerraform(version, binary, "--tf-bin-dir")
        return found

    def default_binary_version(self) -> Version | None:
        """The version the default terraform reports, or None when it is missing or unreadable."""
        path = shutil.which(self.default_binary)
        if path is None:
            return None
        try:
            identity = (path, os.stat(path).st_mtime_ns)
        except OSError:
            return None
        with self._guard:
            if self._default_version is not None and self._default_version[0] == identity:
                return self._default_version[1]
        version = binary_version(path)
        with self._guard:
            self._default_version = (identity, version)
        return version

    def releases(self) -> dict[Version, Release]:
        """The versions the release server lists (`/terraform/index.json`, or OpenTofu's `api.json`)."""
        url = self.index_url
        name = self.layout.binary
        response = self._get(url, what=f"the list of {name} releases")
        try:
            listed = response.json()["versions"]
            entries = _tofu_index(listed, name) if name == "tofu" else _terraform_index(listed)
        except (ValueError, KeyError, TypeError) as error:
            raise TerraformVersionError(
                f"{_shown(url)} is not a {name} release index ({error}); check {self.layout.download_flag}"
            ) from None
        releases: dict[Version, Release] = {}
        for text, platforms in entries:
            try:
                version = Version.parse(text)
            except ValueError:
                continue
            releases[version] = Release(version, frozenset(platforms))
        return releases

    def install(self, version: Version) -> Path:
        """Download `version` into the cache unless it is there; once per version across threads and processes."""
        binary = self.cache_dir / str(version) / self.layout.binary
        with file_lock(self.cache_dir / ".locks" / f"{version}.lock"):
            if _is_executable(binary):
                return binary
            self._download(version, binary)
        return binary

    def _newest_release(self, constraint: VersionConstraint, local: Mapping[Version, LocalTerraform]) -> Version:
        releases = self.releases()
        matching = [release for release in releases.values() if constraint.matches(release.version)]
        for_here = [release.version for release in matching if self.platform in release.platforms]
        if for_here:
            return max(for_here)
        installed = _describe_local(local)
        if matching:
            versions = sorted((release.version for release in matching), reverse=True)
            names = ", ".join(str(version) for version in versions[:_SHOWN_RELEASES])
            raise TerraformVersionError(
                f'{self.layout.binary} "{constraint}" matches {names} at {_shown(self._source)}, but none of them '
                f"has a build for {self.platform}. Installed: {installed}. Put a {self.platform} binary named "
                f"{self.layout.binary}<version> in --tf-bin-dir, or ask for another version."
            )
        newest = ", ".join(
            str(v) for v in sorted((v for v in releases if not v.prerelease), reverse=True)[:_SHOWN_RELEASES]
        )
        raise TerraformVersionError(
            f'no {self.layout.binary} release matches "{constraint}": the newest at {_shown(self._source)} are '
            f"{newest or 'none'}. Installed: {installed}. Change the version constraint to one that exists."
        )

    def _download(self, version: Version, binary: Path) -> None:
        name = self.layout.binary
        base = self.layout.release_url(self.download_url, version)
        archive_name = self.layout.archive_name(version, self.platform)
        sums_url = f"{base}/{self.layout.sums_name(version)}"
        sums = self._get(sums_url, what=f"{name} {version}", missing=f"{name} {version} is not published").text
        expected = _expected_sha256(sums, archive_name)
        if expected is None:
            raise TerraformVersionError(
                f"{name} {version} has no build for {self.platform} ({_shown(sums_url)} does not list "
                f"{archive_name}). Put a {self.platform} binary named {name}{version} in --tf-bin-dir."
            )
        archive_url = f"{base}/{archive_name}"
        log.info("downloading %s %s from %s", name, version, _shown(archive_url))
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        _remove_leftovers(self.cache_dir, version)
        staging = Path(tempfile.mkdtemp(prefix=f".partial-{version}-", dir=self.cache_dir))
        try:
            archive = staging / archive_name
            actual = self._fetch(archive_url, archive, what=f"{name} {version}")
            if actual != expected:
                raise TerraformVersionError(
                    f"refused {name} {version}: {_shown(archive_url)} does not match its SHA256SUMS "
                    f"(expected sha256 {expected}, got {actual}); nothing was installed. The download was "
                    f"corrupted or tampered with: try again, or check {self.layout.download_flag}."
                )
            _unpack_binary(archive, staging / name, archive_url)
            archive.unlink()
            staging.chmod(0o755)
            if binary.parent.exists():  # a directory without a usable binary: ours to replace
                shutil.rmtree(binary.parent)
            staging.rename(binary.parent)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        log.info("installed %s %s at %s", name, version, binary)

    def _get(self, url: str, *, what: str, missing: str | None = None) -> requests.Response:
        try:
            response = requests.get(url, timeout=self.http_timeout)
        except requests.RequestException as error:
            raise TerraformVersionError(self._unreachable(url, what, error)) from None
        if response.status_code == 404 and missing is not None:
            raise TerraformVersionError(
                f"{missing} at {_shown(self.download_url)} (404 for {_shown(url)}). Check the version number."
            )
        if response.status_code != 200:
            raise TerraformVersionError(self._unreachable(url, what, f"HTTP {response.status_code}"))
        return response

    def _fetch(self, url: str, destination: Path, *, what: str) -> str:
        """Stream `url` into `destination` and return the SHA256 of what arrived."""
        digest = hashlib.sha256()
        try:
            with requests.get(url, timeout=self.http_timeout, stream=True) as response:
                if response.status_code != 200:
                    raise TerraformVersionError(self._unreachable(url, what, f"HTTP {response.status_code}"))
                with destination.open("wb") as out:
                    for chunk in response.iter_content(_CHUNK_BYTES):
                        digest.update(chunk)
                        out.write(chunk)
        except requests.RequestException as error:
            raise TerraformVersionError(self._unreachable(url, what, error)) from None
        return digest.hexdigest()

    def _unreachable(self, url: str, what: str, reason: object) -> str:
        return (
            f"cannot download {what} from {_shown(url)}: {_shown_reason(reason)}. Check {self.layout.download_flag} "
            "and the network, or put the binary in --tf-bin-dir."
        )


def _parsed(text: str) -> VersionConstraint:
    try:
        return VersionConstraint.parse(text)
    except VersionSyntaxError as error:
        raise TerraformVersionError(str(error)) from None


def binary_version(binary: str | Path) -> Version | None:
    """The version `binary version -json` reports, or None when it cannot say."""
    env = scrubbed_environ()
    env["CHECKPOINT_DISABLE"] = "1"  # no update check: it would reach out to HashiCorp on every call
    try:
        return Version.parse(read_version(binary, env, _VERSION_TIMEOUT_SECONDS))
    except (OSError, subprocess.TimeoutExpired, UnreadableOutput, ValueError) as error:
        log.warning("cannot read the version of %s: %s", binary, error)
        return None


def _bin_dir_binaries(bin_dir: Path, layout: ReleaseLayout = TERRAFORM) -> Iterator[tuple[Version, Path]]:
    """`terraform1.5.7`, `terraform_1.5.7` and `1.5.7/terraform` in the bin dir (`tofu…` for OpenTofu)."""
    try:
        entries = list(bin_dir.iterdir())
    except OSError:
        return
    pattern = layout.bin_dir_name()
    for entry in entries:
        named = pattern.fullmatch(entry.name)
        if named is not None and _is_executable(entry):
            yield Version.parse(named.group(1)), entry
        elif VERSION.fullmatch(entry.name) and _is_executable(entry / layout.binary):
            yield Version.parse(entry.name), entry / layout.binary


def _cached_binaries(cache_dir: Path, layout: ReleaseLayout = TERRAFORM) -> Iterator[tuple[Version, Path]]:
    try:
        entries = list(cache_dir.iterdir())
    except OSError:
        return
    for entry in entries:
        if VERSION.fullmatch(entry.name) and _is_executable(entry / layout.binary):
            yield Version.parse(entry.name), entry / layout.binary


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _terraform_index(listed: Any) -> list[tuple[str, list[str]]]:
    """HashiCorp's `index.json` versions: `{"1.11.4": {"builds": [{"os": "linux", "arch": "amd64"}]}}`."""
    if not isinstance(listed, dict):
        raise TypeError("versions is not an object")
    return [(str(name), list(_build_platforms(entry))) for name, entry in listed.items()]


def _tofu_index(listed: Any, binary: str) -> list[tuple[str, list[str]]]:
    """OpenTofu's `api.json` versions: `[{"id": "1.8.0", "files": ["tofu_1.8.0_linux_amd64.zip", …]}]`."""
    if not isinstance(listed, list):
        raise TypeError("versions is not a list")
    found = []
    for entry in listed:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            continue
        files = entry["files"] if isinstance(entry.get("files"), list) else []
        prefix = f"{binary}_{entry['id']}_"
        platforms = [name[len(prefix):-len(".zip")] for name in files
                     if isinstance(name, str) and name.startswith(prefix) and name.endswith(".zip")]
        found.append((entry["id"], platforms))
    return found


def _build_platforms(entry: Any) -> Iterator[str]:
    builds = entry.get("builds") if isinstance(entry, dict) else None
    for build in builds if isinstance(builds, list) else []:
        if isinstance(build, dict) and isinstance(build.get("os"), str) and isinstance(build.get("arch"), str):
            yield f"{build['os']}_{build['arch']}"


def _expected_sha256(sums: str, filename: str) -> str | None:
    """The hash SHA256SUMS gives for `filename` (lines are `<hex>  <filename>`)."""
    for line in sums.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("*") == filename and re.fullmatch(r"[0-9a-fA-F]{64}", parts[0]):
            return parts[0].lower()
    return None


def _unpack_binary(archive: Path, destination: Path, url: str) -> None:
    """Write the archive's top-level binary (named as `destination`) there, executable; nothing else is extracted."""
    name = destination.name
    try:
        with zipfile.ZipFile(archive) as bundle:
            try:
                member = bundle.getinfo(name)
            except KeyError:
                raise TerraformVersionError(f"{_shown(url)} holds no {name} binary; check its download URL") from None
            with bundle.open(member) as source, destination.open("wb") as out:
                shutil.copyfileobj(source, out, _CHUNK_BYTES)
    except zipfile.BadZipFile as error:
        raise TerraformVersionError(f"{_shown(url)} is not a readable zip ({error}); nothing was installed") from None
    destination.chmod(destination.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH | stat.S_IRGRP)


def _remove_leftovers(cache_dir: Path, version: Version) -> None:
    """Delete half-written downloads of `version` left by a process that died; the caller holds its lock."""
    for leftover in cache_dir.glob(f".partial-{version}-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def _not_installed_message(
    layout: ReleaseLayout, constraint: VersionConstraint, local: Mapping[Version, LocalTerraform]
) -> str:
    exact = constraint.exact
    binary = layout.binary
    wanted = f"{binary} {exact} is not" if exact is not None else f'no {binary} matching "{constraint}" is'
    name = f"{binary}{exact}" if exact is not None else f"{binary}<version>"
    return (
        f"{wanted} installed in --tf-bin-dir and downloads are disabled (--tf-download=false). "
        f"Installed: {_describe_local(local)}. Put a binary named {name} in --tf-bin-dir, or allow downloads."
    )


def _describe_local(local: Mapping[Version, LocalTerraform]) -> str:
    if not local:
        return "none"
    return ", ".join(f"{version} ({local[version].found_in})" for version in sorted(local, reverse=True))


def _shown(url: str) -> str:
    """`url` without any user name or password, for messages and logs."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    return urlunsplit(parts._replace(netloc=netloc))


def _shown_reason(reason: object) -> str:
    """A requests error as one short line, without the URL it repeats (which may carry credentials)."""
    if isinstance(reason, requests.Timeout):
        return "timed out"
    if isinstance(reason, requests.ConnectionError):
        return "cannot connect"
    return str(reason).splitlines()[0] if str(reason) else type(reason).__name__
