"""Plans as files under the data dir: the embedded artifact store, for one host."""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

from atlas.models import Project
from atlas.stores import plan_files
from atlas.stores.plans import PlanRecord, artifact_name, pull_dir


class LocalArtifactStore:
    """Plans as files under `root` (`<data-dir>/plans`), each with its metadata beside it as `NAME.json`.

    For one process and its threads: other hosts cannot see the files.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def location(self) -> str:
        return str(self.root)

    def _dir(self, repo: str, pull_number: int) -> Path:
        return self.root / pull_dir(repo, pull_number)

    def _path(self, repo: str, pull_number: int, project: Project) -> Path:
        return self._dir(repo, pull_number) / artifact_name(project)

    def put(self, meta: PlanRecord, planfile: Path) -> None:
        path = self._path(meta.repo, meta.pull_number, meta.project)
        # `planfile` may be `path` itself (CommandContext.planfile names the same file for simple dirs);
        # copying through a temporary file handles that too.
        with planfile.open("rb") as source:
            plan_files.write_checked(plan_files.chunks(source), path, sha256=meta.sha256, size=meta.size,
                                     mismatch=plan_files.changed(meta))
        sidecar = plan_files.sidecar(path)
        temporary = sidecar.with_name(f".{sidecar.name}.{os.getpid()}.{threading.get_ident()}.part")
        temporary.write_text(meta.model_dump_json(), encoding="utf-8")
        os.replace(temporary, sidecar)

    def get(self, repo: str, pull_number: int, project: Project) -> PlanRecord | None:
        try:
            sidecar = plan_files.sidecar(self._path(repo, pull_number, project))
            return PlanRecord.model_validate_json(sidecar.read_bytes())
        except FileNotFoundError:
            return None

    def fetch(self, meta: PlanRecord, dest: Path) -> Path:
        path = self._path(meta.repo, meta.pull_number, meta.project)
        try:
            source = path.open("rb")
        except FileNotFoundError:
            raise plan_files.missing(meta, self.location) from None
        with source:
            return plan_files.write_checked(plan_files.chunks(source), plan_files.destination(meta, dest),
                                            sha256=meta.sha256, size=meta.size, mismatch=plan_files.tampered(meta))

    def delete(self, repo: str, pull_number: int, project: Project | None = None) -> None:
        directory = self._dir(repo, pull_number)
        names = [artifact_name(project)] if project is not None else [
            sidecar.name.removesuffix(".json") for sidecar in directory.glob("*.tfplan.json")]
        for name in names:
            # Metadata first: a plan without it is never offered to apply.
            (directory / f"{name}.json").unlink(missing_ok=True)
            (directory / name).unlink(missing_ok=True)
        if project is None:
            # Only what is left empty: the directory may hold other files of the pull request.
            for empty in (directory, directory.parent, directory.parent.parent):
                with contextlib.suppress(OSError):
                    empty.rmdir()
