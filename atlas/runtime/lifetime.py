"""Children that die with the process that supervises them, so no terraform outlives its worker.

A worker killed outright (SIGKILL from the OOM killer, a node eviction) runs no code on its way
out, so whatever it started has to be tied to it by the kernel beforehand:

- every child atlas starts for a job (terraform, tofu, `run` steps, hooks) asks Linux, between
  fork and exec, for SIGKILL when the thread that started it dies (`PR_SET_PDEATHSIG`), and
  checks that its parent is still the one that forked it, as the parent may have died first;
- in the sandbox, that child is bubblewrap, which also passes `--die-with-parent` and runs the
  command as PID 1 of its own PID namespace: when it dies the kernel kills everything inside;
- unconfined, what the child itself started (providers, the commands of a `run` step) has no
  namespace to die with. `atlas worker`'s supervising parent is therefore the child subreaper of
  its worker processes (`PR_SET_CHILD_SUBREAPER`): such orphans are re-parented to it, and when a
  worker process dies it kills them and their process groups (`end_orphans`).

Off Linux these calls do nothing and say so by their return value.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import signal
import time
from collections.abc import Callable, Collection
from pathlib import Path

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36

ORPHAN_SWEEP_SECONDS = 1.0
"""How long after a worker process died its supervisor keeps killing what it left behind."""

_SWEEP_POLL_SECONDS = 0.02


@functools.cache
def _prctl() -> Callable[..., int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        function = ctypes.CDLL(name, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    function.restype = ctypes.c_int
    prctl: Callable[..., int] = function
    return prctl


def tie_to_parent(parent: int) -> bool:
    """In a child just forked by `parent`: be SIGKILLed when the parent dies; False where Linux cannot.

    If the parent died before the request took effect, the child kills itself at once.
    """
    prctl = _prctl()
    if prctl is None or prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        return False
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGKILL)
    return True


def dies_with_this_process() -> Callable[[], None] | None:
    """A `preexec_fn` for `subprocess.Popen` that ties the child to the calling process (None off Linux).

    libc's prctl is looked up here, before the fork, so that the child only calls it.
    """
    if _prctl() is None:
        return None
    parent = os.getpid()

    def tie() -> None:
        tie_to_parent(parent)

    return tie


def become_subreaper() -> bool:
    """Have orphaned descendants re-parented to this process rather than to init; whether Linux agreed."""
    prctl = _prctl()
    return prctl is not None and prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def children_of(pid: int) -> list[int]:
    """The direct children of `pid` across all its threads (Linux)."""
    found: list[int] = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError, ValueError):
            found += [int(child) for child in children.read_text().split()]
    return sorted(set(found))


def end_orphans(keep: Callable[[], Collection[int]], seconds: float = ORPHAN_SWEEP_SECONDS) -> list[int]:
    """Kill this process's children not in `keep()` (orphans re-parented to it), with their process groups.

    Orphans arrive as their parents die, one generation after another, so the sweep goes on for
    `seconds`. Returns the pids it killed. Their exits are collected by whoever waits for children.
    """
    own_group = os.getpgid(0)
    killed: list[int] = []
    deadline = time.monotonic() + seconds
    while True:
        kept = set(keep())
        for pid in children_of(os.getpid()):
            if pid in kept or pid in killed:
                continue
            with contextlib.suppress(ProcessLookupError, PermissionError):
                group = os.getpgid(pid)
                if group != own_group:
                    os.killpg(group, signal.SIGKILL)
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        if time.monotonic() >= deadline:
            return killed
        time.sleep(_SWEEP_POLL_SECONDS)
