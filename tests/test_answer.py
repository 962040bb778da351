"""Answers, streamed or not, follow one set of rules; failures are named and placed."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from litestar.testing import TestClient

from multiport.app import create_app

from .apps import (
    TOOLS,
    UPSTREAM,
    ask,
    delta,
    provider,
    sse,
    stream_events,
)
from .stream_checker import check_stream


def test_arguments_that_look_like_a_snapshot_are_kept_whole(
    client: TestClient[Any], respx_mock: respx.MockRouter
) -> None:
    call = {"index": 0, "id": "c1", "function": {"name": "f", "arguments": '{"q":'}}
    more = {"index": 0, "function": {"arguments": '{"q":1}}'}}
    body = sse(delta(tool_calls=[call]), delta(tool_calls=[more]), delta("tool_calls"), b"[DONE]")
    respx_mock.post(f"{UPSTREAM}/chat/completions").respond(content=body)
    message = check_stream(stream_events(ask(client, stream=True, tools=TOOLS)))
    assert message["content"][0]["input"] == {"q": {"q": 1}}


@pytest.mark.parametrize("finish", ["length", "content_filter", "stop"])
def test_a_tool_call_has_the_same_stop_reason_streamed_or_not(
    client: TestClient[Any], respx_mock: respx.MockRouter, finish: str
) -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
    whole = {
        "choices": [
            {"message": {"role": "assistant", "tool_calls": [call]}, "finish_reason": finish}
        ],
        "usage": {"prompt_tokens": 0, "completion_tokens": 7},
    }
    piece = {"index": 0, **call}
    usage = {"choices": [], "usage": whole["usage"]}
    respx_mock.post(f"{UPSTREAM}/chat/completions").mock(
        side_effect=lambda request: httpx.Response(
            200,
            content=sse(delta(tool_calls=[piece]), delta(finish), usage, b"[DONE]")
            if json.loads(request.content).get("stream")
            else json.dumps(whole).encode(),
        )
    )
    plain = ask(client, tools=TOOLS).json()
    streamed = check_stream(stream_events(ask(client, stream=True, tools=TOOLS)))
    assert plain["stop_reason"] == streamed["stop_reason"] == "tool_use"
    assert plain["usage"] == streamed["usage"]
    assert plain["usage"]["input_tokens"] > 0  # zero from the upstream: estimated, both ways


def test_stream_without_usage_estimates_output_tokens(
    client: TestClient[Any], respx_mock: respx.MockRouter
) -> None:
    text = "The quick brown fox jumps over the lazy dog. " * 4
    body = sse(delta(content=text), delta("stop"), b"[DONE]")
    respx_mock.post(f"{UPSTREAM}/chat/completions").respond(content=body)
    message = check_stream(stream_events(ask(client, stream=True)))
    assert message["usage"]["output_tokens"] == round(len(text) / 3.5)


def test_a_stream_template_that_recurses_ends_with_an_error_event_and_one_log_line(
    tmp_path: Path, respx_mock: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    template = (
        "wire:\n  dialect: openai-chat\n  stream: |\n"
        "    {% macro deeper(n) %}{{ deeper(n + 1) }}{% endmacro %}{{ deeper(0) }}\n"
    )
    respx_mock.post(f"{UPSTREAM}/chat/completions").respond(content=sse(delta(content="a")))
    app = create_app(provider(tmp_path, template), transport=httpx.AsyncHTTPTransport())
    with caplog.at_level(logging.WARNING), TestClient(app) as client:
        events = stream_events(ask(client, stream=True))
    check_stream(events, expect_error=True)
    assert (
        "RecursionError" in events[-1][1]["error"]["message"]
        or "recursion" in (events[-1][1]["error"]["message"])
    )
    lines = [r for r in caplog.records if r.name.startswith("multiport")]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert "Traceback" not in caplog.text
    assert len(caplog.text.splitlines()) == 1


def test_an_answer_nested_too_deeply_is_a_502_naming_the_upstream(
    client: TestClient[Any], respx_mock: respx.MockRouter
) -> None:
    deep = (
        b'{"choices": [{"message": {"content": "x", "junk": ' + b"[" * 5000 + b"]" * 5000 + b"}}]}"
    )
    respx_mock.post(f"{UPSTREAM}/chat/completions").respond(content=deep)
    response = ask(client)
    assert response.status_code == 502
    assert "upstream.test" in response.json()["error"]["message"]


def test_a_template_typo_the_samples_miss_is_an_error_naming_template_and_key(
    tmp_path: Path, respx_mock: respx.MockRouter
) -> None:
    # Built in an expression, so no static check sees it; no sample reaches the branch.
    template = (
        "wire:\n  dialect: openai-chat\n  response: |\n"
        '    {"content": [{"type": "text", "text": "x"}]'
        '{% if response.get("rare") %}, "usage": {{ {"input_tokns": 1} | tojson }}{% endif %}}\n'
    )
    respx_mock.post(f"{UPSTREAM}/chat/completions").respond(json={"rare": True})
    app = create_app(provider(tmp_path, template), transport=httpx.AsyncHTTPTransport())
    with TestClient(app) as client:
        response = ask(client)
    assert response.status_code == 500
    message = response.json()["error"]["message"]
    assert "template p:response" in message
    assert "input_tokns" in message


def test_usage_reported_in_pieces_adds_up(
    client: TestClient[Any], respx_mock: respx.MockRouter
) -> None:
    body = sse(
        delta(content="hi"),
        {**delta("stop"), "usage": {"prompt_tokens": 100}},
        {"choices": [], "usage": {"completion_tokens": 6}},
        b"[DONE]",
    )
    respx_mock.post(f"{UPSTREAM}/chat/completions").respond(content=body)
    message = check_stream(stream_events(ask(client, stream=True)))
    assert message["usage"]["input_tokens"] == 100
    assert message["usage"]["output_tokens"] == 6


def test_a_tool_call_with_a_numeric_id_or_float_usage_is_read(
    client: TestClient[Any], respx_mock: respx.MockRouter
) -> None:
    call = {"id": 7, "type": "function", "function": {"name": "f", "arguments": "{}"}}
    answer = {
        "choices": [
            {"message": {"role": "assistant", "tool_calls": [call]}, "finish_reason": "tool_calls"}
        ],
        "usage": {"prompt_tokens": 5.0, "completion_tokens": 2.0},
    }
    respx_mock.post(f"{UPSTREAM}/chat/completions").respond(json=answer)
    message = ask(client, tools=TOOLS).json()
    assert message["content"][0]["id"] == "7"
    assert message["usage"]["output_tokens"] == 2


def test_an_answer_value_of_the_wrong_type_is_the_upstreams_fault(
    client: TestClient[Any], respx_mock: respx.MockRouter
) -> None:
    call = {"id": "c", "type": "function", "function": {"name": None, "arguments": "{}"}}
    answer = {
        "choices": [
            {"message": {"role": "assistant", "tool_calls": [call]}, "finish_reason": "stop"}
        ]
    }
    respx_mock.post(f"{UPSTREAM}/chat/completions").respond(json=answer)
    response = ask(client, tools=TOOLS)
    assert response.status_code == 502
    assert "upstream.test" in response.json()["error"]["message"]


def test_a_stream_in_another_framing_is_named_as_such(
    client: TestClient[Any], respx_mock: respx.MockRouter
) -> None:
    ndjson = b'{"choices": [{"index": 0, "delta": {"content": "a"}}]}\n'
    respx_mock.post(f"{UPSTREAM}/chat/completions").respond(content=ndjson)
    events = stream_events(ask(client, stream=True))
    check_stream(events, expect_error=True)
    assert "held no sse event; check `wire.framing`" in events[-1][1]["error"]["message"]


def test_a_failure_is_logged_with_provider_template_line_and_request_id(
    tmp_path: Path, respx_mock: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    template = "wire:\n  dialect: openai-chat\n  response: |\n    {{ 1 / 0 }}\n"
    respx_mock.post(f"{UPSTREAM}/chat/completions").respond(json={"choices": []})
    app = create_app(provider(tmp_path, template), transport=httpx.AsyncHTTPTransport())
    with caplog.at_level(logging.WARNING), TestClient(app) as client:
        response = ask(client)
    assert response.status_code == 502
    [line] = [r.getMessage() for r in caplog.records if r.name.startswith("multiport")]
    assert line.startswith(f"p {response.headers['request-id']}: POST /v1/messages answered 502")
    assert "template p:response failed at" in line
    assert "p.yaml:11: division by zero" in line  # the template line in the file
