"""One exclusive lock on a file path, held against other threads of this process and other processes.

`flock` alone serialises processes (and open file descriptions), but the thread lock in front of it
lets a thread that need not wait (`wait=False`) learn at once that another thread holds the path.
The lock file may be removed and recreated while someone waits on it (a working copy deleted with
its pull request): the lock is taken again on the file now at that path, so two holders never hold
two different inodes of one path.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path

_THREAD_LOCKS: dict[Path, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


@contextlib.contextmanager
def file_lock(path: Path, *, wait: bool = True) -> Iterator[bool]:
    """Hold `path` exclusively; yields whether it is held (with `wait=False`, False when it is taken)."""
    with _THREAD_LOCKS_GUARD:
        thread_lock = _THREAD_LOCKS.setdefault(path, threading.Lock())
    if not thread_lock.acquire(blocking=wait):
        yield False
        return
    try:
        descriptor = _flock(path, wait=wait)
        if descriptor is None:
            yield False
            return
        try:
            yield True
        finally:
            os.close(descriptor)  # closing releases the flock
    finally:
        thread_lock.release()


def _flock(path: Path, *, wait: bool) -> int | None:
    """A descriptor holding `flock` on the file at `path` now, or None when taken and not waiting."""
    while True:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except FileNotFoundError:
            continue  # the directory was removed between mkdir and open
        try:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(descriptor)
                return None
            opened = os.fstat(descriptor)
            try:
                current: os.stat_result | None = os.stat(path)
            except FileNotFoundError:
                current = None
        except BaseException:
            os.close(descriptor)
            raise
        if current is not None and (current.st_dev, current.st_ino) == (opened.st_dev, opened.st_ino):
            return descriptor
        os.close(descriptor)  # locked a file that was unlinked meanwhile; lock the one there now
