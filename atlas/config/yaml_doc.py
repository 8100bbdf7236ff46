"""YAML read with the position of every key, and `ConfigError`, which names the file, the key path and the line.

Aliases and nesting are bounded (`MAX_YAML_VALUES`, `MAX_YAML_DEPTH`): a pull request's config is untrusted input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

MAX_CONFIG_BYTES = 1 << 20
"""A config file larger than this is refused rather than parsed."""


MAX_YAML_VALUES = 100_000
"""Values a document may expand to through aliases; stops an alias bomb in a pull request's config."""


MAX_YAML_DEPTH = 64


KeyPath = tuple[str | int, ...]
"""Where a value sits in a document: `("projects", 1, "dir")`."""


class ConfigError(Exception):
    """A config file is wrong; str() is one line: `FILE: KEY.PATH: PROBLEM`."""

    def __init__(self, file: str, key_path: str, problem: str, *, line: int | None = None) -> None:
        super().__init__(file, key_path, problem)
        self.file = file
        self.key_path = key_path
        self.problem = problem
        self.line = line

    def __str__(self) -> str:
        return ": ".join(part for part in (self.file, self.key_path, self.problem) if part)


def key_path(path: Sequence[str | int]) -> str:
    """`("projects", 1, "dir")` → `projects[1].dir`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


class _WrittenInt(int):
    """An integer that remembers how it was written, for keys Atlantis reads as strings (`workspace: 2024`)."""

    written: str


class _WrittenFloat(float):
    """A float that remembers how it was written: `terraform_version: 1.10` must stay "1.10"."""

    written: str


def written_text(value: object) -> str | None:
    """A scalar as Atlantis's YAML decoder gives it to a string key, or None if it is not a scalar."""
    if isinstance(value, str):
        return value
    if isinstance(value, _WrittenInt | _WrittenFloat):
        return value.written
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return None


@dataclass(frozen=True)
class YamlDocument:
    """A parsed YAML document and the line and column where each key or list item starts."""

    file: str
    data: Any
    positions: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)

    def position(self, path: Sequence[str | int]) -> tuple[int, int]:
        """Where a key path starts, or its nearest ancestor that exists (a missing key)."""
        parts = tuple(path)
        while parts:
            found = self.positions.get(parts)
            if found is not None:
                return found
            parts = parts[:-1]
        return (0, 0)

    def error(self, path: Sequence[str | int], problem: str) -> ConfigError:
        return ConfigError(self.file, key_path(path), problem, line=self.position(path)[0] or None)


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader; nodes are walked by `_DocumentBuilder`, never constructed as a whole."""


class _DocumentBuilder:
    """Turns a composed YAML node tree into plain data, recording where every key starts."""

    def __init__(self, loader: _Loader, file: str) -> None:
        self.loader = loader
        self.file = file
        self.positions: dict[KeyPath, tuple[int, int]] = {}
        self.values = 0
        self.checked: set[int] = set()

    def build(self, node: yaml.Node, path: KeyPath, depth: int = 0) -> Any:
        self.values += 1
        if self.values > MAX_YAML_VALUES or depth > MAX_YAML_DEPTH:
            raise ConfigError(self.file, key_path(path), "too large: it expands to too many values through aliases")
        self.positions.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, index), depth + 1) for index, item in enumerate(node.value)]
        return self._scalar(node)

    def _mapping(self, node: yaml.MappingNode, path: KeyPath, depth: int) -> dict[str, Any]:
        if id(node) not in self.checked:
            self.checked.add(id(node))
            seen: dict[str, int] = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                line = key_node.start_mark.line + 1
                if key_node.value in seen:
                    raise ConfigError(
                        self.file,
                        key_path((*path, key_node.value)),
                        f"duplicate key (first set on line {seen[key_node.value]})",
                        line=line,
                    )
                seen[key_node.value] = line
            self.loader.flatten_mapping(node)  # YAML merge keys (`<<: *defaults`), as Atlantis's decoder applies them
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                mark = key_node.start_mark
                raise ConfigError(
                    self.file, key_path(path), f"line {mark.line + 1}: keys must be plain words, not lists or mappings"
                )
            key = str(key_node.value)
            child = (*path, key)
            self.positions[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            result[key] = self.build(value_node, child, depth + 1)
        return result

    def _scalar(self, node: yaml.Node) -> Any:
        value = self.loader.construct_object(node, deep=True)
        if value is None or isinstance(value, str | bool):
            return value
        if isinstance(value, int):
            number = _WrittenInt(value)
            number.written = str(node.value)
            return number
        if isinstance(value, float):
            decimal = _WrittenFloat(value)
            decimal.written = str(node.value)
            return decimal
        # Dates and binary: keys that take them take text, as Atlantis's decoder does.
        return str(node.value)


def parse_yaml(text: str, file: str) -> YamlDocument:
    """Parse one YAML document; ConfigError with line and column when it is not valid YAML."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return YamlDocument(file, None, {})
        builder = _DocumentBuilder(loader, file)
        data = builder.build(node, ())
        return YamlDocument(file, data, builder.positions)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        problem = " ".join(str(error.problem or error.context or "is not valid YAML").split())
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(file, "", f"invalid YAML{where}: {problem}", line=mark.line + 1 if mark else None) from None
    except yaml.YAMLError as error:
        raise ConfigError(file, "", f"invalid YAML: {' '.join(str(error).split())}") from None
    finally:
        loader.dispose()
