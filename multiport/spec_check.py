"""A provider file's data decoded into its spec field by field: every problem reported.

msgspec stops at the first wrong value; this walks the spec's fields so that every
unknown key, wrong-typed and missing value of a file is reported in one run, and puts
stand-ins where required values are wrong, so the later checks still see a spec.
"""

from __future__ import annotations

import difflib
import itertools
import re
from collections.abc import Callable
from types import UnionType
from typing import TYPE_CHECKING, Annotated, Any, TypeGuard, Union, get_args, get_origin

import msgspec
import msgspec.inspect as mi

from ._yamlsource import Path, parse_path
from .spec import MappingSpec, ProviderSpec

if TYPE_CHECKING:
    from .loader import LoadedFile

__all__ = ["decode_spec", "report_validation"]

# msgspec's " - at `$.a[0].b`", or " - at `key` in `$.headers`" for a wrong key.
_MSGSPEC_AT = re.compile(r" - at (`key` in )?`(\$[^`]*)`$")
_MISSING_FIELD = re.compile(r"Object missing required field `([^`]+)`")
_PROVIDER_INFO = mi.type_info(ProviderSpec)

# A wrong or missing value checked field by field is left out, so its default applies.
_INVALID: Any = object()

# Stand-ins for required values that are wrong or missing, so the checks that need a spec
# still run on the rest of the file. A file that needs one has an error: it is never served.
# The port's stand-in decodes as 1, then becomes a port no file can have, never the same
# twice, so that it clashes with no other file's port.
_PORTS = itertools.count(-1, -1)
# Matches nothing, yet has every group a target may name (\1 to \99).
_NEVER = r"[^\s\S]" + "()" * 99
_STAND_INS: dict[tuple[type[msgspec.Struct], str], Callable[[], Any]] = {
    (ProviderSpec, "port"): lambda: 1,
    (ProviderSpec, "base_url"): lambda: "http://stand-in.invalid",
    (MappingSpec, "match"): lambda: _NEVER,
    (MappingSpec, "target"): lambda: "stand-in",
}


def decode_spec(loaded: LoadedFile, data: dict[Any, Any]) -> ProviderSpec | None:
    """The spec, after reporting every unknown key and every wrong or missing value."""
    known = _known_keys(loaded, data, _PROVIDER_INFO, ())
    try:
        return msgspec.convert(known, ProviderSpec, strict=False)
    except msgspec.ValidationError as exc:
        reported = len(loaded.problems)
        repaired = _check_struct(loaded, known, ProviderSpec, ())
        if len(loaded.problems) == reported:  # the field-by-field check missed it: say it
            report_validation(loaded, str(exc), ())
            return None
    try:
        spec = msgspec.convert(repaired, ProviderSpec, strict=False)
    except msgspec.ValidationError as exc:  # a rule on a whole list or mapping, say
        report_validation(loaded, str(exc), ())
        return None
    if ("port",) in loaded.stand_ins:
        spec = msgspec.structs.replace(spec, port=next(_PORTS))
    return spec


def _known_keys(loaded: LoadedFile, data: Any, info: mi.Type, path: Path) -> Any:
    """`data` without its unknown keys, each reported at once, with a suggestion."""
    while isinstance(info, mi.Metadata):
        info = info.type
    if isinstance(info, mi.UnionType):
        structs = [m for m in info.types if isinstance(m, mi.StructType)]
        if structs and isinstance(data, dict):
            return _known_keys(loaded, data, structs[0], path)
        return data
    if isinstance(info, mi.StructType) and isinstance(data, dict):
        return _known_struct_keys(loaded, data, info, path)
    if isinstance(info, mi.ListType) and isinstance(data, list):
        return [_known_keys(loaded, v, info.item_type, (*path, i)) for i, v in enumerate(data)]
    if isinstance(info, mi.DictType) and isinstance(data, dict):
        return {
            k: _known_keys(loaded, v, info.value_type, (*path, str(k))) for k, v in data.items()
        }
    return data


def _known_struct_keys(
    loaded: LoadedFile, data: dict[Any, Any], info: mi.StructType, path: Path
) -> dict[Any, Any]:
    known: dict[Any, Any] = {}
    fields = {f.encode_name: f for f in info.fields}
    for key, value in data.items():
        if key in fields:
            known[key] = _known_keys(loaded, value, fields[key].type, (*path, key))
            continue
        close = difflib.get_close_matches(str(key), list(fields), n=1)
        hint = f"did you mean `{close[0]}`?" if close else f"known keys: {', '.join(fields)}"
        loaded.problem((*path, str(key)), f"unknown key `{key}`: {hint}", key=True)
    return known


def _check_struct(
    loaded: LoadedFile, data: dict[Any, Any], cls: type[msgspec.Struct], path: Path
) -> Any:
    """Check `data` field by field against `cls`, reporting every wrong or missing value.

    Returns the fields that are right, a wrong one left out (its default applies) or, when
    required, replaced by a stand-in; `_INVALID` when a required field has no stand-in.
    """
    checked: dict[str, Any] = {}
    for info in msgspec.structs.fields(cls):
        key = info.encode_name
        value = _INVALID
        if key in data:
            value = _check_value(loaded, data[key], info.type, (*path, key))
        elif info.required:
            _report_missing(loaded, path, key)
        if value is _INVALID and info.required:
            value = _stand_in(loaded, cls, key, (*path, key))
        if value is _INVALID and info.required:
            return _INVALID
        if value is not _INVALID:
            checked[key] = value
    return checked


