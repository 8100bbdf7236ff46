"""Bare git repositories the emulator serves: commits, diffs and merges made with the real git."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# Contents a commit writes: text or bytes for a file, None to delete it.
Changes = Mapping[str, "str | bytes | None"]

_GIT_ENV_DROP = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY")

_STATUS_NAMES = {
    "A": "added",
    "D": "removed",
    "M": "modified",
    "R": "renamed",
    "C": "copied",
    "T": "changed",
}


class GitError(RuntimeError):
    """A git command the emulator ran failed."""


@dataclass(frozen=True)
class Author:
    name: str
    email: str


@dataclass(frozen=True)
class DiffEntry:
    """One file of a three-dot diff, as GitHub's pull request files endpoint lists it."""

    filename: str
    status: str
    previous_filename: str | None
    additions: int
    deletions: int


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    tree: str
    parents: tuple[str, ...]
    author_name: str
    author_email: str
    author_date: int
    committer_name: str
    committer_email: str
    committer_date: int
    message: str


def _quote_path(path: str) -> str:
    """A path as git fast-import reads it (C-style quoted, so spaces and quotes survive)."""
    escaped = path.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


class BareRepo:
    """A bare repository on disk; every method runs git in it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _GIT_ENV_DROP}
        # A developer's global config (signing, hooks, templates) must not leak into test repos.
        env["GIT_CONFIG_GLOBAL"] = os.devnull
        env["GIT_CONFIG_NOSYSTEM"] = "1"
        return env

    def git(self, *args: str, input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        proc = subprocess.run(
            ["git", "--git-dir", str(self.path), *args],
            input=input,
            capture_output=True,
            env=self._env(),
            check=False,
        )
        if check and proc.returncode != 0:
            raise GitError(f"git {' '.join(args)} failed: {proc.stderr.decode(errors='replace').strip()}")
        return proc

    def out(self, *args: str) -> str:
        return self.git(*args).stdout.decode().strip()

    def init(self, default_branch: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["git", "init", "--quiet", "--bare", "-b", default_branch, str(self.path)],
            check=True,
            env=self._env(),
            capture_output=True,
        )
        # GitHub lets clients fetch any commit reachable from a ref, e.g. a pull request head by sha.
        self.git("config", "uploadpack.allowReachableSHA1InWant", "true")
        self.git("config", "http.receivepack", "true")

    def clone_to(self, path: Path) -> BareRepo:
        """A bare copy of this repository (a fork) at `path`."""
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["git", "clone", "--quiet", "--bare", str(self.path), str(path)],
            check=True,
            env=self._env(),
            capture_output=True,
        )
        fork = BareRepo(path)
        fork.git("config", "uploadpack.allowReachableSHA1InWant", "true")
        return fork

    def resolve(self, ref: str) -> str | None:
        """The commit sha `ref` names, or None when it names nothing."""
        proc = self.git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
        if proc.returncode != 0:
            return None
        return proc.stdout.decode().strip()

    def commit(
        self,
        ref: str,
        changes: Changes,
        *,
        parent: str | None,
        message: str,
        author: Author,
        modes: Mapping[str, str] | None = None,
    ) -> str:
        """Commit `changes` on top of `parent` and point `ref` at the new commit; its sha."""
        now = int(time.time())
        ident = f"{author.name} <{author.email}> {now} +0000"
        msg = message.encode()
        stream = bytearray()
        stream += f"commit {ref}\nauthor {ident}\ncommitter {ident}\n".encode()
        stream += f"data {len(msg)}\n".encode() + msg + b"\n"
        if parent:
            stream += f"from {parent}\n".encode()
        for path, content in sorted(changes.items()):
            if content is None:
                stream += f"D {_quote_path(path)}\n".encode()
                continue
            data = content.encode() if isinstance(content, str) else content
            mode = (modes or {}).get(path, "100644")
            stream += f"M {mode} inline {_quote_path(path)}\n".encode()
            stream += f"data {len(data)}\n".encode() + data + b"\n"
        stream += b"done\n"
        self.git("fast-import", "--quiet", "--done", "--force", input=bytes(stream))
        sha = self.resolve(ref)
        assert sha is not None
        return sha

    def update_ref(self, ref: str, sha: str, old: str | None = None) -> None:
        args = ["update-ref", ref, sha]
        if old is not None:
            args.append(old)
        self.git(*args)

    def diff(self, base: str, head: str, *, three_dot: bool = True) -> list[DiffEntry]:
        """Files changed from the merge base of `base` and `head` to `head` (`base...head`).

        With `three_dot=False`, from `base` itself (`base..head`), as a commit's own files are listed.
        """
        spec = [f"{base}...{head}"] if three_dot else [base, head]
        numstat = self.git("diff", "--numstat", "-z", "-M", *spec).stdout.decode()
        counts = _parse_numstat(numstat)
        raw = self.git("diff", "--name-status", "-z", "-M", *spec).stdout.decode()
        parts = raw.split("\0")
        entries: list[DiffEntry] = []
        i = 0
        while i < len(parts) and parts[i]:
            code = parts[i]
            letter = code[0]
            if letter in ("R", "C"):
                old, new = parts[i + 1], parts[i + 2]
                i += 3
            else:
                old, new = "", parts[i + 1]
                i += 2
            adds, dels = counts.get(new, (0, 0))
            entries.append(
                DiffEntry(
                    filename=new,
                    status=_STATUS_NAMES.get(letter, "modified"),
                    previous_filename=old or None,
                    additions=adds,
                    deletions=dels,
                )
            )
        return entries

    def merge_tree(self, base: str, head: str) -> str | None:
        """The tree of merging `head` into `base`, or None when they conflict."""
        proc = self.git("merge-tree", "--write-tree", "--no-messages", base, head, check=False)
        if proc.returncode == 1:
            return None
        if proc.returncode != 0:
            raise GitError(f"git merge-tree failed: {proc.stderr.decode(errors='replace').strip()}")
        return proc.stdout.decode().splitlines()[0].strip()

    def commit_tree(self, tree: str, parents: list[str], message: str, author: Author) -> str:
        env = self._env()
        env.update(
            GIT_AUTHOR_NAME=author.name,
            GIT_AUTHOR_EMAIL=author.email,
            GIT_COMMITTER_NAME=author.name,
            GIT_COMMITTER_EMAIL=author.email,
        )
        args = ["git", "--git-dir", str(self.path), "commit-tree", tree]
        for parent in parents:
            args += ["-p", parent]
        proc = subprocess.run(args, input=message.encode(), capture_output=True, env=env, check=False)
        if proc.returncode != 0:
            raise GitError(f"git commit-tree failed: {proc.stderr.decode(errors='replace').strip()}")
        return proc.stdout.decode().strip()

    def commit_info(self, sha: str) -> CommitInfo | None:
        fmt = "%H%x00%T%x00%P%x00%an%x00%ae%x00%at%x00%cn%x00%ce%x00%ct%x00%B"
        proc = self.git("show", "-s", f"--format={fmt}", f"{sha}^{{commit}}", "--", check=False)
        if proc.returncode != 0:
            return None
        fields = proc.stdout.decode().split("\0", 9)
        return CommitInfo(
            sha=fields[0],
            tree=fields[1],
            parents=tuple(fields[2].split()),
            author_name=fields[3],
            author_email=fields[4],
            author_date=int(fields[5]),
            committer_name=fields[6],
            committer_email=fields[7],
            committer_date=int(fields[8]),
            message=fields[9].rstrip("\n"),
        )


def _parse_numstat(raw: str) -> dict[str, tuple[int, int]]:
    """`git diff --numstat -z` output as {new path: (additions, deletions)}; binary files count 0."""
    counts: dict[str, tuple[int, int]] = {}
    parts = raw.split("\0")
    i = 0
    while i < len(parts) and parts[i]:
        adds, dels, path = parts[i].split("\t", 2)
        if path == "":
            # A rename: the old and new paths follow as their own fields.
            path = parts[i + 2]
            i += 3
        else:
            i += 1
        counts[path] = (int(adds) if adds != "-" else 0, int(dels) if dels != "-" else 0)
    return counts
