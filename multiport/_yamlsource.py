"""YAML parsed with positions: which line and column each `$.path` came from."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

__all__ = ["DuplicateKey", "Path", "YamlSource", "format_path", "parse_path"]

Path = tuple[str | int, ...]

# libyaml's loader when PyYAML has it: the same nodes and marks, several times faster.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_MERGE_TAG = "tag:yaml.org,2002:merge"

_PATH_TOKEN = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")


def format_path(path: Path) -> str:
    """`("mappings", 0, "match")` → `$.mappings[0].match`."""
    out = "$"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def parse_path(text: str) -> Path:
    """`$.mappings[0].match` → `("mappings", 0, "match")`; `[...]` is dropped."""
    parts: list[str | int] = []
    for name, index in _PATH_TOKEN.findall(text.removeprefix("$")):
        if name:
            parts.append(name)
        elif index.isdigit():
            parts.append(int(index))
    return tuple(parts)


@dataclass(frozen=True)
class DuplicateKey:
    """A key given twice in one mapping: where the second is, and the line of the first."""

    path: Path
    line: int
    column: int
    first_line: int


@dataclass
class YamlSource:
    """A YAML document with the position of every key and value (1-based)."""

    file: str
    data: Any
    values: dict[Path, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)
    duplicates: list[DuplicateKey] = field(default_factory=list)

    @classmethod
    def parse(cls, file: str, text: str) -> YamlSource:
        """Parse one document; raises `yaml.YAMLError` with a mark on bad syntax."""
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            # Before constructing: that merges `<<:` keys into the mapping nodes.
            duplicates = _duplicates(node, ()) if node is not None else []
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
        source = cls(file, data, duplicates=duplicates)
        if node is not None:
            source._index(node, ())
        return source

    def _index(self, node: yaml.Node, path: Path) -> None:
        self.values[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = key_node.value
                self.keys[(*path, key)] = (
                    key_node.start_mark.line + 1,
                    key_node.start_mark.column + 1,
                )
                self._index(value_node, (*path, key))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._index(item, (*path, i))

    def locate(self, path: Path, *, key: bool = False) -> tuple[int, int]:
        """Line and column of `path`, or of its nearest ancestor that the file has."""
        if key and path in self.keys:
            return self.keys[path]
        while path:
            if path in self.values:
                return self.values[path]
            path = path[:-1]
        return self.values.get((), (1, 1))


def _duplicates(node: yaml.Node, path: Path) -> list[DuplicateKey]:
    """Every key given a second time in a mapping of the document (YAML keeps the last)."""
    found: list[DuplicateKey] = []
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found += _duplicates(item, (*path, i))
    if not isinstance(node, yaml.MappingNode):
        return found
    first: dict[object, int] = {}
    for key_node, value_node in node.value:
        key = key_node.value
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
            continue
        line = key_node.start_mark.line + 1
        if key in first:
            column = key_node.start_mark.column + 1
            found.append(DuplicateKey((*path, key), line, column, first[key]))
        else:
            first[key] = line
        found += _duplicates(value_node, (*path, key))
    return found
