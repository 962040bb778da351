"""The sandbox's size bounds: no operator, filter or method builds more than `render_bytes`.

Jinja's sandbox guards attributes, not sizes: `'x' * 10**9`, `9 ** 9 ** 9`, a string doubled
in a loop or `'a'.ljust(10**9)` each run in C, where neither the event loop nor the render's
time budget can stop them. So every operation that can build something much bigger than its
operands is checked before it runs, against the running render's `limits.render_bytes`
(`render_budget.byte_limit`). Outside a render the checks refuse, so Jinja's optimizer never
folds such an operation at compile time.
"""

from __future__ import annotations

import re
import string
import types
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

import jinja2
import msgspec
from jinja2 import filters as jf
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace

from .render_budget import RenderLimitError, byte_limit

__all__ = [
    "BoundedEnvironment",
    "bind",
    "bounded_filters",
    "fromjson",
    "join_output",
    "size_of",
    "text",
    "tojson",
]

_INT_BITS = 4096  # a template's numbers are counts and sizes, far below this
_ITEM_BYTES = 8  # one list slot
_PIECE_BYTES = 64  # one small string made by a split
_SEQUENCES = (str, list, tuple)
_NUMBER = re.compile(r"\d+")
_FORMATTER = string.Formatter()


def _need(size: int, what: str = "a value") -> None:
    limit = byte_limit()
    if size > limit:
        raise RenderLimitError(
            f"the template would build {what} of {size:,} bytes; `limits.render_bytes` "
            f"allows {limit:,}"
        )


def size_of(value: Any) -> int:
    """About how long `str(value)` would be, counting a shared part each time it appears."""
    memo: dict[int, int] = {}

    def size(v: Any) -> int:
        kind = type(v)
        if kind is str:
            return len(v)
        if kind in (int, float, bool) or v is None:
            return 24
        if id(v) in memo:
            return memo[id(v)]
        memo[id(v)] = 0  # a namespace may hold itself; its repr prints "..."
        if isinstance(v, Namespace):
            total = size(dict(v._Namespace__attrs))
        elif isinstance(v, Mapping):
            total = sum(size(k) + size(item) + 4 for k, item in v.items()) + 2
        elif isinstance(v, (list, tuple, set, frozenset)):
            total = sum(size(item) + 2 for item in v) + 2
        else:
            total = len(v) if isinstance(v, str) else 64
        memo[id(v)] = total
        return total

    return size(value)


def _sequence_bytes(seq: Any, count: int) -> int:
    return count if isinstance(seq, str) else count * _ITEM_BYTES


def _check_int(bits: int) -> None:
    if bits > _INT_BITS:
        raise RenderLimitError(
            f"the template would build a number of {bits:,} bits; the most is {_INT_BITS:,}"
        )


def _widths(spec: str) -> int:
    """The sum of the numbers written in a format, i.e. its widths and precisions."""
    total = 0
    for number in _NUMBER.finditer(spec):
        total += int(number.group()) if len(number.group()) < 19 else 1 << 62
        if total >= 1 << 62:
            break
    return total


def _check_format(fmt: str, args: Any) -> None:
    """`fmt % args`: its text, each width written in it, and each field as wide as the
    widest argument (a `*` width counts the integer arguments)."""
    if isinstance(args, Mapping):
        values = list(args.values())
    else:
        values = list(args) if isinstance(args, tuple) else [args]
    widest = max((size_of(v) for v in values), default=0)
    if "*" in fmt:
        widest = max([widest, *(v for v in values if type(v) is int)])
    _need(len(fmt) + _widths(fmt) + fmt.count("%") * widest, "a formatted text")


