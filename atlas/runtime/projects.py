"""Which projects a pull request plans: the Terraform root modules its changed files touch.

A project is a directory of `*.tf` files that no other directory uses as a local module, or that
does but also declares a backend (so it is planned on its own too). A change inside a module plans
every root that uses it, directly or through other modules.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import re
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import hcl2

from atlas.models import Project
from atlas.vcs import ChangedFile

log = logging.getLogger(__name__)

CONFIG_SUFFIXES = (".tf", ".tf.json")
"""Files that make a directory a Terraform module."""

PLANNED_SUFFIXES = (*CONFIG_SUFFIXES, ".tfvars", ".tfvars.json")
"""Changed files that can change a plan, besides the dependency lock file."""

LOCK_FILE = ".terraform.lock.hcl"

IGNORED_DIRS = frozenset({".git", ".terraform"})
"""Directories that never hold a project: git's own and terraform's provider/module cache."""

# Only a line that starts with `module` can open a module block: HCL has no nested module blocks
# and a quoted string cannot span lines, so a commented-out `# module "x" {` never matches.
_MODULE_HEADER = re.compile(r'^[ \t]*module[ \t]+(?:"[^"\n]*"|[A-Za-z_][\w-]*)[ \t]*\{', re.MULTILINE)
_BLOCK_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|#[^\n]*|//[^\n]*|[{}\n]')
_SOURCE_LINE = re.compile(r"[ \t]*source[ \t]*=")


@dataclass(frozen=True)
class ProjectMatch:
    """A project the pull request plans, and why, for `atlas projects` to explain."""

    project: Project
    reason: str


def has_terraform_files(directory: Path) -> bool:
    """Whether a directory holds Terraform configuration of its own (not only in subdirectories)."""
    return directory.is_dir() and any(
        entry.is_file() and entry.name.endswith(CONFIG_SUFFIXES) for entry in directory.iterdir()
    )


def find_projects(repo_dir: Path, changed: Sequence[ChangedFile]) -> list[ProjectMatch]:
    """The projects the changed files plan, sorted by directory, each once."""
    repo = _RepoModules.scan(repo_dir)
    causes: dict[str, _Causes] = {}
    for path in _changed_paths(changed):
        owner = repo.owning_dir(path)
        if owner is None:
            continue
        if repo.is_root(owner):
            causes.setdefault(owner, _Causes()).files.append(path)
        if owner in repo.callers:
            for root, chain in repo.roots_using(owner):
                causes.setdefault(root, _Causes()).modules.setdefault(owner, chain)
    return [
        ProjectMatch(project=Project(dir=root), reason=causes[root].describe(root)) for root in sorted(causes)
    ]


def all_projects(repo_dir: Path) -> list[Project]:
    """Every root module in a checkout, sorted by directory: what a drift check plans without a repo config."""
    repo = _RepoModules.scan(repo_dir)
    return [Project(dir=directory) for directory in sorted(repo.tf_files) if repo.is_root(directory)]


@dataclass
class _Causes:
    """Why one project is planned: files changed in it, and modules it uses that changed."""

    files: list[str] = field(default_factory=list)
    # module dir -> the modules between it and the project, nearest the module first
    modules: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def describe(self, root: str) -> str:
        """One line: `app/main.tf changed`, `modules/label changed; used by db through modules/database`."""
        uses = [
            (module, f"used by {root}" + (f" through {', '.join(reversed(chain))}" if chain else ""))
            for module, chain in sorted(self.modules.items())
        ]
        if not self.files and len(uses) == 1:
            return f"{uses[0][0]} changed; {uses[0][1]}"
        clauses: list[str] = []
        if self.files:
            files = sorted(set(self.files))
            more = len(files) - 1
            clauses.append(f"{files[0]} changed" + (f" (and {more} more file{_s(more)})" if more else ""))
        clauses += [f"{module} changed ({usage})" for module, usage in uses]
        if len(clauses) > 3:
            clauses[3:] = [f"and {len(clauses) - 3} more changed module{_s(len(clauses) - 3)}"]
        return "; ".join(clauses)


def _s(count: int) -> str:
    return "" if count == 1 else "s"


def _changed_paths(changed: Iterable[ChangedFile]) -> Iterator[str]:
    """Repo-relative paths of changed files that can affect a plan, old names of renames included."""
    for change in changed:
        for name in (change.filename, change.previous_filename):
            if not name:
                continue
            path = posixpath.normpath(name.replace("\\", "/")).lstrip("/")
            parts = path.split("/")
            if parts[0] == ".." or IGNORED_DIRS.intersection(parts):
                continue
            if parts[-1] == LOCK_FILE or parts[-1].endswith(PLANNED_SUFFIXES):
                yield path


class _RepoModules:
    """Every Terraform directory in a checkout and the local module calls between them."""

    def __init__(self, root: Path, tf_files: Mapping[str, list[str]]) -> None:
        self.root = root
        self.tf_files = tf_files
        # module dir -> the dirs that call it
        self.callers: dict[str, set[str]] = {}
        self._existing_dirs: dict[str, bool] = {}
        self._backend: dict[str, bool] = {}
        for caller, files in tf_files.items():
            for name in files:
                for source in _local_sources(root / caller / name):
                    target = _resolve(caller, source)
                    if target is not None and target != caller and target in tf_files:
                        self.callers.setdefault(target, set()).add(caller)

    @classmethod
    def scan(cls, root: Path) -> _RepoModules:
        tf_files: dict[str, list[str]] = {}
        for current, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if d not in IGNORED_DIRS]
            config = sorted(f for f in files if f.endswith(CONFIG_SUFFIXES))
            if config:
                rel = os.path.relpath(current, root)
                tf_files[Path(rel).as_posix()] = config
        return cls(root, tf_files)

    def owning_dir(self, path: str) -> str | None:
        """The nearest directory at or above a changed file that holds .tf files, if it still exists."""
        directory = posixpath.dirname(path) or "."
        if not self._exists(directory):
            return None
        while True:
            if directory in self.tf_files:
                return directory
            if directory == ".":
                return None
            directory = posixpath.dirname(directory) or "."

    def is_root(self, directory: str) -> bool:
        """Planned on its own: used by no other directory, or declares where its state lives."""
        return directory not in self.callers or self._declares_backend(directory)

    def roots_using(self, module: str) -> Iterator[tuple[str, tuple[str, ...]]]:
        """Each root that uses a module, with the modules in between (nearest the module first)."""
        chains: dict[str, tuple[str, ...]] = {module: ()}
        queue = deque([module])
        while queue:
            current = queue.popleft()
            for caller in sorted(self.callers.get(current, ())):
                if caller in chains:
                    continue  # reached already by a path at least as short; also stops cycles
                chain = () if current == module else (*chains[current], current)
                chains[caller] = chain
                if self.is_root(caller):
                    yield caller, chain
                if caller in self.callers:
                    queue.append(caller)

    def _exists(self, directory: str) -> bool:
        known = self._existing_dirs.get(directory)
        if known is None:
            known = self._existing_dirs[directory] = (self.root / directory).is_dir()
        return known

    def _declares_backend(self, directory: str) -> bool:
        known = self._backend.get(directory)
        if known is None:
            base = self.root / directory
            known = self._backend[directory] = any(
                _has_backend(base / name) for name in self.tf_files.get(directory, ())
            )
        return known


def _resolve(caller: str, source: str) -> str | None:
    """A local module source as a repo-relative dir, or None when it leaves the repository."""
    target = posixpath.normpath(posixpath.join(caller, source.rstrip("/") or "."))
    if target == ".." or target.startswith("../"):
        return None
    return target


def _local_sources(path: Path) -> tuple[str, ...]:
    """The `./` and `../` sources of the module blocks in one .tf or .tf.json file."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        log.warning("cannot read %s: %s; treating it as calling no modules", path, exc)
        return ()
    if "module" not in text:
        return ()
    if path.name.endswith(".json"):
        return _json_sources(path, text)
    return _hcl_sources(path, text)


