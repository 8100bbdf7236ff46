"""The sandbox as operators configure it: `--sandbox` (`SandboxMode`) and `--sandbox-paths` (`HostPath`).

Plain values, so that the settings can check them without loading the sandbox itself
(`atlas.runtime.sandbox`), which applies them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path


class SandboxMode(StrEnum):
    """`--sandbox`: whether pull-request code runs confined."""

    AUTO = "auto"
    """Confined where the host allows it; otherwise unconfined, with a loud warning."""
    REQUIRED = "required"
    """Confined, or atlas refuses to start."""
    OFF = "off"
    """Unconfined, as the operator chose."""


@dataclass(frozen=True)
class HostPath:
    """A host path an operator lets pull-request code reach (`--sandbox-paths`): `PATH` or `PATH:ro`."""

    path: Path
    read_only: bool = False

    @classmethod
    def parse(cls, text: str) -> HostPath:
        """`/srv/state` (read-write) or `/srv/creds:ro` (read-only); ValueError says what is wrong."""
        raw = text.strip()
        read_only = False
        for suffix, mode in ((":ro", True), (":rw", False)):
            if raw.endswith(suffix):
                raw, read_only = raw[: -len(suffix)], mode
                break
        if not raw:
            raise ValueError(f"{text!r} names no path; write PATH or PATH:ro")
        path = Path(raw).expanduser()
        if not path.is_absolute():
            raise ValueError(f"{raw!r} is not an absolute path")
        return cls(Path(os.path.normpath(path)), read_only)

    def __str__(self) -> str:
        return f"{self.path}{':ro' if self.read_only else ''}"
