"""Templates cannot exhaust the process: size, number, time and output are bounded."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from litestar.testing import TestClient

from multiport.app import create_app
from multiport.compile import load_providers
from multiport.errors import TemplateRenderError
from multiport.limits_spec import LimitsSpec
from multiport.templates import CompiledTemplate, compile_template

from .apps import UPSTREAM, ask, provider

CONTEXT: dict[str, Any] = {"request": {}, "options": {}, "model": "m"}
NESTED = "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"


def compiled(source: str, *, trusted: bool = False, **limits: Any) -> CompiledTemplate:
    template, problems = compile_template(
        source, "t.j2", "request", trusted=trusted, limits=LimitsSpec(**limits)
    )
    assert template is not None, problems
    return template


def render_error(template: CompiledTemplate) -> str:
    with pytest.raises(TemplateRenderError) as caught:
        template.render(**CONTEXT)
    return caught.value.message


@pytest.mark.parametrize("trusted", [False, True])
def test_range_is_capped_for_provider_and_dialect_templates(trusted: bool) -> None:
    started = time.monotonic()
    message = render_error(compiled("{% for i in range(10**9) %}{% endfor %}{}", trusted=trusted))
    assert "Range too big" in message
    assert time.monotonic() - started < 1


@pytest.mark.parametrize(
    ("source", "said"),
    [
        ("{{ 9**(9**9) }}", "number of"),
        ("{{ 'x' * 10**9 }}", "repeated sequence"),
        ("{{ [1] * 10**9 }}", "repeated sequence"),
        ("{{ 'a'.ljust(10**9) }}", "padded text"),
        ("{{ 'a' | center(1000000000) }}", "centred text"),
        ("{{ '%999999999s' % 'a' }}", "formatted text"),
        ("{{ '{:>999999999}'.format('a') }}", "formatted text"),
        ("{{ range(100000) | join('x' * 10000) }}", "joined text"),
        ("{{ ('ab' * 1000) | replace('', 'x' * 100000) }}", "replaced text"),
        ("{{ [1] | batch(10**9, 0) | list }}", "batch"),
    ],
)
def test_operators_methods_and_filters_are_refused_before_they_build(
    source: str, said: str
) -> None:
    started = time.monotonic()
    message = render_error(compiled(source))
    assert said in message
    assert "t.j2:1" in message
    assert time.monotonic() - started < 1


def test_a_value_whose_print_would_be_huge_is_refused() -> None:
    tree = "{% set ns = namespace(x=[1]) %}{% for i in range(40) %}{% set ns.x = [ns.x, ns.x] %}{% endfor %}"
    for shown in ("{{ ns.x }}", "{{ ns.x | tojson }}", "{{ ns.x | string }}", "{{ 'a' ~ ns.x }}"):
        assert "printed value" in render_error(compiled(tree + shown))


def test_a_huge_constant_is_not_folded_at_compile_time() -> None:
    started = time.monotonic()
    template = compiled("{{ 'a' * 10**9 }}{{ 'b' | center(1000000000) }}")
    assert time.monotonic() - started < 0.5
    assert "repeated sequence of 1,000,000,000 bytes" in render_error(template)


def test_ordinary_arithmetic_and_strings_still_work() -> None:
    source = (
        '{"a": {{ (range(3) | list) * 2 }}, "b": {{ ("x" ~ 1) | tojson }}, "c": {{ 2**10 }},'
        ' "d": {{ ("%s-%d" % ("a", 3)) | tojson }}, "e": {{ "a,b".split(",") | tojson }},'
        ' "f": {{ ["p", "q"] | join("+") | tojson }}, "g": {{ "{}!".format(7) | tojson }}}'
    )
    assert json.loads(compiled(source).render_body(**CONTEXT)) == {
        "a": [0, 1, 2, 0, 1, 2],
        "b": "x1",
        "c": 1024,
        "d": "a-3",
        "e": ["a", "b"],
        "f": "p+q",
        "g": "7!",
    }


def test_output_over_render_bytes_is_an_error_naming_the_template() -> None:
    template = compiled(
        "{% for i in range(100) %}{{ 'x' * 1000 }}{% endfor %}", render_bytes=50_000
    )
    message = render_error(template)
    assert "t.j2" in message
    assert "output of 100,000 bytes" in message
    assert "allows 50,000" in message


def test_a_macro_that_doubles_its_input_stops_at_render_bytes() -> None:
    template = compiled(
        "{% macro twice(s) %}{{ s }}{{ s }}{% endmacro %}{% set ns = namespace(s='a') %}"
        "{% for i in range(40) %}{% set ns.s = twice(ns.s) %}{% endfor %}{}",
        render_bytes=1 << 20,
    )
    assert "allows 1,048,576" in render_error(template)


@pytest.mark.parametrize("trusted", [False, True])
def test_a_render_past_render_seconds_is_stopped(trusted: bool) -> None:
    template = compiled("{}\n" + NESTED, trusted=trusted, render_seconds=0.3)
    started = time.monotonic()
    message = render_error(template)
    assert time.monotonic() - started < 0.8
    assert "the request template t.j2 ran longer than 0.3 s (stopped at t.j2:2)" in message
    # Nothing is left pending for this thread: later code and renders run undisturbed.
    time.sleep(0.2)
    assert json.loads(compiled('{"ok": {{ 1 + 1 }}}').render_body(**CONTEXT)) == {"ok": 2}


def test_the_budget_holds_on_another_thread() -> None:
    template = compiled(NESTED, render_seconds=0.3)
    errors: list[str] = []

    def run() -> None:
        try:
            template.render(**CONTEXT)
        except TemplateRenderError as exc:
            errors.append(exc.message)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=2)
    assert not thread.is_alive()
    assert "ran longer than 0.3 s" in errors[0]


_MEMORY_PROBE = """
import resource, sys
from multiport.templates import compile_template
template, _ = compile_template(sys.argv[1], "t.j2", "request")
try:
    template.render(request={}, options={}, model="m")
    print("rendered")