def _json_sources(path: Path, text: str) -> tuple[str, ...]:
    try:
        document = json.loads(text)
    except ValueError as exc:
        log.warning("cannot parse %s: %s; treating it as calling no modules", path, exc)
        return ()
    modules = document.get("module") if isinstance(document, dict) else None
    return _sources_in(modules)


def _hcl_sources(path: Path, text: str) -> tuple[str, ...]:
    lines = _module_source_lines(text)
    if lines is not None:
        try:
            return tuple(source for source in map(_source_value, lines) if _is_local(source))
        except Exception:  # a line this cut misread; the whole file decides below
            pass
    try:
        return _sources_in(_parse_hcl(text).get("module"))
    except Exception as exc:  # hcl2 raises lark's many exception types
        log.warning("cannot parse %s: %s; treating it as calling no modules", path, _first_line(exc))
        return ()


def _has_backend(path: Path) -> bool:
    """Whether a file declares `terraform { backend … }` or `terraform { cloud … }`."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    if "backend" not in text and "cloud" not in text:
        return False
    try:
        document = json.loads(text) if path.name.endswith(".json") else _parse_hcl(text)
    except Exception as exc:
        log.warning("cannot parse %s: %s; assuming it declares no backend", path, _first_line(exc))
        return False
    blocks = document.get("terraform") if isinstance(document, dict) else None
    return any(
        isinstance(block, dict) and ("backend" in block or "cloud" in block) for block in _as_list(blocks)
    )


def _module_source_lines(text: str) -> list[str] | None:
    """The `source = …` line of each module block in a file, for hcl2 to read on its own.

    hcl2 parses about 5 µs per character, so parsing every root in a large monorepo takes
    seconds; a root's module sources are a few short lines, and the same line recurs across roots.
    Returns None when the file has something this cut cannot follow (block comments, heredocs, a
    block without a `source` line of its own), so that the whole file is parsed instead.
    """
    if "/*" in text or "<<" in text:
        return None
    lines: list[str] = []
    for header in _MODULE_HEADER.finditer(text):
        depth = 0
        source: str | None = None
        for token in _BLOCK_TOKEN.finditer(text, header.end() - 1):
            kind = token.group()
            if kind == "{":
                depth += 1
            elif kind == "}":
                depth -= 1
                if depth == 0:
                    break
            elif kind == "\n" and depth == 1 and source is None:
                line_end = text.find("\n", token.end())
                line = text[token.end() : line_end if line_end >= 0 else len(text)]
                if _SOURCE_LINE.match(line):
                    source = line
        else:
            return None
        if source is None:
            return None
        lines.append(source)
    return lines


@lru_cache(maxsize=8192)
def _source_value(line: str) -> str:
    """The string a `source = "…"` line assigns, as hcl2 reads it."""
    value = hcl2.loads(line.strip() + "\n").get("source")
    if not isinstance(value, str):
        raise ValueError(f"not a module source: {line!r}")
    return _unquote(value)


def _is_local(source: str) -> bool:
    """Terraform reads a source as a path only when it starts with ./ or ../ (and has no ${})."""
    return source.startswith(("./", "../")) and "${" not in source


@lru_cache(maxsize=1024)
def _parse_hcl(text: str) -> dict[str, Any]:
    """hcl2's reading of a text; cached by content so a fresh clone of the same repo hits too."""
    result: dict[str, Any] = hcl2.loads(text)
    return result


def _sources_in(modules: object) -> tuple[str, ...]:
    """The local sources in a `module` value as hcl2 or JSON gives it (a dict, or a list of dicts)."""
    sources: list[str] = []
    for group in _as_list(modules):
        if not isinstance(group, dict):
            continue
        for call in group.values():
            for body in _as_list(call):
                source = body.get("source") if isinstance(body, dict) else None
                if isinstance(source, str) and _is_local(_unquote(source)):
                    sources.append(_unquote(source))
    return tuple(sources)


def _as_list(value: object) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _unquote(value: str) -> str:
    """hcl2 8 keeps a string literal's quotes; older versions strip them."""
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
