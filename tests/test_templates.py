"""The template sandbox: plain data in, JSON out, nothing else reachable."""

from __future__ import annotations

import json

import pytest

from multiport.errors import TemplateRenderError
from multiport.templates import compile_template


def test_render_to_json() -> None:
    template, problems = compile_template('{"a": {{ request.x | tojson }}}', "t", "request")
    assert problems == []
    assert template is not None
    body = template.render_body(request={"x": "<&>"}, options={}, model="m")
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


def test_undefined_is_an_error_with_a_line() -> None:
    template, _ = compile_template('{"a": 1,\n"b": {{ request.nope.deeper }}}', "t", "request")
    assert template is not None
    with pytest.raises(TemplateRenderError, match="line 2"):
        template.render(request={}, options={}, model="m")


def test_stream_template_cannot_see_request_only_names() -> None:
    _, problems = compile_template("{{ response }}", "t", "stream")
    assert problems
    assert "cannot see" in problems[0].message
