"""Repository paths and `when_modified` patterns: normalised dirs, and Atlantis's glob rules
(`!` excludes, `**` spans directories)."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal


def clean_path(path: str) -> str:
    """Go's filepath.Clean on a slash path: `.` for empty, no `./`, no `x/..`, one leading slash at most."""
    cleaned = posixpath.normpath(path) if path else "."
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    return cleaned


def join_path(*parts: str) -> str:
    """Go's filepath.Join: the non-empty parts joined with / and cleaned, or "" when all are empty."""
    kept = [part for part in parts if part]
    return clean_path("/".join(kept)) if kept else ""


def normalise_dir(directory: str) -> str:
    """A project dir relative to the repo root, as Atlantis keeps it: `./a/b/` and `/a/b` are `a/b`."""
    return clean_path("./" + directory.replace("\\", "/")).lstrip("/") or "."


_ESCAPED = frozenset(".+()|{}$")


@dataclass(frozen=True)
class FilePattern:
    """One `when_modified` entry joined onto the project dir, compiled as moby/patternmatcher does."""

    written: str
    cleaned: str
    exclusion: bool
    kind: Literal["exact", "prefix", "suffix", "regexp"]
    regex: re.Pattern[str] | None

    @classmethod
    def compile(cls, written: str, joined: str) -> FilePattern:
        """ValueError with the reason when the pattern is malformed."""
        pattern = joined.strip()
        exclusion = pattern.startswith("!")
        if exclusion:
            pattern = pattern[1:]
        if not pattern:
            raise ValueError('"!" alone excludes nothing')
        cleaned = clean_path(pattern)
        if cleaned.endswith("\\") and not cleaned.endswith("\\\\"):
            raise ValueError("ends in an unfinished escape (\\)")
        regex_text = "^"
        kind: Literal["exact", "prefix", "suffix", "regexp"] = "exact"
        index, position = 0, 0
        while position < len(cleaned):
            char = cleaned[position]
            position += 1
            following = cleaned[position] if position < len(cleaned) else None
            if char == "*":
                if following == "*":
                    position += 1
                    if position < len(cleaned) and cleaned[position] == "/":
                        position += 1
                    if position >= len(cleaned):
                        if kind == "exact":
                            kind = "prefix"
                        else:
                            regex_text += ".*"
                            kind = "regexp"
                    else:
                        regex_text += "(.*/)?"
                        kind = "regexp"
                    if index == 0:
                        kind = "suffix"
                else:
                    regex_text += "[^/]*"
                    kind = "regexp"
            elif char == "?":
                regex_text += "[^/]"
                kind = "regexp"
            elif char in _ESCAPED:
                regex_text += "\\" + char
            elif char == "\\":
                if following is not None:
                    regex_text += "\\" + following
                    position += 1
                    kind = "regexp"
                else:
                    regex_text += "\\\\"
            elif char in "[]":
                regex_text += char
                kind = "regexp"
            else:
                regex_text += char
            index += 1
        regex: re.Pattern[str] | None = None
        if kind == "regexp":
            try:
                regex = re.compile(regex_text + "$")
            except re.error as error:
                raise ValueError(f"is not a valid pattern: {error}") from None
        return cls(written=written, cleaned=cleaned, exclusion=exclusion, kind=kind, regex=regex)

    def matches(self, path: str) -> bool:
        if self.kind == "exact":
            return path == self.cleaned
        if self.kind == "prefix":
            return path.startswith(self.cleaned[:-2])
        if self.kind == "suffix":
            suffix = self.cleaned[2:]
            return path.endswith(suffix[1:] if suffix.startswith("/") else suffix)
        assert self.regex is not None
        return self.regex.match(path) is not None


class FilePatterns:
    """A project's `when_modified`: globs relative to its dir (`../` reaches up), `**` across dirs, `!` excludes.

    A file matches when the last pattern that matches it, or one of its parent dirs, is not an exclusion.
    """

    def __init__(self, project_dir: str, when_modified: Sequence[str]) -> None:
        self.patterns: list[FilePattern] = []
        for written in when_modified:
            entry = written.strip()
            exclusion = entry.startswith("!")
            joined = join_path(project_dir, entry[1:] if exclusion else entry)
            self.patterns.append(FilePattern.compile(written, ("!" if exclusion else "") + joined))

    def match(self, path: str) -> str | None:
        """The `when_modified` entry (as written) that makes `path` match, or None."""
        matched_by: str | None = None
        parent = posixpath.dirname(path) or "."
        parent_dirs = parent.split("/")
        for pattern in self.patterns:
            if pattern.exclusion != (matched_by is not None):
                continue
            hit = pattern.matches(path)
            if not hit and parent != ".":
                hit = any(pattern.matches("/".join(parent_dirs[: depth + 1])) for depth in range(len(parent_dirs)))
            if hit:
                matched_by = None if pattern.exclusion else pattern.written
        return matched_by


@lru_cache(maxsize=4096)
def file_patterns(project_dir: str, when_modified: tuple[str, ...]) -> FilePatterns:
    return FilePatterns(project_dir, when_modified)


@lru_cache(maxsize=1024)
def slashed_regex(slashed: str) -> re.Pattern[str]:
    """`/main/` → the compiled regex `main` (branches and repos.yaml ids; validated when the file was read)."""
    return re.compile(slashed[1:-1])
