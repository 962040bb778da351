"""YAML parsed with positions: which line and column each `$.path` came from."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

__all__ = [
    "MAX_DEPTH",
    "MAX_NODES",
    "MAX_SCALAR_CHARS",
    "DuplicateKey",
    "Path",
    "YamlSource",
    "YamlTooLarge",
    "format_path",
    "parse_path",
]

Path = tuple[str | int, ...]

# libyaml's loader when PyYAML has it: the same nodes and marks, several times faster.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_MERGE_TAG = "tag:yaml.org,2002:merge"

# The document as its aliases expand it (each `*alias` a copy of its anchor): a few hundred
# bytes of nested aliases would otherwise expand to gigabytes. A provider file is far below.
MAX_NODES = 100_000
MAX_SCALAR_CHARS = 8 << 20
# Every walk of the data (positions, interpolation, decoding) recurses once per level.
MAX_DEPTH = 100

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


class YamlTooLarge(ValueError):
    """A document its aliases expand too far, or nested too deep; where, and why."""

    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(message)
        self.line, self.column, self.message = line, column, message


@dataclass
class YamlSource:
    """A YAML document with the position of every key and value (1-based)."""

    file: str
    data: Any
    values: dict[Path, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)
    duplicates: list[DuplicateKey] = field(default_factory=list)
    text: str = ""

    @classmethod
    def parse(cls, file: str, text: str) -> YamlSource:
        """Parse one document; raises `yaml.YAMLError` with a mark on bad syntax, and
        `YamlTooLarge` before expanding aliases that would make it too large."""
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            if node is not None:
                _check_expansion(node)
            # Before constructing: that merges `<<:` keys into the mapping nodes.
            duplicates = _duplicates(node, ()) if node is not None else []
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
        source = cls(file, data, duplicates=duplicates, text=text)
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


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [child for pair in node.value for child in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a node graph whose expansion is too large, deep or endless.

    Each distinct node is measured once (its expanded nodes, characters and depth), so the
    time is linear in the file, however far its aliases would expand.
    """
    measured: dict[int, tuple[int, int, int]] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    opened: set[int] = set()
    while stack:
        node, finished = stack.pop()
        if finished:
            measured[id(node)] = _measure(node, [measured[id(c)] for c in _children(node)])
            continue
        if id(node) in measured:
            continue
        if id(node) in opened:
            raise _too_large(
                node,
                "an alias refers to the anchor it is inside; YAML "
                "that contains itself cannot be loaded",
            )
        opened.add(id(node))
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node))


def _measure(node: yaml.Node, children: list[tuple[int, int, int]]) -> tuple[int, int, int]:
    """Expanded nodes, scalar characters and depth of `node`, given its children's."""
    nodes = 1 + sum(c[0] for c in children)
    chars = (len(node.value) if isinstance(node, yaml.ScalarNode) else 0) + sum(
        c[1] for c in children
    )
    depth = 1 + max((c[2] for c in children), default=0)
    if nodes > MAX_NODES:
        raise _too_large(
            node,
            f"aliases expand this to over {MAX_NODES:,} values (each `*alias` counts as a "
            "copy of its anchor); use fewer aliases or aliases of smaller anchors",
        )
    if chars > MAX_SCALAR_CHARS:
        raise _too_large(
            node,
            f"aliases expand this to over {MAX_SCALAR_CHARS:,} characters of text (each "
            "`*alias` counts as a copy of its anchor); use fewer aliases",
        )
    if depth > MAX_DEPTH:
        raise _too_large(node, f"nested deeper than {MAX_DEPTH} levels; flatten it")
    return nodes, chars, depth


def _too_large(node: yaml.Node, message: str) -> YamlTooLarge:
    return YamlTooLarge(node.start_mark.line + 1, node.start_mark.column + 1, message)