except Exception as exc:
    print(type(exc).__name__)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""
_DOUBLING = (
    "{% set ns = namespace(s='a') %}{% for i in range(40) %}"
    "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{}"
)


def _peak_kib(source: str) -> tuple[str, int]:
    done = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, source],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    outcome, peak = done.stdout.split()
    return outcome, int(peak)


@pytest.mark.parametrize(
    "source",
    [
        _DOUBLING,
        "{{ 'x' * 10**9 }}",
        "{% set ns = namespace(s=['a']) %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{}",
        "{% macro d(s) %}{{ s }}{{ s }}{% endmacro %}{% set ns = namespace(s='a') %}"
        "{% for i in range(40) %}{% set ns.s = d(ns.s) %}{% endfor %}{}",
    ],
)
def test_doubling_and_repetition_stay_under_300_mb(source: str) -> None:
    _, baseline = _peak_kib("{}")
    outcome, peak = _peak_kib(source)
    assert outcome == "TemplateRenderError"
    assert peak - baseline < 300 * 1024, f"{(peak - baseline) // 1024} MiB above the baseline"
    assert resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss >= peak


def test_macros_are_allowed(tmp_path: Path) -> None:
    request = (
        "wire:\n  dialect: openai-chat\n  request: |\n"
        "    {% macro message(role, text) -%}\n"
        '    {"role": {{ role | tojson }}, "content": {{ text | tojson }}}\n'
        "    {%- endmacro %}\n"
        "    {% macro wrap() %}[{{ caller() }}]{% endmacro %}\n"
        '    {"model": {{ model | tojson }}, "messages": {% call wrap() %}{{ message("user", "hi") }}{% endcall %}}\n'
    )
    assert provider(tmp_path, request).wire.request is not None


def test_validate_reports_a_template_past_its_limits_with_file_and_line(tmp_path: Path) -> None:
    file = tmp_path / "p.yaml"
    file.write_text(
        "port: 9000\nbase_url: http://x\nlimits:\n  render_seconds: 0.2\nwire:\n"
        "  dialect: openai-chat\n  request: |\n    {}\n"
        f"    {NESTED}\n"
    )
    started = time.monotonic()
    result = load_providers([str(file)], {})
    assert time.monotonic() - started < 3
    found = [p for p in result.errors if "ran longer than 0.2 s" in p.message]
    assert found, result.problems
    assert found[0].file == str(file)
    assert found[0].path == "$.wire.request"
    assert f"stopped at {file}:9" in found[0].message


def test_a_request_whose_template_loops_is_a_500_and_the_port_keeps_answering(
    tmp_path: Path, respx_mock: respx.MockRouter
) -> None:
    # Loops only for a real request's model, so the rehearsal at load passes.
    template = (
        "limits:\n  render_seconds: 0.5\nwire:\n  dialect: openai-chat\n  request: |\n"
        f'    {{% if model == "big-model" %}}{NESTED}{{% endif %}}{{"model": {{{{ model | tojson }}}}}}\n'
    )
    respx_mock.post(f"{UPSTREAM}/chat/completions").respond(json={})
    app = create_app(provider(tmp_path, template), transport=httpx.AsyncHTTPTransport())
    answers: list[httpx.Response] = []
    with TestClient(app, timeout=5) as client:
        looping = threading.Thread(target=lambda: answers.append(ask(client)))
        started = time.monotonic()
        looping.start()
        time.sleep(0.1)
        health = client.get("/health")
        assert health.status_code == 200
        assert time.monotonic() - started < 1
        looping.join(timeout=3)
        assert not looping.is_alive()
        assert time.monotonic() - started < 1.5
        assert client.get("/health").status_code == 200
    assert answers[0].status_code == 500
    error = answers[0].json()["error"]
    assert error["type"] == "api_error"
    assert "request template" in error["message"]
    assert "ran longer than 0.5 s" in error["message"]
