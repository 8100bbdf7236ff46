"""Writing and checking plan bytes, for every artifact store: nothing unverified ever lands at a destination."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from atlas.stores.plans import ArtifactError, PlanRecord

CHUNK_BYTES = 1024 * 1024
"""How much of a plan file is read or written at a time."""


def chunks(file: IO[bytes]) -> Iterator[bytes]:
    while chunk := file.read(CHUNK_BYTES):
        yield chunk


def destination(meta: PlanRecord, dest: Path) -> Path:
    return dest / meta.name if dest.is_dir() else dest


def write_checked(chunks: Iterable[bytes], dest: Path, *, sha256: str, size: int, mismatch: str) -> Path:
    """Write `chunks` to `dest` only if they hash to `sha256`; otherwise raise ArtifactError(`mismatch` + why)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    written = 0
    # Written beside `dest` and renamed over it, so `dest` is never a partial or unverified plan.
    with tempfile.NamedTemporaryFile(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part", delete=False) as file:
        temporary = Path(file.name)
        try:
            for chunk in chunks:
                digest.update(chunk)
                written += len(chunk)
                file.write(chunk)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
    actual = digest.hexdigest()
    if actual != sha256 or written != size:
        temporary.unlink(missing_ok=True)
        raise ArtifactError(f"{mismatch}: expected sha256 {sha256} ({size} bytes), got {actual} ({written} bytes)")
    os.replace(temporary, dest)
    return dest


def check_bytes(meta: PlanRecord, data: bytes, mismatch: str) -> None:
    actual = hashlib.sha256(data).hexdigest()
    if actual != meta.sha256 or len(data) != meta.size:
        raise ArtifactError(
            f"{mismatch}: expected sha256 {meta.sha256} ({meta.size} bytes), got {actual} ({len(data)} bytes)"
        )


def sidecar(planfile: Path) -> Path:
    return planfile.with_name(planfile.name + ".json")


def changed(meta: PlanRecord) -> str:
    return f"{meta.description} changed after it was described, so it was not stored"


def tampered(meta: PlanRecord) -> str:
    return (f"{meta.description} in the plan store does not match its checksum "
            "(tampered with, or replaced by a newer plan)")


def missing(meta: PlanRecord, store: str) -> ArtifactError:
    return ArtifactError(f"{meta.description} is missing from the plan store ({store}); plan again")


