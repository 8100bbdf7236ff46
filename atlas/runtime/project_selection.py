"""Which projects a pull request plans, with or without a repo config, and which a comment names.

Without a repo config (or with one that lists no projects), atlas finds projects from the changed
files (atlas.runtime.projects). With one, it follows the config as Atlantis does: a listed project plans
when its `branch` regex matches the base branch, autoplan is on, its dir still exists, and a changed
file (deleted and renamed ones included) matches one of its `when_modified` globs, which are
relative to the project's dir.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

from atlas.config.file_patterns import normalise_dir
from atlas.config.regex import PatternError, go_pattern
from atlas.config.server import EffectiveConfig, ProjectSettings
from atlas.config.valid import AutodiscoverMode
from atlas.runtime.projects import ProjectMatch, find_projects
from atlas.vcs import ChangedFile


def changed_paths(changed: Iterable[ChangedFile]) -> list[str]:
    """Every path a pull request touches, old names of renamed files included, each once."""
    paths: dict[str, None] = {}
    for change in changed:
        for name in (change.filename, change.previous_filename):
            if name:
                paths[name] = None
    return list(paths)


def select_projects(
    repo_dir: Path,
    changed: Sequence[ChangedFile],
    config: EffectiveConfig | None,
    *,
    base_branch: str,
    manual: bool = False,
) -> list[ProjectMatch]:
    """The projects to plan, each with why: configured ones in execution order (config order within a group).

    `manual` is for a comment's plain `plan`: projects with autoplan disabled still plan when their
    files changed, as Atlantis documents for `when_modified`.
    """
    if config is None:
        return find_projects(repo_dir, changed)
    repo_config = config.repo_config
    mode = config.autodiscover.mode
    configured = repo_config.projects if repo_config is not None else ()
    discover = mode is AutodiscoverMode.ENABLED or (mode is AutodiscoverMode.AUTO and not configured)
    paths = sorted(changed_paths(changed))

    chosen: list[tuple[tuple[int, int, int, str], ProjectMatch]] = []
    for settings in config.projects:
        project_config = settings.config
        assert project_config is not None
        if not project_config.branch_matches(base_branch):
            continue
        if not (project_config.autoplan_enabled or manual):
            continue
        reason = _reason(settings, paths)
        if reason is None or not (repo_dir / project_config.dir).is_dir():
            continue
        order = (project_config.execution_order_group, 0, project_config.index, "")
        chosen.append((order, ProjectMatch(project=settings.project, reason=reason)))

    if discover:
        configured_dirs = {project.dir for project in configured}
        ignored = config.autodiscover.ignore_paths
        for match in find_projects(repo_dir, changed):
            directory = match.project.dir
            if directory in configured_dirs or any(_glob_matches(pattern, directory) for pattern in ignored):
                continue
            chosen.append(((0, 1, 0, directory), match))

    chosen.sort(key=lambda item: item[0])
    return [match for _, match in chosen]


def _reason(settings: ProjectSettings, paths: Sequence[str]) -> str | None:
    """`app/main.tf matched when_modified "*.tf"` for the first of the sorted `paths` that matches, or None."""
    patterns = settings.config.file_patterns if settings.config is not None else None
    if patterns is None:
        return None
    hits = [(path, pattern) for path in paths if (pattern := patterns.match(path)) is not None]
    if not hits:
        return None
    path, pattern = hits[0]
    more = len(hits) - 1
    reason = f"{path} matched when_modified {json.dumps(pattern)}"
    return reason + (f" (and {more} more file{'' if more == 1 else 's'})" if more else "")


def find_named_project(config: EffectiveConfig, name: str, *, base_branch: str | None = None) -> ProjectSettings | None:
    """The configured project a comment's `-p NAME` targets (only among those for the base branch, if given)."""
    for settings in _for_branch(config, base_branch):
        if settings.project.name == name:
            return settings
    return None


MAX_PROJECT_PATTERN = 200
"""The longest `-p` regex atlas compiles: project names are short, and so should a pattern over them be."""


class ProjectPatternError(ValueError):
    """A comment's `-p` regex atlas will not use; the message says why, for the pull request."""


def named_projects(
    config: EffectiveConfig, name: str, *, regexp: bool, base_branch: str | None = None
) -> list[ProjectSettings]:
    """The configured projects a comment's `-p NAME` targets, in config order.

    Without `regexp` (`--enable-regexp-cmd`), the one project of that name. With it, `NAME` is a regular
    expression (RE2 syntax, as Atlantis reads it) matched against whole project names; when it matches more
    than one and the repository sets `allowed_regexp_prefixes`, it must start with one of those prefixes.
    """
    candidates = _for_branch(config, base_branch)
    if not regexp:
        return [settings for settings in candidates if settings.project.name == name][:1]
    if len(name) > MAX_PROJECT_PATTERN:
        raise ProjectPatternError(f"the `-p` regex is {len(name)} characters long; atlas takes at most "
                                  f"{MAX_PROJECT_PATTERN}.")
    try:
        pattern = go_pattern(name)
    except PatternError as error:
        raise ProjectPatternError(f"`-p {name}` is not a regular expression atlas can use: "
                                  f"{str(error).rpartition(': ')[2]}.") from None
    found = [s for s in candidates if s.project.name is not None and pattern.fullmatch(s.project.name)]
    prefixes = config.allowed_regexp_prefixes
    if len(found) > 1 and prefixes and not any(name.startswith(prefix) for prefix in prefixes):
        names = ", ".join(f"`{s.project.name}`" for s in found)
        allowed = ", ".join(f"`{prefix}`" for prefix in prefixes)
        raise ProjectPatternError(
            f"`-p {name}` matches {len(found)} projects ({names}), and in this repository a regex that matches "
            f"more than one project must start with one of its allowed_regexp_prefixes: {allowed}.")
    return found


def projects_for_dir(
    config: EffectiveConfig, directory: str, workspace: str | None = None, *, base_branch: str | None = None
) -> list[ProjectSettings]:
    """The configured projects a comment's `-d DIR [-w WORKSPACE]` targets, in config order.

    Without `-w` every configured workspace of the dir is targeted. An empty list means the dir is
    not configured: the command then runs it as an unconfigured project (`config.for_project`).
    """
    wanted = normalise_dir(directory)
    return [
        settings
        for settings in _for_branch(config, base_branch)
        if settings.project.dir == wanted and (workspace is None or settings.project.workspace == workspace)
    ]


def _for_branch(config: EffectiveConfig, base_branch: str | None) -> list[ProjectSettings]:
    return [
        settings
        for settings in config.projects
        if base_branch is None or settings.config is None or settings.config.branch_matches(base_branch)
    ]


def _glob_matches(pattern: str, directory: str) -> bool:
    """doublestar-style glob over a repo-relative dir: `*` within a segment, `**` across segments."""
    return _glob_regex(pattern).fullmatch(directory) is not None


@lru_cache(maxsize=256)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    regex, position = "", 0
    pattern = normalise_dir(pattern)
    while position < len(pattern):
        if pattern.startswith("**/", position):
            regex += "(?:.*/)?"
            position += 3
        elif pattern.startswith("**", position):
            regex += ".*"
            position += 2
        elif pattern[position] == "*":
            regex += "[^/]*"
            position += 1
        elif pattern[position] == "?":
            regex += "[^/]"
            position += 1
        else:
            regex += re.escape(pattern[position])
            position += 1
    try:
        return re.compile(regex)
    except re.error:
        return re.compile(re.escape(pattern))
