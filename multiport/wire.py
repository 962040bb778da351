"""Wire formats compiled: built-in dialects and provider templates, checked on samples."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from pathlib import Path as FsPath

import msgspec
import yaml

from ._yamlsource import Path
from .errors import Problem
from .files import FileRefused, inside_folder, read_text
from .limits_spec import LimitsSpec
from .loader import LoadedFile
from .spec import ProviderSpec, TemplateFile, WireSpec
from .templates import CompiledTemplate, TemplateProblem, compile_template

__all__ = ["DIALECTS", "Wire", "compile_wire"]

_DIALECT_DIR = resources.files("multiport") / "dialects"
DIALECTS = tuple(
    sorted(p.name.removesuffix(".yaml") for p in _DIALECT_DIR.iterdir() if p.name.endswith(".yaml"))
)


@dataclass(frozen=True)
class Wire:
    """A compiled wire format."""

    dialect: str
    path: str
    stream_path: str
    framing: str
    passthrough: bool
    request: CompiledTemplate | None
    response: CompiledTemplate | None
    stream: CompiledTemplate | None


@functools.cache
def _read_dialect(name: str) -> WireSpec:
    text = (_DIALECT_DIR / f"{name}.yaml").read_text(encoding="utf-8")
    return msgspec.convert(yaml.safe_load(text), WireSpec)


def compile_wire(loaded: LoadedFile, spec: ProviderSpec) -> Wire | None:
    own = spec.wire
    base = WireSpec()
    if own.dialect is not None:
        if own.dialect not in DIALECTS:
            loaded.problem(
                ("wire", "dialect"),
                f"unknown dialect {own.dialect!r}; built-in dialects: {', '.join(DIALECTS)}",
            )
            return None
        base = _read_dialect(own.dialect)
    passthrough = bool(own.passthrough if own.passthrough is not None else base.passthrough)
    templates: dict[str, CompiledTemplate | None] = {}
    for kind in ("request", "response", "stream"):
        mine = getattr(own, kind)
        source = mine if mine is not None else getattr(base, kind)
        relative_to = loaded.path.parent if mine is not None else FsPath(str(_DIALECT_DIR))
        templates[kind] = _template(loaded, ("wire", kind), source, kind, relative_to, spec.limits)
        if source is None and not passthrough:
            loaded.problem(
                ("wire",),
                f"wire needs a {kind} template, or a dialect ({', '.join(DIALECTS)}) that has one",
            )
    path = own.path or base.path
    if not path:
        loaded.problem(("wire",), "wire needs a path, e.g. `path: /chat/completions`, or a dialect")
        return None
    framing = own.framing or base.framing
    if framing is None and templates["stream"] is not None:
        # Guessing would turn an NDJSON stream into "ended before it finished".
        loaded.problem(
            ("wire",),
            "wire needs `framing: sse` or `framing: ndjson`: how the upstream frames the "
            "stream its stream template reads",
        )
        return None
    if any(p.severity == "error" for p in loaded.problems if p.path.startswith("$.wire")):
        return None
    return Wire(
        own.dialect or "custom",
        path,
        own.stream_path or base.stream_path or path,
        framing or "sse",
        passthrough,
        templates["request"],
        templates["response"],
        templates["stream"],
    )


def _template(
    loaded: LoadedFile,
    path: Path,
    source: str | TemplateFile | None,
    kind: str,
    relative_to: FsPath,
    limits: LimitsSpec,
) -> CompiledTemplate | None:
    if source is None:
        return None
    name = f"{loaded.name}:{kind}"
    line_offset = 0
    trusted = isinstance(source, TemplateFile) and relative_to != loaded.path.parent
    if isinstance(source, TemplateFile):
        name, read = _read_template(loaded, path, source, trusted)
        if read is None:
            return None
        text = read
    else:
        text = source
        if loaded.source is not None:
            line_offset = _first_line(loaded, path) - 1
    where = name if isinstance(source, TemplateFile) else str(loaded.path)
    compiled, problems = _compile_cached(text, name, kind, trusted, where, line_offset, limits)
    for problem in problems:
        if isinstance(source, TemplateFile):
            found = Problem(name, problem.line, 1, problem.message, f"$.wire.{kind}")
            loaded.problems.append(found)
        else:
            line = line_offset + problem.line
            loaded.problems.append(
                Problem(str(loaded.path), line, 1, problem.message, f"$.wire.{kind}")
            )
    return compiled


def _read_template(
    loaded: LoadedFile, path: Path, source: TemplateFile, trusted: bool
) -> tuple[str, str | None]:
    """The template file's name and text; a built-in dialect's is read from the package.

    A provider's own template file must be a regular file inside the provider file's
    folder: it is rendered, so what it holds could reach a client.
    """
    if trusted:
        return f"dialect {source.file}", (_DIALECT_DIR / source.file).read_text(encoding="utf-8")
    folder = loaded.path.parent
    try:
        file = inside_folder(folder, source.file)
        if file == _env_file(loaded):
            raise FileRefused("is the env_file: it holds credentials, not a template")
        return str(folder / source.file), read_text(file)
    except FileRefused as exc:
        loaded.problem(
            (*path, "file"),
            f"template file {source.file} {exc}; check the path (relative to the YAML)",
        )
        return str(folder / source.file), None


def _env_file(loaded: LoadedFile) -> FsPath | None:
    """Where the provider's `env_file` is, when it names one inside the folder."""
    if loaded.spec is None or loaded.spec.env_file is None:
        return None
    try:
        return inside_folder(loaded.path.parent, loaded.spec.env_file)
    except FileRefused:
        return None  # reported where the env_file is read


def _first_line(loaded: LoadedFile, path: Path) -> int:
    """The file line of an inline template's first line: after `|` or `>`, the next one."""
    assert loaded.source is not None
    line, column = loaded.source.locate(path)
    try:
        text = loaded.source.text.splitlines()[line - 1]
    except IndexError:
        return line + 1
    return line + 1 if text[column - 1 : column] in ("|", ">") else line


@functools.lru_cache(maxsize=64)
def _compile_cached(
    text: str,
    name: str,
    kind: str,
    trusted: bool,
    where: str,
    line_offset: int,
    limits: LimitsSpec,
) -> tuple[CompiledTemplate | None, list[TemplateProblem]]:
    # Built-in dialect templates are shared by many providers: compile each once.
    return compile_template(
        text, name, kind, trusted=trusted, where=where, line_offset=line_offset, limits=limits
    )
