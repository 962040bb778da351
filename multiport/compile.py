"""Specs → runtime providers: regexes, JSONPaths and templates compiled once; no network.

`validate` and `serve` both call `load_providers`, so what validates is what serves.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path as FsPath
from typing import Any
from urllib.parse import urlsplit

import msgspec
import yaml
from jsonpath_ng.ext import parse as parse_jsonpath  # type: ignore[attr-defined]

from ._yamlsource import Path
from .anthropic_wire import decode_messages
from .errors import ApiError, Problem
from .loader import LoadedFile, find_provider_files, load_file
from .mapping import Rule
from .normalize import build_neutral
from .spec import CatalogSpec, ProviderSpec, TemplateFile, WireSpec
from .templates import CompiledTemplate, TemplateProblem, compile_template

__all__ = ["DIALECTS", "CatalogPaths", "LoadResult", "Provider", "Wire", "load_providers"]

_DIALECT_DIR = resources.files("multiport") / "dialects"
_SAMPLE_DIR = resources.files("multiport") / "samples"
DIALECTS = tuple(
    sorted(p.name.removesuffix(".yaml") for p in _DIALECT_DIR.iterdir() if p.name.endswith(".yaml"))
)


@dataclass(frozen=True)
class Wire:
    """A compiled wire format."""

    dialect: str
    path: str
    framing: str
    passthrough: bool
    request: CompiledTemplate | None
    response: CompiledTemplate | None
    stream: CompiledTemplate | None


@dataclass(frozen=True)
class CatalogPaths:
    """Compiled catalog JSONPaths."""

    spec: CatalogSpec
    url: str
    items: Any
    id: Any
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class Provider:
    """Everything the engine needs for one provider, compiled."""

    name: str
    file: str
    spec: ProviderSpec
    base_url: str
    messages_url: str
    rules: tuple[Rule, ...]
    wire: Wire
    catalog: CatalogPaths | None
    strip_keys: frozenset[str]
    completion_tokens_models: re.Pattern[str] | None
    output_limits: tuple[tuple[re.Pattern[str], int], ...]
    upstream_headers: Mapping[str, str]
    missing_credentials: tuple[str, ...]
    secrets: tuple[str, ...]

    def max_tokens_field(self, model: str) -> str:
        pattern = self.completion_tokens_models
        if pattern is not None and pattern.search(model):
            return "max_completion_tokens"
        return self.spec.options.max_tokens_field

    def output_limit(self, model: str, catalog_limit: int | None) -> int | None:
        """The output token limit of `model`: the catalog's, else the options'."""
        if catalog_limit:
            return catalog_limit
        for pattern, limit in self.output_limits:
            if pattern.search(model):
                return limit
        return self.spec.options.max_output_tokens


@dataclass
class LoadResult:
    """Providers that compiled, and every problem found on the way."""

    providers: list[Provider]
    problems: list[Problem]
    files: list[LoadedFile]

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


def load_providers(
    paths: list[str], environ: Mapping[str, str] | None = None, *, strict_env: bool = False
) -> LoadResult:
    """Load, compile and cross-check every provider file under `paths`."""
    files, problems = find_provider_files(paths)
    result = LoadResult([], problems, [])
    for path in files:
        loaded = load_file(path, environ)
        result.files.append(loaded)
        provider = _compile(loaded, strict_env) if loaded.spec is not None else None
        result.problems.extend(loaded.problems)
        if provider is not None and not any(p.severity == "error" for p in loaded.problems):
            result.providers.append(provider)
    _cross_check(result)
    return result


def _cross_check(result: LoadResult) -> None:
    names: dict[str, LoadedFile] = {}
    ports: dict[int, LoadedFile] = {}
    for loaded in result.files:
        spec = loaded.spec
        if spec is None:
            continue
        first = names.setdefault(loaded.name, loaded)
        if first is not loaded:
            result.problems.append(
                loaded.problem(
                    ("name",),
                    f"provider name `{loaded.name}` is already used by {first.path}; give each provider its own name",
                )
            )
        holder = ports.setdefault(spec.port, loaded)
        if holder is not loaded:
            result.problems.append(
                loaded.problem(
                    ("port",),
                    f"port {spec.port} is already used by {holder.path} ({holder.name}); choose a free port",
                )
            )
    bad = {p.file for p in result.errors}
    result.providers = [p for p in result.providers if p.file not in bad]


def _check_url(loaded: LoadedFile, path: Path, url: str, what: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        shown = url if url else "(empty)"
        hint = ""
        if loaded.missing_env.get(path):
            hint = f"; set {', '.join(loaded.missing_env[path])} or give a default with ${{VAR:-default}}"
        loaded.problem(path, f"{what} must be an http:// or https:// URL, got {shown!r}{hint}")
        return False
    return True


def _compile(loaded: LoadedFile, strict_env: bool) -> Provider | None:
    spec = loaded.spec
    assert spec is not None
    for path, names in loaded.missing_env.items():
        loaded.problem(
            path,
            f"environment variable {', '.join(names)} is not set; export it, put it in an env_file, or write ${{VAR:-default}}",
            severity="error" if strict_env else "warning",
        )
    base_ok = _check_url(loaded, ("base_url",), spec.base_url, "base_url")
    rules = _rules(loaded, spec)
    wire = _wire(loaded, spec)
    catalog = _catalog(loaded, spec)
    completion = None
    if spec.options.max_completion_tokens_models:
        completion = _regex(
            loaded,
            ("options", "max_completion_tokens_models"),
            spec.options.max_completion_tokens_models,
        )
    limits = []
    for pattern_text, limit in spec.options.output_limits.items():
        pattern = _regex(loaded, ("options", "output_limits", pattern_text), pattern_text)
        if pattern is not None:
            limits.append((pattern, limit))
    secret_paths = [p for p in loaded.used_env if p[:1] in (("auth",), ("headers",))]
    # What came from a variable in an auth or header value is a secret, defaults included;
    # so is each word of the auth value ("Bearer sk-…").
    schemes = {"bearer", "basic", "token"}
    words = [w for w in (spec.auth.value or "").split() if w.lower() not in schemes]
    secrets = tuple(
        sorted(
            {
                value
                for value in [
                    *words,
                    *(loaded.env.get(n, "") for p in secret_paths for n in loaded.used_env[p]),
                ]
                if len(value) >= 6
            },
            key=len,
            reverse=True,
        )
    )
    missing = tuple(name for path in secret_paths for name in loaded.missing_env.get(path, []))
    headers = dict(spec.headers)
    if spec.auth.value and not missing:
        headers[spec.auth.header] = spec.auth.value
    if wire is not None and wire.request is not None:
        _render_samples(loaded, spec, wire, rules)
    if not base_ok or wire is None or any(p.severity == "error" for p in loaded.problems):
        return None
    base = spec.base_url.rstrip("/")
    return Provider(
        name=loaded.name,
        file=str(loaded.path),
        spec=spec,
        base_url=base,
        messages_url=base + wire.path,
        rules=tuple(rules),
        wire=wire,
        catalog=catalog,
        strip_keys=frozenset(spec.options.strip_schema_keys),
        completion_tokens_models=completion,
        output_limits=tuple(limits),
        upstream_headers=headers,
        missing_credentials=missing,
        secrets=secrets,
    )


def _regex(loaded: LoadedFile, path: Path, pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error as exc:
        loaded.problem(
            path,
            f"invalid regex {pattern!r}: {exc.msg} at position {exc.pos}; fix the pattern (Python `re` syntax)",
        )
        return None


def _rules(loaded: LoadedFile, spec: ProviderSpec) -> list[Rule]:
    rules = []
    for i, mapping in enumerate(spec.mappings):
        pattern = _regex(loaded, ("mappings", i, "match"), mapping.match)
        targets = (mapping.target,) if isinstance(mapping.target, str) else tuple(mapping.target)
        if not targets or not all(targets):
            loaded.problem(("mappings", i, "target"), "target must name at least one model")
            continue
        if pattern is None:
            continue
        for target in targets:
            groups = [int(g) for g in re.findall(r"\\(\d+)", target)]
            if any(g > pattern.groups for g in groups):
                loaded.problem(
                    ("mappings", i, "target"),
                    f"target {target!r} refers to group \\{max(groups)} but the regex has {pattern.groups} group(s)",
                )
        rules.append(Rule(i, pattern, targets))
    return rules


def _jsonpath(loaded: LoadedFile, path: Path, expression: str) -> Any:
    try:
        return parse_jsonpath(expression)
    except Exception as exc:  # jsonpath-ng raises bare Exception subclasses of its own
        loaded.problem(path, f"invalid JSONPath {expression!r}: {exc}; e.g. `$.data[*]` or `id`")
        return None


def _catalog(loaded: LoadedFile, spec: ProviderSpec) -> CatalogPaths | None:
    catalog = spec.catalog
    if catalog is None:
        return None
    url = catalog.url or "/models"
    if url.startswith("/"):
        url = spec.base_url.rstrip("/") + url
    else:
        _check_url(loaded, ("catalog", "url"), url, "catalog.url")
    items = _jsonpath(loaded, ("catalog", "items"), catalog.items)
    id_path = _jsonpath(loaded, ("catalog", "id"), catalog.id)
    fields = {}
    for name in catalog.fields.__struct_fields__:
        expression = getattr(catalog.fields, name)
        if expression is not None:
            fields[name] = _jsonpath(loaded, ("catalog", "fields", name), expression)
    if items is None or id_path is None or None in fields.values():
        return None
    return CatalogPaths(catalog, url, items, id_path, fields)


def _read_dialect(name: str) -> WireSpec:
    text = (_DIALECT_DIR / f"{name}.yaml").read_text(encoding="utf-8")
    return msgspec.convert(yaml.safe_load(text), WireSpec)


def _wire(loaded: LoadedFile, spec: ProviderSpec) -> Wire | None:
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
        templates[kind] = _template(loaded, ("wire", kind), source, kind, relative_to)
        if source is None and not passthrough:
            loaded.problem(
                ("wire",),
                f"wire needs a {kind} template, or a dialect ({', '.join(DIALECTS)}) that has one",
            )
    path = own.path or base.path
    if not path:
        loaded.problem(("wire",), "wire needs a path, e.g. `path: /chat/completions`, or a dialect")
        return None
    framing = own.framing or base.framing or "sse"
    if any(p.severity == "error" for p in loaded.problems if p.path.startswith("$.wire")):
        return None
    return Wire(
        own.dialect or "custom",
        path,
        framing,
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
) -> CompiledTemplate | None:
    if source is None:
        return None
    name = f"{loaded.name}:{kind}"
    text = source
    line_offset = 0
    if isinstance(source, TemplateFile):
        file = relative_to / source.file
        name = str(file) if relative_to == loaded.path.parent else f"dialect {source.file}"
        try:
            text = file.read_text(encoding="utf-8")
        except OSError:
            loaded.problem(
                (*path, "file"),
                f"template file {file} cannot be read; check the path (relative to the YAML)",
            )
            return None
    elif loaded.source is not None:
        # An inline block scalar starts on the line after its key.
        line_offset = loaded.source.locate(path)[0]
    trusted = isinstance(source, TemplateFile) and relative_to != loaded.path.parent
    compiled, problems = _compile_cached(text, name, kind, trusted)
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


@functools.lru_cache(maxsize=64)
def _compile_cached(
    text: str, name: str, kind: str, trusted: bool
) -> tuple[CompiledTemplate | None, list[TemplateProblem]]:
    # Built-in dialect templates are shared by many providers: compile each once.
    return compile_template(text, name, kind, trusted=trusted)


def sample_requests() -> dict[str, bytes]:
    """The sample Anthropic requests shipped with the package, by name."""
    return {
        p.name: p.read_bytes()
        for p in sorted(_SAMPLE_DIR.iterdir(), key=lambda p: p.name)
        if p.name.endswith(".json")
    }


def _render_samples(loaded: LoadedFile, spec: ProviderSpec, wire: Wire, rules: list[Rule]) -> None:
    template = wire.request
    assert template is not None
    options = msgspec.to_builtins(spec.options)
    for sample, body in sample_requests().items():
        request = decode_messages(body)
        for stream in (False, True):
            request.stream = stream
            try:
                neutral = build_neutral(
                    request,
                    target="sample-model",
                    options=spec.options,
                    strip_keys=frozenset(spec.options.strip_schema_keys),
                    max_tokens_field=spec.options.max_tokens_field,
                    output_limit=None,
                )
                rendered = template.render(
                    request=neutral.data, options=options, model="sample-model"
                )
            except ApiError as exc:
                loaded.problem(("wire", "request"), f"{exc.message} (sample request {sample})")
                return
            if not isinstance(rendered, dict):
                loaded.problem(
                    ("wire", "request"),
                    f"template {template.name} must render a JSON object, got {type(rendered).__name__} (sample request {sample})",
                )
                return
