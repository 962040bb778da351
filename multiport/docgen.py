"""Markdown field tables generated from Structs, so the docs cannot drift from the code.

`docs/provider-configuration.md` and `docs/templates.md` hold the tables between
`<!-- generated: NAME -->` and `<!-- end: NAME -->`; `multiport schema --docs` rewrites
them, and a test fails when a committed table differs from what the code says.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec
import msgspec.inspect as mi

from .contracts import NeutralRequest, RenderedAnswer, StreamEvent
from .limits_spec import LimitsSpec, TimeoutsSpec
from .spec import ProviderSpec

__all__ = ["TABLES", "field_table", "refresh_docs"]

TABLES: dict[str, type[msgspec.Struct]] = {
    "provider": ProviderSpec,
    "neutral-request": NeutralRequest,
    "stream-event": StreamEvent,
    "rendered-answer": RenderedAnswer,
    "limits": LimitsSpec,
    "timeouts": TimeoutsSpec,
}
_DOCS = {  # the rest are in templates.md
    "provider": "provider-configuration.md",
    "limits": "limits.md",
    "timeouts": "limits.md",
}
_SCALARS = {
    mi.StrType: "string",
    mi.IntType: "integer",
    mi.FloatType: "number",
    mi.BoolType: "boolean",
    mi.AnyType: "any",
}


def _plain(info: mi.Type) -> mi.Type:
    while isinstance(info, mi.Metadata):
        info = info.type
    return info


def _type_name(info: mi.Type) -> str:
    info = _plain(info)
    if isinstance(info, mi.UnionType):
        names = [_type_name(t) for t in info.types if not isinstance(t, mi.NoneType)]
        tail = " or null" if any(isinstance(t, mi.NoneType) for t in info.types) else ""
        return " or ".join(names) + tail
    if isinstance(info, mi.LiteralType):
        return " \\| ".join(f"`{v}`" for v in sorted(map(str, info.values)))
    if isinstance(info, mi.ListType):
        return f"list of {_type_name(info.item_type)}"
    if isinstance(info, mi.DictType):
        value = _type_name(info.value_type)
        return f"mapping of {value}s" if value in ("string", "integer") else "mapping"
    if isinstance(info, mi.StructType):
        return (
            f"`{info.cls.__struct_config__.tag}` mapping"
            if info.cls.__struct_config__.tag
            else "mapping"
        )
    return _SCALARS.get(type(info), type(info).__name__)


def _default(field: mi.Field) -> str:
    if field.required:
        return "required"
    value: Any = field.default
    if value is msgspec.NODEFAULT and field.default_factory is not msgspec.NODEFAULT:
        value = field.default_factory()
    if isinstance(value, msgspec.Struct):
        return "see below"
    if value in ([], {}, ()):
        return ""
    if field.name.endswith("bytes") and isinstance(value, int):
        return f"{value} ({_size(value)})"
    return str(value)


def _size(count: int) -> str:
    for unit, shift in (("MiB", 20), ("KiB", 10)):
        if count >= 1 << shift and count % (1 << shift) == 0:
            return f"{count >> shift} {unit}"
    return f"{count:,}"


def _nested(info: mi.Type) -> list[mi.StructType]:
    info = _plain(info)
    if isinstance(info, mi.UnionType):
        return [s for t in info.types for s in _nested(t)]
    if isinstance(info, mi.ListType):
        return _nested(info.item_type)
    return [info] if isinstance(info, mi.StructType) else []


def _rows(info: mi.StructType, prefix: str, out: list[str]) -> None:
    for field in info.fields:
        name = prefix + field.encode_name
        help_text = _description(field.type)
        out.append(f"| `{name}` | {_type_name(field.type)} | {_default(field)} | {help_text} |")
        is_list = isinstance(_plain(field.type), mi.ListType) or any(
            isinstance(t, mi.ListType) for t in getattr(_plain(field.type), "types", ())
        )
        for nested in _nested(field.type):
            tag = nested.cls.__struct_config__.tag
            inner = f"{name}[]." if is_list else f"{name}."
            if tag:
                inner = f"{inner}({tag})."
            _rows(nested, inner, out)


def _description(info: mi.Type) -> str:
    while isinstance(info, mi.Metadata):
        if info.extra_json_schema and "description" in info.extra_json_schema:
            return str(info.extra_json_schema["description"])
        info = info.type
    return ""


def field_table(struct: type[msgspec.Struct]) -> str:
    """The markdown table of every field of `struct`, nested fields included."""
    info = mi.type_info(struct)
    assert isinstance(info, mi.StructType)
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    _rows(info, "", rows)
    return "\n".join(rows) + "\n"


def _block(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- generated: {name} -->\n)(.*?)(<!-- end: {name} -->)", re.S)


def refresh_docs(docs: Path, *, write: bool) -> list[str]:
    """Tables that differ from the code; rewritten when `write`."""
    stale = []
    for name, struct in TABLES.items():
        path = docs / _DOCS.get(name, "templates.md")
        text = path.read_text(encoding="utf-8")
        pattern = _block(name)
        match = pattern.search(text)
        table = field_table(struct)
        if match is None or match.group(2) != table:
            stale.append(f"{path}: table {name}")
            if write and match is not None:
                text = text[: match.start(2)] + table + text[match.end(2) :]
                path.write_text(text, encoding="utf-8")
    return stale
