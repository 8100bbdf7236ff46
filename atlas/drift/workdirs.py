"""Where drift checks keep their files, and one check of a repository at a time.

A check's working copies are `<data-dir>/repos/OWNER/NAME/0/drift-WORKSPACE` (pull request 0 being
no pull request); its plans, logs and the repository's lock are under `<data-dir>/drift/`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

from atlas.commands.context import CommandContext
from atlas.models import Project, Repo
from atlas.runtime.joblog import JobLog

DRIFT_PULL_NUMBER = 0
"""The pull request number of the default branch: its working copies and a remediation's lock use it."""

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def component(project: Project) -> str:
    parts = [project.dir, project.workspace, *([project.name] if project.name else [])]
    return "--".join(_UNSAFE.sub("_", part) for part in parts)


def drift_path(ctx: CommandContext, repo: Repo, kind: str, name: str) -> Path:
    return ctx.settings.data_dir / "drift" / kind / repo.owner / repo.name / name


def lock_path(ctx: CommandContext, repo: Repo) -> Path:
    return drift_path(ctx, repo, "locks", "repo.lock")


def repo_log(ctx: CommandContext, repo: Repo) -> JobLog:
    return JobLog(drift_path(ctx, repo, "logs", "checkout.log"), redactor=ctx.settings.secrets())


def project_log(ctx: CommandContext, repo: Repo, project: Project) -> JobLog:
    """The project's check log, started afresh: `<data-dir>/drift/logs/OWNER/NAME/PROJECT.log`."""
    path = drift_path(ctx, repo, "logs", component(project) + ".log")
    path.unlink(missing_ok=True)
    return JobLog(path, redactor=ctx.settings.secrets())


def checkout(ctx: CommandContext, repo: Repo, sha: str, workspace: str, joblog: JobLog) -> Path:
    return ctx.working_copies.checkout(repo, DRIFT_PULL_NUMBER, f"drift-{workspace}", sha, ctx.token_for(repo),
                                       log=joblog)


_THREAD_LOCKS: dict[Path, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


@contextlib.contextmanager
def exclusive(path: Path, *, wait: bool = True) -> Iterator[bool]:
    """Hold `path` against other threads and processes (checks of one repository share working copies).

    Yields whether it is held: with `wait=False`, False at once when someone else holds it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with _THREAD_LOCKS_GUARD:
        thread_lock = _THREAD_LOCKS.setdefault(path, threading.Lock())
    if not thread_lock.acquire(blocking=wait):
        yield False
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)
    finally:
        thread_lock.release()
