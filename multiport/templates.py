"""One sandboxed Jinja environment; templates render JSON from plain data only.

Provider templates may come from anywhere, so they run in Jinja's immutable sandbox with
strict undefined variables, see only the names in `TEMPLATE_VARIABLES`, and may not touch
attributes whose names start with an underscore.
"""

from __future__ import annotations

import functools
import re
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jinja2
import msgspec
from jinja2.sandbox import safe_range
from jinja2.utils import internalcode

from .contracts import RenderedAnswer, StreamEvent
from .errors import TemplateInputError, TemplateRenderError
from .limits_spec import LimitsSpec
from .render_budget import RenderLimitError, RenderOverrun, run_bounded
from .sandbox import BoundedEnvironment, bind, bounded_filters, join_output, text
from .template_checks import TEMPLATE_VARIABLES, TemplateProblem, static_problems

__all__ = [
    "CONTRACTS",
    "TEMPLATE_VARIABLES",
    "CompiledTemplate",
    "TemplateProblem",
    "compile_template",
]

# What each kind of template renders; output is decoded into it strictly.
CONTRACTS: dict[str, Any] = {
    # The body is sent as rendered: only checked to be a JSON object, not rebuilt.
    "request": dict[str, msgspec.Raw],
    "response": RenderedAnswer,
    "stream": StreamEvent | None,
}
_CONTRACT_NAMES = {"request": "request body", "response": "answer", "stream": "stream event"}
_DECODERS = {kind: msgspec.json.Decoder(contract) for kind, contract in CONTRACTS.items()}
_FIELDS = {
    "response": ", ".join(RenderedAnswer.__struct_fields__),
    "stream": ", ".join(StreamEvent.__struct_fields__),
}


_BUILTIN_METHOD = types.BuiltinMethodType


