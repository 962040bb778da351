"""Specs → runtime providers: regexes, JSONPaths and templates compiled once; no network.

`validate` and `serve` both call `load_providers`, so what validates is what serves.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any
from urllib.parse import urlsplit

import msgspec

from ._yamlsource import Path
from .errors import Problem
from .file_secrets import file_secrets
from .inbound import check_access, check_defaults_access
from .jsonpaths import parse_jsonpath
from .loader import LoadedFile, find_provider_files, load_defaults, load_file
from .mapping import Rule
from .provider import CatalogPaths, Provider
from .proxies import proxy_problem
from .regex import Regex, RegexError, Template, compile_regex, compile_template
from .rehearse import rehearse
from .routing import Router, compile_router
from .spec import ProviderSpec
from .urls import HeaderTemplate, UrlTemplate, compile_header, compile_url
from .versions import file_version
from .wire import Wire, compile_wire

__all__ = ["LoadResult", "load_providers"]


@dataclass
class LoadResult:
    """Providers that compiled, and every problem found on the way."""

    providers: list[Provider]
    problems: list[Problem]
    files: list[LoadedFile]
    routers: list[Router] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


def load_providers(
    paths: list[str], environ: Mapping[str, str] | None = None, *, strict_env: bool = False
) -> LoadResult:
    """Load, compile and cross-check every provider file under `paths`."""
    files, problems = find_provider_files(paths)
    result = LoadResult([], problems, [])
    defaults = _folder_defaults(result, {path.parent for path in files}, environ)
    for path in files:
        loaded = load_file(path, environ, defaults.get(path.parent))
        result.files.append(loaded)
        compiled = _compile_any(loaded, strict_env) if loaded.spec is not None else None
        loaded.problems.sort(key=lambda p: (p.line, p.column))
        result.problems.extend(loaded.problems)
        if compiled is not None and not any(p.severity == "error" for p in loaded.problems):
            if isinstance(compiled, Router):
                result.routers.append(compiled)
            else:
                result.providers.append(compiled)
    _cross_check(result)
    _check_routes(result)
    return result


def _folder_defaults(
    result: LoadResult, folders: set[FsPath], environ: Mapping[str, str] | None
) -> dict[FsPath, dict[str, Any]]:
    """Each folder's `_defaults.yaml`, loaded once; its problems join the result's."""
    found: dict[FsPath, dict[str, Any]] = {}
    for folder in sorted(folders):
        loaded = load_defaults(folder, environ)
        if loaded is not None:
            check_defaults_access(loaded)
            result.problems.extend(loaded.problems)
            found[folder] = loaded.defaults
    return found


def _compile_any(loaded: LoadedFile, strict_env: bool) -> Provider | Router | None:
    spec = loaded.spec
    assert spec is not None
    check_access(loaded)
    if spec.router is None:
        return _compile(loaded, strict_env)
    for key in ("base_url", "catalog", "mappings"):
        if getattr(spec, key):
            loaded.problem((key,), f"a router has no upstream of its own: remove `{key}`")
    keys = tuple(spec.access.keys)
    return compile_router(loaded, spec.router, spec.host, spec.port, spec.limits, keys)


def _check_routes(result: LoadResult) -> None:
    """A router's candidate on a provider that is not served is skipped: say so."""
    served = {p.name for p in result.providers}
    files = {str(f.path): f for f in result.files}
    for router in result.routers:
        loaded = files[router.file]
        for rule in router.rules:
            for j, candidate in enumerate(rule.candidates):
                if candidate.provider not in served:
                    known = ", ".join(sorted(served)) or "none"
                    result.problems.append(
                        loaded.problem(
                            ("router", "rules", rule.index, "to", j),
                            f"candidate {candidate} names provider `{candidate.provider}`, "
                            f"which is not served (providers: {known}); it will be skipped",
                            severity="warning",
                        )
                    )


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
    if spec.base_url is None:
        loaded.problem((), "missing required key `base_url`: the upstream's base URL")
        return None
    base_ok = _check_url(loaded, ("base_url",), spec.base_url, "base_url")
    if isinstance(spec.proxy, str) and spec.proxy and (unusable := proxy_problem(spec.proxy)):
        loaded.problem(("proxy",), f"proxy: {unusable}")
    rules = _rules(loaded, spec)
    wire = compile_wire(loaded, spec)
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
    secrets = file_secrets(loaded, spec)
    missing = tuple(name for path in secret_paths for name in loaded.missing_env.get(path, []))
    headers: dict[str, str | None] = dict(spec.headers)
    if spec.auth.value and not missing:
        headers[spec.auth.header] = spec.auth.value
    header_templates = _header_templates(loaded, headers)
    if wire is not None and wire.request is not None:
        rehearse(loaded, spec, wire)
    base = spec.base_url.rstrip("/")
    urls = _urls(loaded, base, wire) if wire is not None else None
    if (
        not base_ok
        or urls is None
        or wire is None
        or any(p.severity == "error" for p in loaded.problems)
    ):
        return None
    return Provider(
        name=loaded.name,
        file=str(loaded.path),
        spec=spec,
        base_url=base,
        messages_url=base + wire.path,
        urls=urls[0],
        stream_urls=urls[1],
        rules=tuple(rules),
        wire=wire,
        catalog=catalog,
        strip_keys=frozenset(spec.options.strip_schema_keys),
        completion_tokens_models=completion,
        output_limits=tuple(limits),
        upstream_headers={k: v for k, v in headers.items() if k.lower() not in header_templates},
        header_templates=header_templates,
        missing_credentials=missing,
        secrets=secrets,
        template_options=msgspec.to_builtins(spec.options),
        version=file_version(loaded.path, spec),
        loaded_at=time.time(),
    )


