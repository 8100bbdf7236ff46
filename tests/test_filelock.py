"""The one file lock: exclusive across threads and processes, and on the file now at its path."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from atlas.runtime.filelock import file_lock

HOLD_IN_CHILD = """
import sys, time
from pathlib import Path
from atlas.runtime.filelock import file_lock
with file_lock(Path(sys.argv[1])):
    print("held", flush=True)
    sys.stdin.readline()
"""


def test_a_path_held_by_another_thread_is_refused_without_waiting(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    held, release, answers = threading.Event(), threading.Event(), []

    def holder() -> None:
        with file_lock(path):
            held.set()
            release.wait(30)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(30)
    with file_lock(path, wait=False) as got:
        answers.append(got)
    release.set()
    thread.join()
    with file_lock(path, wait=False) as got:
        answers.append(got)
    assert answers == [False, True]


def test_a_path_held_by_another_process_is_refused_without_waiting_and_taken_once_released(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "x.lock"
    child = subprocess.Popen([sys.executable, "-c", HOLD_IN_CHILD, str(path)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdin is not None
    assert child.stdout.readline().strip() == "held"
    with file_lock(path, wait=False) as got:
        assert got is False
    child.stdin.write("\n")
    child.stdin.flush()
    child.wait(30)
    with file_lock(path) as got:
        assert got is True


def test_a_lock_file_removed_while_held_does_not_let_two_holders_in(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    with file_lock(path):
        path.unlink()
        # A new file at the path is a different inode: taking it must not be confused with the old one.
        with file_lock(tmp_path / "y.lock", wait=False) as other:
            assert other is True
    with file_lock(path, wait=False) as again:
        assert again is True and path.exists()