class _Context(jinja2.runtime.Context):
    """Jinja's context, with a short way to call a builtin method such as `chunk.get`."""

    @internalcode
    def call(__self, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        if type(__obj) is not _BUILTIN_METHOD:
            return super().call(__obj, *args, **kwargs)
        # A builtin method cannot carry Jinja's `pass_context` marks, and looking for them
        # was a third of a stream chunk's render. The rest is Jinja's own call, unchanged;
        # the sandbox has checked the callable before it comes here.
        if kwargs:
            kwargs.pop("_block_vars", None)
            kwargs.pop("_loop_vars", None)
        try:
            return __obj(*args, **kwargs)
        except StopIteration:
            return __self.environment.undefined(
                "value was undefined because a callable raised a StopIteration exception"
            )


def _make_environment(kind: type[jinja2.Environment]) -> jinja2.Environment:
    env = kind(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        auto_reload=False,
        cache_size=0,
        finalize=text,
    )
    env.concat = join_output  # type: ignore[method-assign]
    env.context_class = _Context
    env.filters.update(bounded_filters())
    del env.filters["pprint"]
    env.globals.clear()
    env.globals.update(
        {
            "range": safe_range,
            "dict": dict,
            "joiner": jinja2.utils.Joiner,
            "namespace": jinja2.utils.Namespace,
        }
    )
    return env


_ENV = _make_environment(BoundedEnvironment)
# The built-in dialects' templates ship with the package; they skip the sandbox's per-call
# checks, which cost about half of a stream's CPU. They pass the same static checks and keep
# the capped range, the time budget and the bounded output, joins and filters.
_TRUSTED_ENV = _make_environment(jinja2.Environment)


@dataclass(frozen=True)
class CompiledTemplate:
    """A template compiled once at load time, rendered per request."""

    name: str
    kind: str
    template: jinja2.Template
    decoder: msgspec.json.Decoder[Any] = field(repr=False)
    where: str = ""  # the file that holds the template
    line_offset: int = 0  # its first line's number in that file, less one
    seconds: float = LimitsSpec().render_seconds  # limits.render_seconds
    limit: int = LimitsSpec().render_bytes  # limits.render_bytes

    def render_body(self, **context: Any) -> bytes:
        """A request template's output, checked to be a JSON object, as the bytes to send."""
        text = self._text(self._parent(context))
        self._decode(text)
        return text.encode()

    def render(self, **context: Any) -> Any:
        """Render and decode into the kind's contract; every failure names template and line.

        A request template's failure is the gateway's (500). A response or stream template
        that cannot read what the upstream sent raises `TemplateInputError`, for the caller
        to report as the upstream's fault; output that breaks the contract is the
        template's fault (500), whatever the input.
        """
        return self._decode(self._text(self._parent(context)))

    def renderer(self, name: str, **context: Any) -> Callable[[Any], Any]:
        """`render` with all the context but `name` fixed: one call per stream chunk, the
        rest of the context (request, options, model) merged once per request."""
        base = self._parent(context)

        def render(value: Any) -> Any:
            parent = base.copy()
            parent[name] = value
            return self._decode(self._text(parent))

        return render

    def _parent(self, context: dict[str, Any]) -> dict[str, Any]:
        return {**self.template.globals, **context}

    def _run(self, parent: dict[str, Any]) -> str:
        """`Template.render`, given the variables merged with the template's globals."""
        template = self.template
        env = template.environment
        ctx = env.context_class(env, parent, template.name, template.blocks, template.globals)
        try:
            return env.concat(template.root_render_func(ctx))
        except Exception:
            env.handle_exception()  # names the template's line, as Template.render does

    def _text(self, parent: dict[str, Any]) -> str:
        try:
            return run_bounded(functools.partial(self._run, parent), self.seconds, self.limit)
        except RenderOverrun as exc:
            raise TemplateRenderError(
                f"the {self.kind} template {self.name} ran longer than {self.seconds:g} s "
                f"(stopped at {self._place(exc)}); `limits.render_seconds` bounds one "
                "render: look for a loop that runs too long"
            ) from None
        except Exception as exc:
            message = f"template {self.name} failed at {self._place(exc)}: {_one_line(exc)}"
            if self.kind == "request" or isinstance(exc, RenderLimitError):
                raise TemplateRenderError(message) from None
            raise TemplateInputError(message) from None

    def _place(self, exc: BaseException) -> str:
        line = _error_line(exc, self.name)
        if isinstance(exc, RenderOverrun) and isinstance(line, int):
            # Raised from outside: its traceback holds the compiled code's lines.
            line = self.template.get_corresponding_lineno(line)
        if isinstance(line, int):
            line += self.line_offset
        return f"{self.where or self.name}:{line}"

    def _decode(self, text: str) -> Any:
        try:
            return self.decoder.decode(text)
        except msgspec.ValidationError as exc:
            # A key is the template's own text: a key the contract lacks is its fault. A
            # value of the wrong type came from the upstream's data, unless this renders
            # the request.
            unknown = "unknown field" in str(exc)
            top_level = unknown and " - at " not in str(exc)
            hint = f"; its fields are {_FIELDS[self.kind]}" if top_level else ""
            message = f"template {self.name} rendered an invalid {_CONTRACT_NAMES[self.kind]}: {exc}{hint}"
            if unknown or self.kind == "request":
                raise TemplateRenderError(message) from None
            raise TemplateInputError(message) from None
        except (msgspec.DecodeError, RecursionError) as exc:
            raise TemplateRenderError(
                f"template {self.name} rendered invalid JSON ({_one_line(exc)}): "
                f"{_bad_spot(text, str(exc))}"
            ) from None


def compile_template(
    source: str,
    name: str,
    kind: str,
    *,
    trusted: bool = False,
    where: str = "",
    line_offset: int = 0,
    limits: LimitsSpec | None = None,
) -> tuple[CompiledTemplate | None, list[TemplateProblem]]:
    """Parse and check a template without rendering it; its renders keep `limits`."""
    try:
        tree = _ENV.parse(source, name=name)
    except jinja2.TemplateSyntaxError as exc:
        return None, [TemplateProblem(exc.lineno or 1, f"template syntax error: {exc.message}")]
    problems = static_problems(tree, kind, frozenset(_ENV.globals))
    if problems:
        return None, problems
    env = _TRUSTED_ENV if trusted else _ENV
    code = env.compile(tree, name=name, filename=name)  # the tree parsed above, not again
    # The globals as a plain dict (they never change after start): Jinja's ChainMap of them
    # was copied into a set for every render.
    template = bind(env.template_class.from_code(env, code, dict(env.globals), None))
    limits = limits or LimitsSpec()
    compiled = CompiledTemplate(
        name,
        kind,
        template,
        _DECODERS[kind],
        where,
        line_offset,
        limits.render_seconds,
        limits.render_bytes,
    )
    return compiled, []


_BYTE = re.compile(r"\(byte (\d+)\)")


def _bad_spot(text: str, error: str) -> str:
    """The rendered text around where the JSON breaks, the spot marked with ⟪here⟫."""
    found = _BYTE.search(error)
    if found is None:
        return repr(text[:400])
    at = len(text.encode()[: int(found.group(1))].decode(errors="ignore"))
    line = text.count("\n", 0, at) + 1
    return (
        f"line {line} of the output: {text[max(0, at - 80) : at]!r} ⟪here⟫ {text[at : at + 40]!r}"
    )


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:2000]  # scrubbed, then cut shorter, where it leaves


def _error_line(exc: BaseException, name: str) -> int | str:
    lineno = getattr(exc, "lineno", None)
    if lineno:
        return int(lineno)
    tb = exc.__traceback__
    line: int | str = "?"
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == name:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line
