"""Provider files → specs. Every problem carries file, line, column and `$.path`."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

import msgspec
import msgspec.inspect as mi
import yaml

from ._yamlsource import Path, YamlSource, format_path, parse_path
from .envsubst import interpolate, read_dotenv
from .errors import Problem
from .spec import ProviderSpec

__all__ = ["LoadedFile", "find_provider_files", "load_file"]

_MSGSPEC_AT = re.compile(r" - at `(\$[^`]*)`$")
_MISSING_FIELD = re.compile(r"Object missing required field `([^`]+)`")
_PROVIDER_INFO = mi.type_info(ProviderSpec)


@dataclass
class LoadedFile:
    """One provider file after loading: its spec (when valid) and what was found."""

    path: FsPath
    source: YamlSource | None = None
    spec: ProviderSpec | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    missing_env: dict[Path, list[str]] = field(default_factory=dict)
    used_env: dict[Path, list[str]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def name(self) -> str:
        if self.spec is not None and self.spec.name:
            return self.spec.name
        return self.path.stem

    def problem(
        self, path: Path, message: str, *, key: bool = False, severity: str = "error"
    ) -> Problem:
        """Record a problem located at `path` in this file."""
        line, column = self.source.locate(path, key=key) if self.source else (1, 1)
        found = Problem(str(self.path), line, column, message, format_path(path), severity)
        self.problems.append(found)
        return found


def find_provider_files(paths: list[str]) -> tuple[list[FsPath], list[Problem]]:
    """Expand files and folders into the provider files they hold, sorted by name."""
    files: list[FsPath] = []
    problems: list[Problem] = []
    for raw in paths:
        path = FsPath(raw)
        if path.is_dir():
            found = sorted([*path.glob("*.yaml"), *path.glob("*.yml")])
            if not found:
                problems.append(Problem(raw, 1, 1, "folder holds no *.yaml provider file"))
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            problems.append(Problem(raw, 1, 1, "no such file or folder"))
    return files, problems


def load_file(path: FsPath, environ: Mapping[str, str] | None = None) -> LoadedFile:
    """Read, interpolate and decode one provider file; problems are collected, not raised."""
    loaded = LoadedFile(path)
    environ = os.environ if environ is None else environ
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        loaded.problem((), f"cannot read the file: {exc}")
        return loaded
    try:
        loaded.source = YamlSource.parse(str(path), text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = getattr(exc, "problem", None) or str(exc)
        loaded.problems.append(
            Problem(str(path), line, column, f"YAML syntax error: {what}; fix the syntax")
        )
        return loaded
    data = loaded.source.data
    if not isinstance(data, dict):
        loaded.problem((), "a provider file must be a YAML mapping of keys such as port, base_url")
        return loaded
    env = _environment(loaded, data, environ)
    interpolated = interpolate(data, env)
    loaded.env = env
    loaded.missing_env, loaded.used_env = interpolated.missing, interpolated.used
    if _unknown_keys(loaded, interpolated.data, _PROVIDER_INFO, ()):
        return loaded
    try:
        spec = msgspec.convert(interpolated.data, ProviderSpec, strict=False)
    except msgspec.ValidationError as exc:
        _report_validation(loaded, str(exc))
        return loaded
    if spec.name is None:
        spec = msgspec.structs.replace(spec, name=path.stem)
    loaded.spec = spec
    return loaded


def _environment(
    loaded: LoadedFile, data: dict[str, Any], environ: Mapping[str, str]
) -> dict[str, str]:
    env_file = data.get("env_file")
    if not isinstance(env_file, str):
        return dict(environ)
    target = loaded.path.parent / interpolate(env_file, environ).data
    try:
        from_file = read_dotenv(target)
    except OSError:
        loaded.problem(
            ("env_file",), f"env_file {target} cannot be read; create it or remove the key"
        )
        return dict(environ)
    except ValueError as exc:
        loaded.problem(("env_file",), f"env_file {target}: {exc}")
        return dict(environ)
    return {**from_file, **environ}


def _unknown_keys(loaded: LoadedFile, data: Any, info: mi.Type, path: Path) -> bool:
    """Report every unknown key in the document at once, with a suggestion."""
    while isinstance(info, mi.Metadata):
        info = info.type
    if isinstance(info, mi.UnionType):
        structs = [m for m in info.types if isinstance(m, mi.StructType)]
        return (
            bool(structs)
            and isinstance(data, dict)
            and _unknown_keys(loaded, data, structs[0], path)
        )
    if isinstance(info, mi.StructType) and isinstance(data, dict):
        return _unknown_struct_keys(loaded, data, info, path)
    found = False
    if isinstance(info, mi.ListType) and isinstance(data, list):
        for i, item in enumerate(data):
            found |= _unknown_keys(loaded, item, info.item_type, (*path, i))
    elif isinstance(info, mi.DictType) and isinstance(data, dict):
        for key, value in data.items():
            found |= _unknown_keys(loaded, value, info.value_type, (*path, str(key)))
    return found


def _unknown_struct_keys(
    loaded: LoadedFile, data: dict[Any, Any], info: mi.StructType, path: Path
) -> bool:
    found = False
    fields = {f.encode_name: f for f in info.fields}
    for key, value in data.items():
        if key in fields:
            found |= _unknown_keys(loaded, value, fields[key].type, (*path, key))
            continue
        close = difflib.get_close_matches(str(key), list(fields), n=1)
        hint = f"did you mean `{close[0]}`?" if close else f"known keys: {', '.join(fields)}"
        loaded.problem((*path, str(key)), f"unknown key `{key}`: {hint}", key=True)
        found = True
    return found


def _report_validation(loaded: LoadedFile, message: str) -> None:
    match = _MSGSPEC_AT.search(message)
    path = parse_path(match.group(1)) if match else ()
    text = message[: match.start()] if match else message
    missing = _MISSING_FIELD.match(text)
    if missing:
        key = missing.group(1)
        help_text = _description((*path, key))
        loaded.problem(path, f"missing required key `{key}`: {help_text}".rstrip(": "))
        return
    help_text = _description(path)
    hint = f"; {path[-1]}: {help_text}" if path and help_text else ""
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
