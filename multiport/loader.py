"""Provider files → specs. Every problem carries file, line, column and `$.path`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

import msgspec
import yaml

from ._yamlsource import Path, YamlSource, YamlTooLarge, format_path
from .envsubst import MAX_INTERPOLATED_CHARS, interpolate, read_dotenv
from .errors import Problem
from .files import FileRefused, inside_folder, read_text
from .limits_spec import DefaultsSpec
from .spec import ProviderSpec
from .spec_check import decode_spec, report_validation

__all__ = ["DEFAULTS_FILE", "LoadedFile", "find_provider_files", "load_defaults", "load_file"]

# A providers folder's defaults for every file in it: `limits:`, `timeouts:`, `access:`.
DEFAULTS_FILE = "_defaults.yaml"
_DEFAULTED = ("limits", "timeouts", "access")


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
    # Paths whose value in `spec` stands in for a wrong or missing required one.
    stand_ins: set[Path] = field(default_factory=set)
    # For a folder's `_defaults.yaml`: its `limits:` and `timeouts:`, once checked.
    defaults: dict[str, Any] = field(default_factory=dict)

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
            found = sorted(
                p for p in [*path.glob("*.yaml"), *path.glob("*.yml")] if p.name != DEFAULTS_FILE
            )
            if not found:
                problems.append(Problem(raw, 1, 1, "folder holds no *.yaml provider file"))
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            problems.append(Problem(raw, 1, 1, "no such file or folder"))
    return files, problems


def load_defaults(folder: FsPath, environ: Mapping[str, str] | None = None) -> LoadedFile | None:
    """The folder's `_defaults.yaml`, checked; None when the folder has none.

    Its `limits:` and `timeouts:` are in `defaults`; a file with problems gives none (the
    built-in defaults apply) and its problems are reported like a provider file's.
    """
    path = folder / DEFAULTS_FILE
    if not path.is_file():
        return None
    loaded = LoadedFile(path)
    data = _parse(loaded, what="a defaults file of `limits:` and `timeouts:`")
    if data is None:
        return loaded
    loaded.env = os.environ if environ is None else environ
    interpolated = interpolate(data, loaded.env)
    data, loaded.used_env = interpolated.data, interpolated.used
    try:
        msgspec.convert(data, DefaultsSpec, strict=False)
    except msgspec.ValidationError as exc:
        report_validation(loaded, str(exc), ())
        return loaded
    loaded.defaults = {key: data[key] for key in _DEFAULTED if isinstance(data.get(key), dict)}
    return loaded


def _with_defaults(data: dict[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The file's data with the folder's defaults under its own `limits:`, `timeouts:`, `access:`."""
    merged = dict(data)
    for key, values in defaults.items():
        own = data.get(key, {})
        merged[key] = {**values, **own} if isinstance(own, dict) else own
    return merged


def load_file(
    path: FsPath,
    environ: Mapping[str, str] | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> LoadedFile:
    """Read, interpolate and decode one provider file; problems are collected, not raised.

    A file with schema errors still gets a spec when it can: what is wrong is left out (a
    default applies) or stood in for, so the checks that need a spec (regexes, URLs,
    templates) report their problems in the same run. Such a file is never served.
    """
    loaded = LoadedFile(path)
    environ = os.environ if environ is None else environ
    data = _parse(loaded)
    if data is None:
        return loaded
    env = _environment(loaded, data, environ)
    interpolated = interpolate(data, env)
    if interpolated.overflow is not None:
        loaded.problem(
            interpolated.overflow,
            f"`${{VAR}}` values make this file's text over {MAX_INTERPOLATED_CHARS:,} "
            "characters; refer to long values fewer times",
        )
        return loaded
    loaded.env = env
    loaded.missing_env, loaded.used_env = interpolated.missing, interpolated.used
    spec = decode_spec(loaded, _with_defaults(interpolated.data, defaults or {}))
    if spec is not None and spec.name is None:
        spec = msgspec.structs.replace(spec, name=path.stem)
    loaded.spec = spec
    loaded.problems.sort(key=lambda p: (p.line, p.column))
    return loaded


def _parse(
    loaded: LoadedFile, what: str = "a provider file of keys such as port, base_url"
) -> dict[Any, Any] | None:
    """The file's YAML mapping, its positions in `loaded.source`; None after a problem."""
    try:
        text = read_text(loaded.path)
    except FileRefused as exc:
        loaded.problem((), f"the file {exc}")
        return None
    try:
        loaded.source = YamlSource.parse(str(loaded.path), text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = getattr(exc, "problem", None) or str(exc)
        loaded.problems.append(
            Problem(str(loaded.path), line, column, f"YAML syntax error: {what}; fix the syntax")
        )
        return None
    except YamlTooLarge as exc:
        loaded.problems.append(Problem(str(loaded.path), exc.line, exc.column, exc.message))
        return None
    _report_duplicates(loaded, loaded.source)
    data = loaded.source.data
    if not isinstance(data, dict):
        loaded.problem((), f"{what} must be a YAML mapping")
        return None
    return data


def _report_duplicates(loaded: LoadedFile, source: YamlSource) -> None:
    """A key given twice is an error at the second, naming the first's line."""
    for duplicate in source.duplicates:
        message = (
            f"duplicate key `{duplicate.path[-1]}`: already given at line "
            f"{duplicate.first_line}; keep one (YAML would silently use the last)"
        )
        where = format_path(duplicate.path)
        loaded.problems.append(
            Problem(str(loaded.path), duplicate.line, duplicate.column, message, where)
        )


def _environment(
    loaded: LoadedFile, data: dict[str, Any], environ: Mapping[str, str]
) -> dict[str, str]:
    """The variables `${VAR}` reads: the process environment over the `env_file`'s."""
    env_file = data.get("env_file")
    if not isinstance(env_file, str):
        return dict(environ)
    name = interpolate(env_file, environ).data
    try:
        target = inside_folder(loaded.path.parent, name)
        from_file = read_dotenv(target)
    except FileRefused as exc:
        loaded.problem(("env_file",), f"env_file {name} {exc}; fix the path or remove the key")
        return dict(environ)
    except ValueError as exc:
        loaded.problem(("env_file",), f"env_file {name}: {exc}; fix or remove that line")
        return dict(environ)
    return {**from_file, **environ}
