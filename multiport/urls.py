"""Upstream URLs as templates: the model or the mode in the path, each value kept in its place.

`wire.path` and `wire.stream_path` may use `{{ model }}` (the upstream model) and
`{{ stream }}`. Every value a template inserts is percent-encoded whole (`/`, `?`, `#`
and `@` included), so a model name can neither change the host nor leave its path
segment; a value that is `.` or `..` is refused. `{{ model | segments }}` keeps the
`/` between segments for APIs whose model ids are paths (`@cf/meta/llama-3.1-8b`), each
segment encoded and none of them a dot segment. The file's own text is kept as written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .template_checks import TemplateProblem, static_problems

__all__ = ["HeaderTemplate", "UnsafeUrlValue", "UrlTemplate", "compile_header", "compile_url"]


class UnsafeUrlValue(ValueError):
    """A value that would leave its place in the URL (`.` or `..` as a path segment)."""


class _Segments(str):
    """A value already encoded segment by segment: kept as is."""

    __slots__ = ()


def _segment(text: str) -> str:
    if text in (".", ".."):
        # Clients and servers resolve dot segments: the value would leave its place.
        raise UnsafeUrlValue(f"{text!r} cannot be a segment of the upstream URL")
    return quote(text, safe="")


def _encode(value: Any) -> str:
    if isinstance(value, _Segments):
        return str(value)
    return _segment("true" if value is True else "false" if value is False else str(value))


def _segments(value: Any) -> _Segments:
    return _Segments("/".join(_segment(part) for part in str(value).split("/")))


class _ValueEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox of URL and header templates: values and a few filters, no arithmetic.

    These templates insert a model name or a request id; an operator or a growing filter
    could only be used to build something huge (or, folded by Jinja's optimizer, build it
    while the file loads), so none is allowed.
    """

    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})
    intercepted_unops = frozenset({"+", "-"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        raise SecurityError(f"the operator `{operator}` is not allowed in URL and header templates")

    def call_unop(self, context: Any, operator: str, arg: Any) -> Any:
        raise SecurityError(f"the operator `{operator}` is not allowed in URL and header templates")


_FILTERS = ("default", "lower", "upper", "trim", "string", "urlencode", "truncate")


def _value_environment(finalize: Any) -> jinja2.Environment:
    env = _ValueEnvironment(
        undefined=jinja2.StrictUndefined, autoescape=False, finalize=finalize, cache_size=0
    )
    env.globals.clear()
    env.filters = {name: env.filters[name] for name in _FILTERS}
    return env


_ENV = _value_environment(_encode)
_ENV.filters["segments"] = _segments


def _one_line(value: Any) -> str:
    # A header value is one line: a value with a line break could smuggle in a header.
    return str(value).replace("\r", " ").replace("\n", " ")


_HEADER_ENV = _value_environment(_one_line)


@dataclass(frozen=True)
class HeaderTemplate:
    """A header value rendered per request from `request_id` and `model`."""

    template: jinja2.Template

    def value(self, request_id: str, model: str) -> str:
        return self.template.render(request_id=request_id, model=model)


def _compile(
    env: jinja2.Environment, source: str, kind: str
) -> tuple[jinja2.Template | None, list[TemplateProblem]]:
    """Parse once, check, and compile the parsed tree."""
    try:
        tree = env.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        return None, [TemplateProblem(exc.lineno or 1, f"template syntax error: {exc.message}")]
    problems = static_problems(tree, kind, frozenset())
    for node in tree.find_all((nodes.BinExpr, nodes.UnaryExpr)):
        operator = getattr(node, "operator", "")
        if operator in _ValueEnvironment.intercepted_binops:
            problems.append(
                TemplateProblem(node.lineno, f"the operator `{operator}` is not allowed here")
            )
    if problems:
        return None, problems
    try:
        code = env.compile(tree)
    except jinja2.TemplateSyntaxError as exc:  # an unknown filter, say
        return None, [TemplateProblem(exc.lineno or 1, f"template error: {exc.message}")]
    return env.template_class.from_code(env, code, env.make_globals(None), None), []


def compile_header(value: str) -> tuple[HeaderTemplate | None, list[TemplateProblem]]:
    """Compile a header value that holds a template."""
    template, problems = _compile(_HEADER_ENV, value, "header")
    return (HeaderTemplate(template) if template is not None else None), problems


@dataclass(frozen=True)
class UrlTemplate:
    """A base URL and a path, fixed or rendered per request."""

    base: str
    fixed: str | None  # the whole URL when the path holds no template
    template: jinja2.Template | None

    def url(self, model: str, stream: bool) -> str:
        if self.fixed is not None:
            return self.fixed
        assert self.template is not None
        return self.base + self.template.render(model=model, stream=stream)


def compile_url(base: str, path: str) -> tuple[UrlTemplate | None, list[TemplateProblem]]:
    """Compile `path` (appended to `base`); problems carry their line in the path."""
    if not path.startswith(("/", "?")):
        # Appended to a base_url without a path, `@evil.example/…`, `.evil.example/…` or a
        # leading `{{ model }}` would change the host the provider's auth is sent to.
        return None, [TemplateProblem(1, "the path must start with `/` (or `?`)")]
    if "{{" not in path and "{%" not in path:
        return UrlTemplate(base, base + path, None), []
    template, problems = _compile(_ENV, path, "url")
    if template is None:
        return None, problems
    compiled = UrlTemplate(base, None, template)
    try:
        compiled.url("sample-model", True)
    except jinja2.TemplateError as exc:
        return None, [TemplateProblem(1, f"the path cannot be rendered: {exc}")]
    return compiled, []