def _check_value(loaded: LoadedFile, value: Any, tp: Any, path: Path) -> Any:
    """`value` if it converts to `tp`, else `_INVALID` after reporting every error in it."""
    inner, nullable = _unwrap(tp)
    if value is None and nullable:
        return value
    if _is_struct(inner) and isinstance(value, dict):
        return _check_struct(loaded, value, inner, path)
    origin, args = get_origin(inner), get_args(inner)
    if origin is list and isinstance(value, list):
        return _check_list(loaded, value, args[0], path)
    if origin is dict and isinstance(value, dict):
        entries = [_convert(loaded, {k: v}, inner, (*path, str(k))) for k, v in value.items()]
        return _INVALID if any(e is _INVALID for e in entries) else value
    return _convert(loaded, value, tp, path)


def _convert(loaded: LoadedFile, value: Any, tp: Any, path: Path) -> Any:
    """`value` if msgspec converts it to `tp`, else `_INVALID` after reporting why."""
    try:
        msgspec.convert(value, tp, strict=False)
    except msgspec.ValidationError as exc:
        report_validation(loaded, str(exc), path)
        return _INVALID
    return value


def _check_list(loaded: LoadedFile, items: list[Any], item_type: Any, path: Path) -> Any:
    """Every item checked; a wrong struct item is stood in for, so later ones keep their
    index (and their line in messages)."""
    checked = [_check_value(loaded, item, item_type, (*path, i)) for i, item in enumerate(items)]
    inner, _ = _unwrap(item_type)
    if _is_struct(inner):
        checked = [
            _stand_in_struct(loaded, inner, (*path, i)) if value is _INVALID else value
            for i, value in enumerate(checked)
        ]
    return _INVALID if any(v is _INVALID for v in checked) else checked


def _stand_in_struct(loaded: LoadedFile, cls: type[msgspec.Struct], path: Path) -> Any:
    """A struct of stand-ins for a list item that is wrong as a whole, or `_INVALID`."""
    fields: dict[str, Any] = {}
    for info in msgspec.structs.fields(cls):
        if info.required:
            key = info.encode_name
            fields[key] = _stand_in(loaded, cls, key, (*path, key))
            if fields[key] is _INVALID:
                return _INVALID
    return fields


def _stand_in(loaded: LoadedFile, cls: type[msgspec.Struct], key: str, path: Path) -> Any:
    make = _STAND_INS.get((cls, key))
    if make is None:
        return _INVALID
    loaded.stand_ins.add(path)
    return make()


def _unwrap(tp: Any) -> tuple[Any, bool]:
    """`Annotated[X | None, …]` → (X, True): the type to descend into, and whether null is allowed."""
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    if get_origin(tp) in (Union, UnionType):
        members = [m for m in get_args(tp) if m is not type(None)]
        nullable = len(members) < len(get_args(tp))
        return (members[0] if len(members) == 1 else tp), nullable
    return tp, False


def _is_struct(tp: Any) -> TypeGuard[type[msgspec.Struct]]:
    return isinstance(tp, type) and issubclass(tp, msgspec.Struct)


def _report_missing(loaded: LoadedFile, path: Path, key: str) -> None:
    help_text = _description((*path, key))
    loaded.problem(path, f"missing required key `{key}`: {help_text}".rstrip(": "))


def report_validation(loaded: LoadedFile, message: str, prefix: Path) -> None:
    """One msgspec error, its `$` path taken as relative to `prefix`."""
    match = _MSGSPEC_AT.search(message)
    path = (*prefix, *parse_path(match.group(2))) if match else prefix
    text = message[: match.start()] if match else message
    missing = _MISSING_FIELD.match(text)
    if missing:
        _report_missing(loaded, path, missing.group(1))
        return
    if match and match.group(1):
        loaded.problem(path, f"key `{path[-1]}`: {text}", key=True)
        return
    help_text = _description(path)
    name = next((part for part in reversed(path) if isinstance(part, str)), None)
    hint = f"; {name}: {help_text}" if name and help_text else ""
    loaded.problem(path, f"{text}{hint}")


def _description(path: Path) -> str:
    """The field's help text from the spec, for the message."""
    info: mi.Type = _PROVIDER_INFO
    description = ""
    for part in path:
        while isinstance(info, mi.Metadata | mi.UnionType):
            if isinstance(info, mi.Metadata):
                info = info.type
            else:
                nested = [t for t in info.types if isinstance(t, mi.StructType | mi.ListType)]
                if not nested:
                    return description
                info = nested[0]
        if isinstance(info, mi.StructType) and isinstance(part, str):
            fields = [f for f in info.fields if f.encode_name == part]
            if not fields:
                return ""
            info = fields[0].type
            description = _meta_description(info)
        elif isinstance(info, mi.ListType) and isinstance(part, int):
            info = info.item_type
        else:
            return description
    return description


def _meta_description(info: mi.Type) -> str:
    if isinstance(info, mi.Metadata):
        extra = info.extra_json_schema or {}
        description = extra.get("description")
        if isinstance(description, str):
            return description
        return _meta_description(info.type)
    return ""
