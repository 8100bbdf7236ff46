"""What `terraform init` depends on, as one fingerprint, so a working copy re-runs init only when it changed.

The inputs: the terraform binary and version, init's arguments and the `TF_*` environment it runs
with, and the contents of every Terraform file and lock file of the project and, followed
transitively, of every local module directory it names (module sources, versions, backend
configuration and required providers all live in those files), plus files named by
`-backend-config=`. Hashing whole files rather than parsing them keeps the rule "when in doubt, init".
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

STAMP = Path(".terraform") / "atlas-init-inputs"
"""Where a successful init records the fingerprint of its inputs, inside the project's `.terraform`."""

_LOCAL_SOURCE = re.compile(r"""\bsource\s*[=:]\s*"(\.\.?/[^"]*)\"""")
_TERRAFORM_FILE = re.compile(r".*\.(tf|tf\.json|tofu|tofu\.json)$|^\.terraform\.lock\.hcl$|^terraformrc$")


def init_fingerprint(project_dir: Path, *, binary: str, version: str, args: Sequence[str],
                     env: Mapping[str, str]) -> str:
    digest = hashlib.sha256()
    digest.update(f"binary={binary}\nversion={version}\n".encode())
    for arg in args:
        digest.update(f"arg={arg}\n".encode())
        if arg.startswith("-backend-config="):
            _add_file(digest, project_dir / arg.partition("=")[2])
    for name in sorted(env):
        if name.startswith("TF_"):
            digest.update(f"env={name}={env[name]}\n".encode())
    seen: set[Path] = set()
    pending = [project_dir.resolve()]
    while pending:
        directory = pending.pop()
        if directory in seen or not directory.is_dir():
            continue
        seen.add(directory)
        digest.update(f"dir={os.path.relpath(directory, project_dir.resolve())}\n".encode())
        for path in sorted(directory.iterdir()):
            if path.is_file() and _TERRAFORM_FILE.match(path.name):
                text = _add_file(digest, path)
                pending += [(directory / source.split("//")[0]).resolve() for source in _LOCAL_SOURCE.findall(text)]
    return digest.hexdigest()


def _add_file(digest: hashlib._Hash, path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        digest.update(f"missing={path.name}\n".encode())
        return ""
    digest.update(f"file={path.name}:{len(data)}\n".encode())
    digest.update(data)
    return data.decode("utf-8", errors="replace")


def recorded(project_dir: Path) -> str:
    try:
        return (project_dir / STAMP).read_text().strip()
    except OSError:
        return ""


def record(project_dir: Path, fingerprint: str) -> None:
    if (project_dir / ".terraform").is_dir():
        (project_dir / STAMP).write_text(fingerprint + "\n")


def forget(project_dir: Path) -> None:
    (project_dir / STAMP).unlink(missing_ok=True)
