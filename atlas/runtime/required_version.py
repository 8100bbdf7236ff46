"""The `required_version` a project's code declares in its `terraform {}` blocks, read with python-hcl2.

With no `terraform_version` in the repo config, this constraint chooses the binary (as Atlantis
does): the newest installed or installable version that meets it. Terraform combines every
`required_version` of a module's files, so they are joined into one constraint here too. A file
python-hcl2 cannot parse is skipped: terraform itself reports its syntax error in the plan.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2

log = logging.getLogger(__name__)

_SOURCE_SUFFIXES = (".tf", ".tofu")
"""Terraform's files, and OpenTofu's own (which it reads instead of a `.tf` of the same name)."""


@dataclass(frozen=True)
class RequiredVersion:
    """The constraint the code declares, and the files it comes from (for messages)."""

    constraint: str
    files: tuple[str, ...]

    @property
    def where(self) -> str:
        return ", ".join(self.files)


def required_version(project_dir: Path) -> RequiredVersion | None:
    """The project's combined `required_version`, or None when its code declares none."""
    constraints: list[str] = []
    files: list[str] = []
    try:
        paths = sorted(path for path in project_dir.iterdir() if path.suffix in _SOURCE_SUFFIXES and path.is_file())
    except OSError:
        return None
    for path in paths:
        for constraint in _declared(path):
            if constraint not in constraints:
                constraints.append(constraint)
            if path.name not in files:
                files.append(path.name)
    if not constraints:
        return None
    return RequiredVersion(", ".join(constraints), tuple(files))


def _declared(path: Path) -> list[str]:
    try:
        document = hcl2.loads(path.read_text(encoding="utf-8"))
    except Exception as error:
        log.debug("cannot read required_version from %s: %s", path, str(error).splitlines()[0] if str(error) else error)
        return []
    found = []
    for block in _blocks(document.get("terraform")):
        value = block.get("required_version")
        if isinstance(value, str) and _literal(value).strip():
            found.append(_literal(value).strip())
    return found


def _blocks(value: Any) -> list[dict[str, Any]]:
    return [block for block in value if isinstance(block, dict)] if isinstance(value, list) else []


def _literal(value: str) -> str:
    """python-hcl2 keeps a string's quotes: `'">= 1.5"'`."""
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value