def _check_str_format(fmt: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    fields = widths = 0
    nested = False
    for _literal, name, spec, _conversion in _FORMATTER.parse(fmt):
        if name is not None:
            fields += 1
            widths += _widths(spec or "")
            nested = nested or "{" in (spec or "")
    values = [*args, *kwargs.values()]
    widest = max((size_of(v) for v in values), default=0)
    if nested:
        widest = max([widest, *(v for v in values if type(v) is int)])
    _need(len(fmt) + widths + fields * widest, "a formatted text")


def _replace_size(s: str, old: str, new: str, count: int = -1) -> int:
    found = s.count(old) if old else len(s) + 1
    if count is not None and count >= 0:
        found = min(found, count)
    return len(s) + found * max(0, len(new) - len(old))


def _split_pieces(s: str, sep: str | None = None) -> int:
    return s.count(sep) + 1 if sep else len(s) // 2 + 1


def _check_pieces(pieces: int) -> None:
    _need(pieces * _PIECE_BYTES, f"a list of {pieces:,} pieces")


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, with `*`, `**`, `+` and `%` and the string methods that
    grow a string checked before they run."""

    # Intercepted operators are also never folded by Jinja's optimizer at compile time.
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "+":
            if isinstance(left, _SEQUENCES) and isinstance(right, _SEQUENCES):
                _need(_sequence_bytes(left, len(left) + len(right)), "a sequence")
        elif operator == "*":
            _check_times(left, right)
        elif operator == "**":
            _check_power(left, right)
        elif isinstance(left, str):
            _check_format(left, right)
        return self.binop_table[operator](left, right)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if type(value) is not types.BuiltinMethodType or not isinstance(value.__self__, str):
            return wrapped
        check = _STR_METHOD_CHECKS.get(value.__name__)
        if check is None:
            return wrapped
        method: Callable[..., Any] = wrapped or value
        owner: str = value.__self__

        def bounded(*args: Any, **kwargs: Any) -> Any:
            return method(*check(owner, args, kwargs), **kwargs)

        return bounded


def _check_times(left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int):
        _check_int(abs(left).bit_length() + abs(right).bit_length())
        return
    seq, count = (left, right) if isinstance(left, _SEQUENCES) else (right, left)
    if isinstance(seq, _SEQUENCES) and isinstance(count, int):
        _need(_sequence_bytes(seq, len(seq) * max(count, 0)), "a repeated sequence")


def _check_power(base: Any, exponent: Any) -> None:
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        bits = abs(base).bit_length() - 1
        _check_int(max(bits, 1) * min(exponent, 1 << 62))


_Args = tuple[Any, ...]


def _check_width(s: str, args: _Args, kwargs: dict[str, Any]) -> _Args:
    width = args[0] if args else kwargs.get("width", 0)
    if isinstance(width, int):
        _need(width, "a padded text")
    return args


def _check_tabs(s: str, args: _Args, kwargs: dict[str, Any]) -> _Args:
    tabsize = args[0] if args else kwargs.get("tabsize", 8)
    if isinstance(tabsize, int):
        _need(len(s) + s.count("\t") * max(tabsize, 0), "a text")
    return args


def _check_replace(s: str, args: _Args, kwargs: dict[str, Any]) -> _Args:
    if len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        count = args[2] if len(args) > 2 else kwargs.get("count", -1)
        _need(_replace_size(s, args[0], args[1], count), "a replaced text")
    return args


def _check_join(s: str, args: _Args, kwargs: dict[str, Any]) -> _Args:
    items = list(args[0]) if args else []
    _need(sum(map(size_of, items)) + len(s) * max(len(items) - 1, 0), "a joined text")
    return (items, *args[1:])


def _check_format_call(s: str, args: _Args, kwargs: dict[str, Any]) -> _Args:
    mapping = args[0] if len(args) == 1 and isinstance(args[0], Mapping) else {}
    _check_str_format(s, args if not mapping else (), {**kwargs, **mapping})
    return args


def _check_split(s: str, args: _Args, kwargs: dict[str, Any]) -> _Args:
    sep = args[0] if args else kwargs.get("sep")
    _check_pieces(_split_pieces(s, sep if isinstance(sep, str) else None))
    return args


def _check_lines(s: str, args: _Args, kwargs: dict[str, Any]) -> _Args:
    _check_pieces(len(s) + 1)
    return args


def _check_translate(s: str, args: _Args, kwargs: dict[str, Any]) -> _Args:
    table = args[0] if args and isinstance(args[0], Mapping) else {}
    longest = max((len(v) for v in table.values() if isinstance(v, str)), default=1)
    _need(len(s) * max(longest, 1), "a translated text")
    return args


_STR_METHOD_CHECKS: dict[str, Callable[[str, _Args, dict[str, Any]], _Args]] = {
    "ljust": _check_width,
    "rjust": _check_width,
    "center": _check_width,
    "zfill": _check_width,
    "expandtabs": _check_tabs,
    "replace": _check_replace,
    "join": _check_join,
    "format": _check_format_call,
    "format_map": _check_format_call,
    "split": _check_split,
    "rsplit": _check_split,
    "splitlines": _check_lines,
    "translate": _check_translate,
}


def text(value: Any) -> Any:
    """What `{{ value }}` prints, checked first when printing it could build a huge text."""
    if type(value) is not str and isinstance(value, (list, tuple, dict, set, Namespace)):
        _need(size_of(value), "a printed value")
    return value


def _str_join(values: Iterable[Any]) -> str:
    parts = [v if type(v) is str else str(text(v)) for v in values]
    _need(sum(map(len, parts)), "a joined text (`~`)")
    return "".join(parts)


def join_output(pieces: Iterable[str]) -> str:
    """A render's, a macro's or a block's output, refused past `render_bytes`."""
    parts = list(pieces)
    _need(sum(map(len, parts)), "an output")
    return "".join(parts)


def bind(template: jinja2.Template) -> jinja2.Template:
    """Route the compiled template's joins (`~`, blocks, macros) through the bounded ones."""
    # The generated module imports `concat` and `str_join` from jinja2.runtime; its
    # functions look them up in this namespace when they run.
    namespace = template.root_render_func.__globals__
    namespace["concat"] = join_output
    namespace["str_join"] = _str_join
    return template


# Filters that build more than they are given, each checked before it runs.


def _center(value: str, width: int = 80) -> str:
    _need(max(len(str(value)), width), "a centred text")
    return jf.do_center(value, width)


def _indent(s: str, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    pad = len(width) if isinstance(width, str) else int(width)
    s = str(s)
    _need(len(s) + (s.count("\n") + 1) * pad, "an indented text")
    return jf.do_indent(s, width, first, blank)


@jinja2.pass_environment
def _wordwrap(
    environment: jinja2.Environment, s: str, width: int = 79, *args: Any, **kwargs: Any
) -> str:
    s = str(s)
    wrap = kwargs.get("wrapstring") or (args[1] if len(args) > 1 else None) or "\n"
    _check_pieces(_split_pieces(s))
    _need(len(s) + (len(s) // max(width, 1) + s.count("\n") + 1) * len(wrap), "a wrapped text")
    return jf.do_wordwrap(environment, s, width, *args, **kwargs)


def _batch(value: Iterable[Any], linecount: int, fill_with: Any = None) -> Any:
    _need(linecount * _ITEM_BYTES, "a batch")
    return jf.do_batch(value, linecount, fill_with)


def _slice(value: Collection[Any], slices: int, fill_with: Any = None) -> Any:
    _need(slices * _PIECE_BYTES, "a list of slices")
    return jf.sync_do_slice(value, slices, fill_with)


@jinja2.pass_eval_context
def _replace(eval_ctx: Any, s: str, old: str, new: str, count: int | None = None) -> str:
    size = _replace_size(str(s), str(old), str(new), -1 if count is None else count)
    _need(size, "a replaced text")
    return jf.do_replace(eval_ctx, s, old, new, count)


def _format(value: str, *args: Any, **kwargs: Any) -> str:
    _check_format(str(value), kwargs or args)
    return jf.do_format(value, *args, **kwargs)


@jinja2.pass_eval_context
def _join(
    eval_ctx: Any, value: Iterable[Any], d: str = "", attribute: str | int | None = None
) -> str:
    if attribute is not None:
        value = map(jf.make_attrgetter(eval_ctx.environment, attribute), value)
    items = list(value)
    _need(sum(map(size_of, items)) + len(str(d)) * max(len(items) - 1, 0), "a joined text")
    return jf.sync_do_join(eval_ctx, items, d)


def _string(value: Any) -> str:
    return str(text(value))


def _list(value: Iterable[Any]) -> list[Any]:
    if isinstance(value, str):
        _need(len(value) * _ITEM_BYTES, "a list")
    return jf.sync_do_list(value)


def _wordcount(s: str) -> int:
    _check_pieces(_split_pieces(str(s)))
    return jf.do_wordcount(s)


@jinja2.pass_environment
def _sum(
    environment: jinja2.Environment, iterable: Iterable[Any], attribute: Any = None, start: Any = 0
) -> Any:
    if not isinstance(start, (int, float)):
        raise RenderLimitError("`sum` adds numbers; join lists or strings with `join` or `~`")
    return jf.sync_do_sum(environment, iterable, attribute, start)


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.decode
_JSON_GROWTH = 4  # a JSON text decodes into objects several times its size


def tojson(value: Any) -> str:
    """`value` as JSON (Jinja's own escapes <, > and & for HTML; these are JSON bodies)."""
    if value is None:
        return "null"  # most of a stream event's fields, most of the time
    if isinstance(value, jinja2.Undefined):
        str(value)  # a StrictUndefined raises its own error, naming what is missing
    if type(value) is not str:
        text(value)
    return _encode(value).decode()


def fromjson(value: str) -> Any:
    """The JSON text `value` decoded; None when it is not JSON."""
    if isinstance(value, (str, bytes)):
        _need(len(value) * _JSON_GROWTH, "a decoded JSON value")
    try:
        return _decode(value)
    except msgspec.DecodeError:
        return None


def bounded_filters() -> dict[str, Callable[..., Any]]:
    """The filters that replace Jinja's own, and multiport's `tojson` and `fromjson`."""
    return {
        "center": _center,
        "indent": _indent,
        "wordwrap": _wordwrap,
        "batch": _batch,
        "slice": _slice,
        "replace": _replace,
        "format": _format,
        "join": _join,
        "string": _string,
        "list": _list,
        "wordcount": _wordcount,
        "sum": _sum,
        "tojson": tojson,
        "fromjson": fromjson,
    }