def _header_templates(
    loaded: LoadedFile, headers: Mapping[str, str | None]
) -> dict[str, HeaderTemplate]:
    """Header values that hold a template (`{{ request_id }}`), compiled."""
    compiled = {}
    for name, value in headers.items():
        if value is None or "{{" not in value:
            continue
        template, problems = compile_header(value)
        for problem in problems:
            loaded.problem(("headers", name), problem.message)
        if template is not None:
            compiled[name.lower()] = template
    return compiled


def _urls(loaded: LoadedFile, base: str, wire: Wire) -> tuple[UrlTemplate, UrlTemplate] | None:
    plain = _url(loaded, base, "path", wire.path)
    if wire.stream_path == wire.path:
        return (plain, plain) if plain is not None else None
    streaming = _url(loaded, base, "stream_path", wire.stream_path)
    if plain is None or streaming is None:
        return None
    return plain, streaming


def _url(loaded: LoadedFile, base: str, key: str, path: str) -> UrlTemplate | None:
    url, problems = compile_url(base, path)
    for problem in problems:
        loaded.problem(("wire", key), f"{problem.message} (in {path!r})")
    return url


def _regex(loaded: LoadedFile, path: Path, pattern: str) -> Regex | None:
    try:
        return compile_regex(pattern)
    except RegexError as exc:
        loaded.problem(path, str(exc))
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
        templates = _templates(loaded, ("mappings", i, "target"), pattern, targets)
        if templates is not None:
            rules.append(Rule(i, pattern, templates))
    return rules


def _templates(
    loaded: LoadedFile, path: Path, pattern: Regex, targets: tuple[str, ...]
) -> tuple[Template, ...] | None:
    """Each target parsed for the groups it inserts; None after reporting a bad one."""
    templates = []
    for target in targets:
        try:
            templates.append(compile_template(pattern, target))
        except RegexError as exc:
            loaded.problem(path, str(exc))
            return None
    return tuple(templates)


def _jsonpath(loaded: LoadedFile, path: Path, expression: str) -> Any:
    try:
        return parse_jsonpath(expression)
    except RegexError as exc:
        loaded.problem(path, f"in JSONPath {expression!r}: {exc}")
        return None
    except Exception as exc:  # jsonpath-ng raises bare Exception subclasses of its own
        loaded.problem(path, f"invalid JSONPath {expression!r}: {exc}; e.g. `$.data[*]` or `id`")
        return None


def _catalog(loaded: LoadedFile, spec: ProviderSpec) -> CatalogPaths | None:
    catalog = spec.catalog
    if catalog is None:
        return None
    url = catalog.url
    if url is not None and url.startswith("/"):
        url = (spec.base_url or "").rstrip("/") + url
    elif url is not None:
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
