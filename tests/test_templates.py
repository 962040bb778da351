"""The template sandbox: plain data in, JSON out, nothing else reachable."""

from __future__ import annotations

import json

import pytest

from multiport.errors import TemplateRenderError
from multiport.templates import compile_template


def test_render_to_json() -> None:
    template, problems = compile_template('{"a": {{ request.user | tojson }}}', "t", "request")
    assert problems == []
    assert template is not None
    body = template.render_body(request={"user": "<&>"}, options={}, model="m")
    assert json.loads(body) == {"a": "<&>"}


def test_runtime_attribute_escape_is_blocked() -> None:
    # `attr` reaches attributes by a computed name, which no static check can see.
    source = '{"x": {{ (request | attr("__cla" ~ "ss__")) | string | tojson }}}'
    template, problems = compile_template(source, "t", "request")
    assert problems == []
    assert template is not None
    with pytest.raises(TemplateRenderError, match="template t failed"):
        template.render(request={}, options={}, model="m")


def test_immutable_sandbox_refuses_mutation() -> None:
    template, _ = compile_template('{% set l = [] %}{{ l.append(1) }}{"a": 1}', "t", "request")
    assert template is not None
    with pytest.raises(TemplateRenderError):
        template.render(request={}, options={}, model="m")


def test_undefined_is_an_error_naming_the_attribute_and_the_file_line() -> None:
    source = '{"a": 1,\n"b": {{ request.tool_choice.nope }}}'
    template, _ = compile_template(source, "t", "request", where="p.yaml", line_offset=10)
    assert template is not None
    with pytest.raises(TemplateRenderError, match=r"failed at p\.yaml:12: .*'nope'"):
        template.render(request={"tool_choice": {}}, options={}, model="m")


def test_a_misspelt_field_of_request_or_options_is_found_without_rendering() -> None:
    source = '{"a": {{ request.sytem | tojson }},\n"b": {{ options.join_txt | tojson }}}'
    _, problems = compile_template(source, "t", "request")
    assert [(p.line, p.message.split(",")[0]) for p in problems] == [
        (1, "template reads `request.sytem`"),
        (2, "template reads `options.join_txt`"),
    ]


def test_stream_template_cannot_see_request_only_names() -> None:
    _, problems = compile_template("{{ response }}", "t", "stream")
    assert problems
    assert "cannot see" in problems[0].message


def test_builtin_methods_are_called_as_jinja_calls_them() -> None:
    # The context's short way for builtin methods: positional and keyword arguments, in a
    # loop too (where Jinja adds its own `_loop_vars`).
    source = (
        '{"a": {{ request.get("x") | tojson }}, "b": {{ request.get("y", 2) | tojson }}, '
        '"c": {{ "a-b".split(sep="-") | tojson }}, '
        '"d": [{% for k in ["x", "z"] %}{{ request.get(k, 0) }}{{ "," if not loop.last }}'
        "{% endfor %}]}"
    )
    template, problems = compile_template(source, "t", "request")
    assert template is not None, problems
    body = template.render_body(request={"x": 1}, options={}, model="m")
    assert json.loads(body) == {"a": 1, "b": 2, "c": ["a", "b"], "d": [1, 0]}
