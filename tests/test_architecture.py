"""The layer rule, checked on the source: imports go down only, and no module imports itself back.

Every import counts, those inside functions and under `TYPE_CHECKING` too: a deferred import hides a
cycle, it does not remove it. The order is the one docs/architecture.md draws.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "atlas"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("atlas.__main__",),
    ("atlas.cli",),
    ("atlas.serving", "atlas.worker"),
    ("atlas.app",),
    ("atlas.startup",),
    ("atlas.bootstrap",),
    ("atlas.http", "atlas.web"),
    ("atlas.commands", "atlas.drift"),
    ("atlas.commands.context",),
    ("atlas.intake",),
    ("atlas.render",),
    ("atlas.runtime",),
    ("atlas.config",),
    ("atlas.notify", "atlas.policy"),
    ("atlas.jobs",),
    ("atlas.stores", "atlas.github", "atlas.gitlab"),
    ("atlas.metrics",),
    ("atlas.vcs", "atlas.logs", "atlas.vocabulary", "atlas.host_retry"),
    ("atlas.models",),
    ("atlas",),
)
"""Top to bottom. A module imports from lower layers and from its own package; siblings on one line do not
import each other unless `SIBLING_IMPORTS` allows that direction."""

SIBLING_IMPORTS: frozenset[tuple[str, str]] = frozenset()
"""(importer, imported) pairs of sibling packages allowed in that direction only."""

MAX_LINES = 500
"""A module longer than this says at its top why (its docstring says "Over 500 lines on purpose" and why)."""


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports_of(name: str, path: Path, known: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """(imported atlas module, line) for every import statement anywhere in the module."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target, node.lineno
                break


def layer_of(module: str) -> tuple[int, str]:
    best = (-1, "")
    for rank, layer in enumerate(LAYERS):
        for package in layer:
            if (module == package or module.startswith(package + ".")) and len(package) > len(best[1]):
                best = (rank, package)
    return best


@functools.cache
def graph() -> dict[str, dict[str, int]]:
    known = modules()
    edges: dict[str, dict[str, int]] = {name: {} for name in known}
    for name, path in known.items():
        for target, line in imports_of(name, path, known):
            edges[name].setdefault(target, line)
    return edges


def test_every_module_belongs_to_a_layer() -> None:
    assert [m for m in modules() if layer_of(m)[0] < 0] == []


def test_imports_go_down_the_layers_only() -> None:
    upward = []
    for importer, targets in graph().items():
        rank, package = layer_of(importer)
        for imported, line in targets.items():
            other_rank, other_package = layer_of(imported)
            if other_package == package or other_rank > rank:
                continue
            if other_rank == rank and (package, other_package) in SIBLING_IMPORTS:
                continue
            upward.append(f"{importer} (line {line}) imports {imported}: {package} may not import {other_package}")
    assert upward == [], "\n".join(upward)


def cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_module_imports_itself_back() -> None:
    assert cycles(graph()) == []


def test_the_check_finds_a_cycle_and_an_upward_import() -> None:
    edges = {"atlas.models": {"atlas.commands.plan": 3}, "atlas.commands.plan": {"atlas.models": 1}}
    assert cycles(edges) == [["atlas.commands.plan", "atlas.models"]]
    assert layer_of("atlas.models")[0] > layer_of("atlas.commands.plan")[0]


def test_long_modules_say_why() -> None:
    unexplained = []
    for name, path in modules().items():
        text = path.read_text()
        lines = text.count("\n")
        docstring = ast.get_docstring(ast.parse(text)) or ""
        if lines > MAX_LINES and "Over 500 lines on purpose" not in docstring:
            unexplained.append(f"{name}: {lines} lines")
    assert unexplained == [], "\n".join(unexplained)
