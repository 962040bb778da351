"""`${VAR}` and `${VAR:-default}` in provider files, and dotenv files for credentials."""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

from dotenv import dotenv_values
from dotenv.parser import parse_stream

from ._yamlsource import MAX_SCALAR_CHARS, Path
from .files import read_text

__all__ = ["MAX_INTERPOLATED_CHARS", "Interpolation", "interpolate", "read_dotenv"]

# All strings of a document together after `${VAR}` is replaced: a long value referred to
# many times would otherwise grow without bound.
MAX_INTERPOLATED_CHARS = MAX_SCALAR_CHARS

# ${NAME}, ${NAME:-default} (unset or empty), ${NAME-default} (unset); $${ is a literal ${.
_REF = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}")


@dataclass
class Interpolation:
    """The result of interpolating a document: data, and the variables it lacked."""

    data: Any
    missing: dict[Path, list[str]] = field(default_factory=dict)
    used: dict[Path, list[str]] = field(default_factory=dict)
    # The first string at which the strings grew past MAX_INTERPOLATED_CHARS; from there
    # on, every string with a reference is left empty.
    overflow: Path | None = None
    budget: int = MAX_INTERPOLATED_CHARS


def interpolate(data: Any, env: Mapping[str, str]) -> Interpolation:
    """Replace variable references in every string of `data`."""
    result = Interpolation(None)
    result.data = _walk(data, env, (), result)
    return result


def _walk(node: Any, env: Mapping[str, str], path: Path, result: Interpolation) -> Any:
    if isinstance(node, str):
        return _substitute(node, env, path, result)
    if isinstance(node, dict):
        return {k: _walk(v, env, (*path, str(k)), result) for k, v in node.items()}
    if isinstance(node, list):
        return [_walk(v, env, (*path, i), result) for i, v in enumerate(node)]
    return node


def _substitute(text: str, env: Mapping[str, str], path: Path, result: Interpolation) -> str:
    if "$" not in text:
        return text
    if result.overflow is not None:
        return ""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        name, operator, default = match.group(1), match.group(2), match.group(3)
        result.used.setdefault(path, []).append(name)
        value = env.get(name)
        if operator == ":-" and not value:
            return default
        if operator == "-" and value is None:
            return default
        if value is None:
            result.missing.setdefault(path, []).append(name)
            return ""
        if len(value) > result.budget:
            result.budget = 0
            result.overflow = result.overflow or path
            return ""
        result.budget -= len(value)
        return value

    return _REF.sub(replace, text)


def read_dotenv(path: FsPath) -> dict[str, str]:
    """Read a dotenv file as python-dotenv does: `#` comments, `export`, single quotes
    (literal), double quotes (with escapes such as `\\n`), values over several lines.

    `${VAR}` inside the file is kept as written: the file supplies variables, the provider
    file refers to them. A line python-dotenv cannot parse is a `ValueError` giving its
    number, never its text; a name without `=` sets nothing. A file that is not a regular
    file of at most `files.MAX_FILE_BYTES` is a `files.FileRefused`.
    """
    text = read_text(path)
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:  # the line is not shown: it may hold a secret
            raise ValueError(f"line {binding.original.line} is not a KEY=value line")
    values = dotenv_values(stream=io.StringIO(text), interpolate=False)
    return {key: value for key, value in values.items() if value is not None}
