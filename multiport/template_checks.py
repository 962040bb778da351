"""Static checks of a template, made once at load time without rendering it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import msgspec.inspect as mi
from jinja2 import nodes

from .contracts import NeutralRequest, RenderedAnswer, StreamEvent
from .options import OptionsSpec

__all__ = ["TEMPLATE_VARIABLES", "TemplateProblem", "static_problems"]

# What each kind of template may read; nothing else is in scope.
TEMPLATE_VARIABLES: dict[str, frozenset[str]] = {
    "request": frozenset({"request", "options", "model"}),
    "response": frozenset({"response", "request", "options", "model"}),
    "stream": frozenset({"chunk", "request", "options", "model"}),
    "url": frozenset({"model", "stream"}),
    "header": frozenset({"request_id", "model"}),
}
_BUILTIN_NAMES = frozenset({"loop", "caller", "varargs", "kwargs", "true", "false", "none"})
# A key written as literal output text: `"name":`.
_LITERAL_KEY = re.compile(r'"([A-Za-z_][A-Za-z0-9_]*)"\s*:')


@dataclass(frozen=True)
class TemplateProblem:
    """A problem found while compiling a template; `line` is 1-based in the template."""

    line: int
    message: str


def _keys(info: mi.Type, into: set[str]) -> set[str]:
    while isinstance(info, mi.Metadata):
        info = info.type
    if isinstance(info, mi.UnionType):
        for member in info.types:
            _keys(member, into)
    elif isinstance(info, mi.ListType):
        _keys(info.item_type, into)
    elif isinstance(info, mi.StructType):
        if info.tag_field:
            into.add(info.tag_field)
        for field in info.fields:
            into.add(field.encode_name)
            _keys(field.type, into)
    return into


# Every key an output may hold, at any depth: a literal key outside these is a typo.
_OUTPUT_KEYS = {
    "response": frozenset(_keys(mi.type_info(RenderedAnswer), set())),
    "stream": frozenset(_keys(mi.type_info(StreamEvent), set())),
}


# What `request.<name>` and `options.<name>` may read (as attributes or by `.get`).
_FIELDS = {
    "request": frozenset(NeutralRequest.__struct_fields__),
    "options": frozenset(OptionsSpec.__struct_fields__),
}
_DICT_METHODS = frozenset({"get", "items", "keys", "values"})


def static_problems(
    tree: nodes.Template, kind: str, globals_: frozenset[str]
) -> list[TemplateProblem]:
    """Names the template cannot see, `_` attributes, misspelt fields of `request` and
    `options`, and output keys no contract has."""
    return [
        *_unknown_names(tree, kind, globals_),
        *_private_attributes(tree),
        *_unknown_fields(tree),
        *_output_keys(tree, kind),
    ]


def _unknown_fields(tree: nodes.Template) -> list[TemplateProblem]:
    """`request.sytem`: a field the neutral request (or the options) does not have."""
    problems = []
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        owner = getattr(node, "node", None)
        if not (isinstance(owner, nodes.Name) and owner.ctx == "load" and owner.name in _FIELDS):
            continue
        attr = node.attr if isinstance(node, nodes.Getattr) else _const(getattr(node, "arg", None))
        known = _FIELDS[owner.name]
        if isinstance(attr, str) and attr not in known and attr not in _DICT_METHODS:
            problems.append(
                TemplateProblem(
                    node.lineno,
                    f"template reads `{owner.name}.{attr}`, which `{owner.name}` does not "
                    f"have; its fields are {', '.join(sorted(known))}",
                )
            )
    return problems


def _unknown_names(
    tree: nodes.Template, kind: str, globals_: frozenset[str]
) -> list[TemplateProblem]:
    allowed = TEMPLATE_VARIABLES[kind]
    names = list(tree.find_all(nodes.Name))
    assigned = {n.name for n in names if n.ctx in ("store", "param")}
    assigned |= {m.name for m in tree.find_all(nodes.Macro)}
    loaded = {n.name for n in names if n.ctx == "load"}
    return [
        TemplateProblem(
            _first_use(tree, variable),
            f"template uses `{variable}`, which it cannot see; a {kind} template sees "
            f"only {', '.join(sorted(allowed))}",
        )
        for variable in sorted(loaded - assigned - allowed - _BUILTIN_NAMES - globals_)
    ]


def _private_attributes(tree: nodes.Template) -> list[TemplateProblem]:
    problems = []
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        attr = node.attr if isinstance(node, nodes.Getattr) else _const(getattr(node, "arg", None))
        if isinstance(attr, str) and attr.startswith("_"):
            problems.append(
                TemplateProblem(
                    node.lineno,
                    f"template reaches for `{attr}`; names starting with `_` are not "
                    "allowed in templates",
                )
            )
    return problems


def _output_keys(tree: nodes.Template, kind: str) -> list[TemplateProblem]:
    """Keys written literally in the output that the kind's contract does not have.

    Every branch is checked, also those no sample answer reaches.
    """
    known = _OUTPUT_KEYS.get(kind)
    if known is None:
        return []  # a request body is the upstream's format
    problems = []
    for data in tree.find_all(nodes.TemplateData):
        for match in _LITERAL_KEY.finditer(data.data):
            key = match.group(1)
            if key not in known:
                line = data.lineno + data.data.count("\n", 0, match.start())
                problems.append(
                    TemplateProblem(
                        line,
                        f"template writes the key `{key}`, which no field of a {kind} "
                        f"template's output has; its keys are {', '.join(sorted(known))}",
                    )
                )
    return problems


def _const(node: nodes.Node | None) -> Any:
    return node.value if isinstance(node, nodes.Const) else None


def _first_use(tree: nodes.Template, variable: str) -> int:
    for node in tree.find_all(nodes.Name):
        if node.name == variable:
            return int(node.lineno)
    return 1
