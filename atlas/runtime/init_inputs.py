"""What `terraform init` depends on, as one fingerprint, so a working copy re-runs init only when it changed.

The inputs: the terraform binary and version, init's arguments and the `TF_*` environment it runs
with, files named by `-backend-config=`, lock files and CLI configuration whole, and of every
Terraform file of the project and, followed transitively, of every local module directory it names,
what `init` reads there: `terraform` blocks (backend, cloud, required providers and version), each
module call's `source` and `version`, and the providers the configuration implies (provider blocks,
the provider of each resource, data source and ephemeral resource type, `provider =` arguments).
Variables, outputs, locals, `moved` blocks and resources' arguments are not init's business, so a
push that changes only them keeps the copy's init. "When in doubt, init": any other kind of block
counts whole, and a file that does not parse (or JSON syntax) counts as its whole text.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import hcl2

STAMP = Path(".terraform") / "atlas-init-inputs"
"""Where a successful init records the fingerprint of its inputs, inside the project's `.terraform`."""

_LOCAL_SOURCE = re.compile(r"""\bsource\s*[=:]\s*"(\.\.?/[^"]*)\"""")
_TERRAFORM_FILE = re.compile(r".*\.(tf|tf\.json|tofu|tofu\.json)$|^\.terraform\.lock\.hcl$|^terraformrc$")
_NATIVE_SYNTAX = re.compile(r".*\.(tf|tofu)$")
_NOT_READ_BY_INIT = frozenset({"variable", "output", "locals", "moved", "__comments__", "__inline_comments__"})
_RESOURCE_KINDS = frozenset({"resource", "data", "ephemeral"})


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
                text = _add_file(digest, path, read_by_init if _NATIVE_SYNTAX.match(path.name) else None)
                pending += [(directory / source.split("//")[0]).resolve() for source in _LOCAL_SOURCE.findall(text)]
    return digest.hexdigest()


def _add_file(digest: hashlib._Hash, path: Path, extract: Any = None) -> str:
    """Add the file (or what `extract` keeps of its text) to `digest`; its text."""
    try:
        data = path.read_bytes()
    except OSError:
        digest.update(f"missing={path.name}\n".encode())
        return ""
    text = data.decode("utf-8", errors="replace")
    counted = data if extract is None else extract(text).encode()
    digest.update(f"file={path.name}:{len(counted)}\n".encode())
    digest.update(counted)
    return text


@functools.lru_cache(maxsize=4096)
def read_by_init(text: str) -> str:
    """What `init` reads of one file in Terraform's native syntax, as canonical text; the whole text if in doubt."""
    try:
        body: dict[str, Any] = hcl2.loads(text)
    except Exception:  # hcl2 raises lark's many exception types: count the file whole
        return text
    kept: dict[str, Any] = {}
    for kind, blocks in sorted(body.items()):
        if kind in _NOT_READ_BY_INIT:
            continue
        if kind in _RESOURCE_KINDS:
            kept[kind] = sorted({
                (resource_type.strip('"').split("_")[0], str(arguments.get("provider", "")))
                for block in blocks for resource_type, named in block.items() if isinstance(named, dict)
                for arguments in named.values() if isinstance(arguments, dict)
            })
        elif kind == "module":
            kept[kind] = sorted(
                (name, str(arguments.get("source")), str(arguments.get("version")))
                for block in blocks for name, arguments in block.items() if isinstance(arguments, dict)
            )
        elif kind == "provider":
            kept[kind] = sorted({name for block in blocks for name in block})
        else:
            kept[kind] = blocks
    return json.dumps(kept, sort_keys=True, default=str)


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
