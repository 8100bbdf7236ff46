"""What commands say about locks: naming a lock's holder in a comment."""

from __future__ import annotations

from atlas.stores.locks import ProjectLock


def lock_holder_text(lock: ProjectLock) -> str:
    """`pull request #12` as a link, for comments that say who holds a lock."""
    link = f"[#{lock.pull_number}]({lock.pull_url})" if lock.pull_url else f"#{lock.pull_number}"
    return f"pull request {link}"
