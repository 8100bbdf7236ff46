"""Problems only a whole repo config shows: absolute project dirs, and keys that contradict each other
(duplicate projects, unknown workflows, dependency cycles), each located in the file."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from atlas.config.file_patterns import FilePatterns, normalise_dir
from atlas.config.raw import (
    ConfigError,
    YamlDocument,
    written_text,
)

DEFAULT_WORKSPACE = "default"


def absolute_dir_problems(document: YamlDocument, repo_dir: Path) -> list[tuple[tuple[int, int], ConfigError]]:
    """An absolute `dir` that names no directory of the repository (`dir: /etc`), with the reason.

    Atlantis reads `dir: /infra/prod` as the repository's `infra/prod`, and real configs rely on it,
    so a leading slash is kept for a directory the repository has; any other absolute dir is most
    likely meant as a path on the server, where atlas never runs.
    """
    data = document.data if isinstance(document.data, dict) else {}
    projects = data.get("projects")
    problems: list[tuple[tuple[int, int], ConfigError]] = []
    for index, entry in enumerate(projects if isinstance(projects, list) else []):
        written = written_text(entry.get("dir")) if isinstance(entry, dict) else None
        if written is None or not written.replace("\\", "/").startswith("/"):
            continue
        relative = normalise_dir(written)
        if (repo_dir / relative).is_dir():
            continue
        path = ("projects", index, "dir")
        problems.append((document.position(path), document.error(path, (
            f"{json.dumps(written)} is an absolute path: atlas only runs inside the repository and reads dir "
            f"relative to its root (as Atlantis does), and this repository has no directory {json.dumps(relative)}. "
            "Write the project's directory relative to the repository root."))))
    return problems


def cross_key_problems(
    document: YamlDocument, server_workflows: Sequence[str] | None
) -> list[tuple[tuple[int, int], ConfigError]]:
    data = document.data if isinstance(document.data, dict) else {}
    projects = data.get("projects")
    entries = [(index, entry) for index, entry in enumerate(projects)] if isinstance(projects, list) else []
    entries = [(index, entry) for index, entry in entries if isinstance(entry, dict)]
    problems: list[tuple[tuple[int, int], ConfigError]] = []

    def report(path: tuple[str | int, ...], problem: str) -> None:
        problems.append((document.position(path), document.error(path, problem)))

    names: dict[str, int] = {}
    for index, entry in entries:
        name = written_text(entry.get("name"))
        if name is None:
            continue
        if name in names:
            report(
                ("projects", index, "name"),
                f"{json.dumps(name)} is also the name of projects[{names[name]}]; names must be unique",
            )
        else:
            names[name] = index

    by_target: dict[tuple[str, str], list[int]] = {}
    for index, entry in entries:
        directory, workspace = written_text(entry.get("dir")), written_text(entry.get("workspace"))
        if directory is None or ".." in directory.split("/"):
            continue
        target = (normalise_dir(directory), workspace or DEFAULT_WORKSPACE)
        by_target.setdefault(target, []).append(index)
    for (directory, workspace), indices in by_target.items():
        if len(indices) < 2:
            continue
        for index in indices:
            if written_text(dict(entries)[index].get("name")) is None:
                others = ", ".join(f"projects[{other}]" for other in indices if other != index)
                report(
                    ("projects", index),
                    f"{others} also plan dir {json.dumps(directory)} in workspace {json.dumps(workspace)}; "
                    "projects that share a dir and workspace need a name each",
                )
                break

    graph: dict[str, list[str]] = {}
    for index, entry in entries:
        depends = entry.get("depends_on")
        if not isinstance(depends, list):
            continue
        name = written_text(entry.get("name"))
        for position, dependency in enumerate(depends):
            dependency_name = written_text(dependency)
            if dependency_name is None:
                continue
            path = ("projects", index, "depends_on", position)
            if dependency_name == name:
                report(path, "a project cannot depend on itself")
            elif dependency_name not in names:
                report(path, f"no project is named {json.dumps(dependency_name)}")
            elif name is not None:
                graph.setdefault(name, []).append(dependency_name)
    cycle = _find_cycle(graph)
    if cycle:
        report(("projects", names[cycle[0]], "depends_on"), f"depends_on forms a cycle: {' -> '.join(cycle)}")

    workflows = data.get("workflows")
    defined = set(workflows) if isinstance(workflows, dict) else set()
    if server_workflows is not None:
        defined |= {"default", *server_workflows}
    for index, entry in entries:
        workflow = written_text(entry.get("workflow"))
        if workflow is not None and server_workflows is not None and workflow not in defined:
            report(
                ("projects", index, "workflow"),
                f"workflow {json.dumps(workflow)} is not defined in {document.file} or on the server",
            )
        autoplan = entry.get("autoplan")
        patterns = autoplan.get("when_modified") if isinstance(autoplan, dict) else None
        if isinstance(patterns, list):
            for position, pattern in enumerate(patterns):
                text = written_text(pattern)
                if text is None:
                    continue
                try:
                    FilePatterns(".", [text])
                except ValueError as error:
                    report(("projects", index, "autoplan", "when_modified", position), f"{json.dumps(text)} {error}")
    return problems


def _find_cycle(graph: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A dependency cycle as a path that ends where it starts, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for neighbour in graph.get(node, ()):
            if state.get(neighbour) == 1:
                return [*stack[stack.index(neighbour) :], neighbour]
            if neighbour not in state:
                found = visit(neighbour)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in graph:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None
