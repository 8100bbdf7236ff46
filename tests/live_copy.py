"""A fixture's projects applied by hand in a copy of their own: the live infrastructure drift checks compare with.

The copy keeps its state in the fixture's shared state directory (as a remote backend would), so
what it applies is what atlas's checks of the repository's default branch then find.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.atlas_plugin import FIXTURES


@dataclass
class LiveCopy:
    path: Path

    @classmethod
    def of(cls, fixture: str, state_dir: Path, where: Path) -> LiveCopy:
        live = where / fixture
        shutil.copytree(FIXTURES / fixture, live)
        for path in live.rglob("*.tf"):
            path.write_text(path.read_text().replace("__STATE_DIR__", str(state_dir)))
        return cls(live)

    def terraform(self, project: str, *args: str) -> str:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ATLAS_")}
        done = subprocess.run(["terraform", *args, "-input=false", "-no-color"], cwd=self.path / project, env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def apply(self, project: str, *args: str) -> None:
        """`terraform apply` in the live copy: by hand, outside atlas."""
        if not (self.path / project / ".terraform").is_dir():
            self.terraform(project, "init")
        self.terraform(project, "apply", "-auto-approve", *args)
