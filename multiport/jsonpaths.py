"""Catalog JSONPaths: parsed once, their `=~` filters run by RE2 like every other regex.

jsonpath-ng evaluates `[?(@.id =~ "…")]` with Python's backtracking `re`, on text the
upstream sends; a pattern such as `(a+)+$` would then freeze the process. Its `=~`
operator is replaced, once for the process, by a linear-time search, and every `=~`
pattern in a file is checked when the file loads.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

from jsonpath_ng.ext import filter as jsonpath_filter
from jsonpath_ng.ext import parse as _parse  # type: ignore[attr-defined]

from .regex import Regex, compile_regex

__all__ = ["parse_jsonpath"]


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str) -> Regex:
    return compile_regex(pattern)  # checked at load: a RegexError here is a bug


def _search(value: Any, pattern: Any) -> bool:
    return isinstance(value, str) and _compiled(str(pattern)).search(value) is not None


jsonpath_filter.OPERATOR_MAP["=~"] = _search


def parse_jsonpath(expression: str) -> Any:
    """The parsed expression; a `=~` pattern RE2 cannot run raises `RegexError`."""
    parsed = _parse(expression)
    for pattern in _patterns(parsed):
        _compiled(pattern)
    return parsed


def _patterns(node: Any) -> Iterator[str]:
    if isinstance(node, jsonpath_filter.Expression) and node.op == "=~":
        yield str(node.value)
    children = node if isinstance(node, list) else getattr(node, "__dict__", {}).values()
    for child in children:
        if isinstance(child, list) or hasattr(child, "__dict__"):
            yield from _patterns(child)
