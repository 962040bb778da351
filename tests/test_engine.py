"""The engine through its HTTP face: answers, errors and secrets, upstream mocked by respx."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from litestar.testing import TestClient

from multiport.app import create_app
from multiport.compile import load_providers
from multiport.provider import Provider

from .openai_strict import check_openai_request
from .stream_checker import check_stream, parse_sse

UPSTREAM = "http://upstream.test/v1"
SECRET = "sk-pipeline-secret-0123456789"
PROVIDER = f"""\
port: 9400
base_url: {UPSTREAM}
auth:
  value: Bearer ${{PIPELINE_KEY:-{SECRET}}}
mappings:
  - match: ^claude-
    target: big-model
"""
TOOLS = [{"name": "f", "description": "", "input_schema": {"type": "object"}}]


def provider(tmp_path: Path, extra: str = "") -> Provider:
    (tmp_path / "p.yaml").write_text(PROVIDER + extra)
    result = load_providers([str(tmp_path / "p.yaml")], {})
    assert not result.errors, result.problems
    return result.providers[0]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient[Any]]:
    with TestClient(create_app(provider(tmp_path), transport=httpx.AsyncHTTPTransport())) as c:
        yield c


def ask(client: TestClient[Any], **extra: Any) -> httpx.Response:
    body = {
        "model": "claude-sonnet-5-5",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "hi"}],
        **extra,
    }
    return client.post("/v1/messages", json=body)


def sse(*chunks: Any) -> bytes:
    return b"".join(
        b"data: " + (c if isinstance(c, bytes) else json.dumps(c).encode()) + b"\n\n"
        for c in chunks
    )


def delta(finish: str | None = None, **fields: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": fields, "finish_reason": finish}]}


def stream_events(response: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    assert response.status_code == 200, response.text
    return parse_sse(response.content)


# secrets (defects 1 and 13)


def test_in_band_stream_error_is_scrubbed(
    client: TestClient[Any], respx_mock: respx.MockRouter
) -> None:
    error = {"error": {"message": f"invalid key Bearer {SECRET}"}}
    respx_mock.post(f"{UPSTREAM}/chat/completions").respond(content=sse(delta(content="a"), error))
    events = stream_events(ask(client, stream=True))
    check_stream(events, expect_error=True)
    message = events[-1][1]["error"]["message"]
    assert "invalid key" in message
    assert SECRET not in message
    assert "[redacted]" in message


@pytest.mark.parametrize(
    ("stream", "body"),
    [
        (False, f"<html>bad gateway for Bearer {SECRET}</html>".encode()),
        (True, sse(delta(content="a")) + f"data: {{not json Bearer {SECRET}\n\n".encode()),
        (True, f"data: {{not json Bearer {SECRET}\n\n".encode()),
    ],
    ids=["invalid-json-answer", "invalid-chunk-after-text", "invalid-first-chunk"],
)
def test_upstream_excerpts_are_scrubbed(
    client: TestClient[Any], respx_mock: respx.MockRouter, stream: bool, body: bytes
) -> None:
    respx_mock.post(f"{UPSTREAM}/chat/completions").respond(content=body)
    response = ask(client, stream=stream)
    assert SECRET not in response.text
    assert "[redacted]" in response.text
    if stream:
        check_stream(stream_events(response), expect_error=True)
    else:
        assert response.status_code == 502


def test_passthrough_never_echoes_the_clients_own_key(
    tmp_path: Path, respx_mock: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "a.yaml").write_text(
        "port: 9401\nbase_url: http://anthropic.test\nauth:\n  header: x-api-key\n"
        "  passthrough: true\nwire:\n  dialect: anthropic\nmappings:\n"
        "  - match: ^claude-.*\n    target: \\g<0>\n"
    )
    own_key = "sk-ant-client-own-key-987654321"
    echo = {"type": "error", "error": {"type": "authentication_error", "message": f"bad {own_key}"}}
    respx_mock.post("http://anthropic.test/v1/messages").respond(401, json=echo)
    passthrough = load_providers([str(tmp_path / "a.yaml")], {}).providers[0]
    app = create_app(passthrough, transport=httpx.AsyncHTTPTransport())
    with TestClient(app) as client:
        response = client.post(
            "/v1/messages",
            headers={"x-api-key": own_key},
            json={
                "model": "claude-x",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "hi"}],
            },
        )
    assert response.status_code == 401
    assert own_key not in response.text
    assert "bad [redacted]" in response.json()["error"]["message"]
    assert "bad [redacted]" in caplog.text  # logged, and scrubbed there too
    assert own_key not in caplog.text


def test_a_secret_at_the_end_of_a_long_upstream_error_is_not_cut_in_two(
    client: TestClient[Any], respx_mock: respx.MockRouter
) -> None:
    for padding in (490, 990, 1990):
        respx_mock.post(f"{UPSTREAM}/chat/completions").respond(500, text="x" * padding + SECRET)
        response = ask(client)
        assert response.status_code == 500
        assert SECRET[:8] not in response.text, padding


# one set of rules (defects 2, 3, 6)


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


# requests the upstream accepts (defects 4, 5, 9, 10)


def _sent(respx_mock: respx.MockRouter) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(respx_mock.calls.last.request.content)
    return body


def _ok(respx_mock: respx.MockRouter) -> None:
    respx_mock.post(f"{UPSTREAM}/chat/completions").respond(
        json={
            "choices": [
                {"message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
            ]
        }
    )


def test_a_call_left_unanswered_before_another_assistant_turn_is_answered(
    client: TestClient[Any], respx_mock: respx.MockRouter
) -> None:
    _ok(respx_mock)
    messages = [
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}],
        },
        {"role": "assistant", "content": "never mind"},
        {"role": "user", "content": "and now?"},
    ]
    assert ask(client, messages=messages, tools=TOOLS).status_code == 200
    sent = _sent(respx_mock)
    check_openai_request(sent)
    roles = [m["role"] for m in sent["messages"]]
    assert roles == ["user", "assistant", "tool", "assistant", "user"]
    assert sent["messages"][2]["content"].startswith("Error:")


def test_images_in_a_tool_result_reach_the_upstream(
    client: TestClient[Any], respx_mock: respx.MockRouter
) -> None:
    _ok(respx_mock)
    png = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}
    messages = [
        {"role": "user", "content": "look"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "t1",
                    "content": [
                        {"type": "text", "text": "a screenshot"},
                        {"type": "image", "source": png},
                    ],
                }
            ],
        },
    ]
    assert ask(client, messages=messages, tools=TOOLS).status_code == 200
    sent = _sent(respx_mock)
    check_openai_request(sent)
    tool, user = sent["messages"][2], sent["messages"][3]
    assert tool == {"role": "tool", "tool_call_id": "t1", "content": "a screenshot"}
    assert user["role"] == "user"
    urls = [p["image_url"]["url"] for p in user["content"] if p["type"] == "image_url"]
    assert urls == ["data:image/png;base64,iVBORw0KGgo="]
    assert "[image omitted]" not in json.dumps(sent)


def test_thinking_history_is_sent_back_as_reasoning_content_when_asked(
    tmp_path: Path, respx_mock: respx.MockRouter
) -> None:
    _ok(respx_mock)
    messages = [
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "I should call f.", "signature": "s"},
                {"type": "tool_use", "id": "t1", "name": "f", "input": {}},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "1"}]},
    ]
    for options, expected in (
        ("", None),
        ("options:\n  thinking_history: send\n", "I should call f."),
    ):
        app = create_app(provider(tmp_path, options), transport=httpx.AsyncHTTPTransport())
        with TestClient(app) as client:
            assert ask(client, messages=messages, tools=TOOLS).status_code == 200
        assert _sent(respx_mock)["messages"][1].get("reasoning_content") == expected


def test_server_tools_are_refused_by_default_and_dropped_visibly_on_request(
    tmp_path: Path, respx_mock: respx.MockRouter
) -> None:
    tools = [*TOOLS, {"type": "web_search_20250305", "name": "web_search", "max_uses": 2}]
    with TestClient(create_app(provider(tmp_path), transport=httpx.AsyncHTTPTransport())) as client:
        refused = ask(client, tools=tools)
    assert refused.status_code == 400
    assert "web_search" in refused.json()["error"]["message"]
    _ok(respx_mock)
    dropping = provider(tmp_path, "options:\n  server_tools: drop\n")
    with TestClient(create_app(dropping, transport=httpx.AsyncHTTPTransport())) as client:
        dropped = ask(client, tools=tools)
    assert dropped.status_code == 200
    assert dropped.headers["multiport-dropped-tools"] == "web_search"
    assert [t["function"]["name"] for t in _sent(respx_mock)["tools"]] == ["f"]


# malformed input (defect 12)

BASE = '{"model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": %s}]}'


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ((BASE % '"h\\u00e9"').replace("\\u00e9", "\xff").encode("latin-1"), "UTF-8"),
        (
            (
                BASE
                % f'[{{"type": "text", "text": "x", "cache_control": {{"a": {"[" * 1000 + "]" * 1000}}}}}]'
            ).encode(),
            "nested too deeply",
        ),
        ((BASE % '[{"type": "text", "text": 5}]').encode(), "$.messages[0].content[0].text"),
        (
            (BASE % '[{"type": "image", "source": "abc"}]').encode(),
            "$.messages[0].content[0].source",
        ),
        (
            (BASE % '[{"type": "tool_result", "tool_use_id": "t", "content": ["a"]}]').encode(),
            "$.messages[0].content[0].content",
        ),
        (
            (BASE % '"hi"')[:-1].encode()
            + b', "thinking": {"type": "enabled", "budget_tokens": "5"}}',
            "$.thinking.budget_tokens",
        ),
    ],
    ids=[
        "invalid-utf8",
        "deep-nesting",
        "text-not-string",
        "source-string",
        "result-strings",
        "budget-string",
    ],
)
@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"])
def test_malformed_input_is_a_400_naming_what_to_fix(
    client: TestClient[Any], body: bytes, where: str, path: str
) -> None:
    response = client.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert where in error["message"]


# failures that are the upstream's or a template's (defects 15 and 16)


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


# routing (defect 7)


def test_every_listed_fallback_id_is_routable(
    tmp_path: Path, respx_mock: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MULTIPORT_CACHE_DIR", str(tmp_path / "cache"))
    catalog = "catalog:\n  url: /models\n  fallback: [listed-model]\n"
    respx_mock.get(f"{UPSTREAM}/models").respond(503)
    _ok(respx_mock)
    app = create_app(provider(tmp_path, catalog), transport=httpx.AsyncHTTPTransport())
    with TestClient(app) as client:
        listed = [m["id"] for m in client.get("/v1/models").json()["data"]]
        assert "listed-model" in listed
        for model in listed:
            response = ask(client, model=model)
            assert response.status_code == 200, (model, response.text)
    assert _sent(respx_mock)["model"] == "listed-model"


# tool ids in linear time (defect 14)


def test_twenty_thousand_repeated_tool_ids_stay_unique(
    client: TestClient[Any], respx_mock: respx.MockRouter
) -> None:
    _ok(respx_mock)
    n = 20_000
    calls = [{"type": "tool_use", "id": "same", "name": "f", "input": {}} for _ in range(n)]
    results = [{"type": "tool_result", "tool_use_id": "same", "content": "r"} for _ in range(n)]
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": calls},
        {"role": "user", "content": results},
    ]
    assert ask(client, messages=messages, tools=TOOLS).status_code == 200
    sent = _sent(respx_mock)
    ids = [c["id"] for c in sent["messages"][1]["tool_calls"]]
    assert len(set(ids)) == n
    check_openai_request(sent)


# contracts at run time


def test_a_template_typo_the_samples_miss_is_an_error_naming_template_and_key(
    tmp_path: Path, respx_mock: respx.MockRouter
) -> None:
    # Only an upstream field the samples lack reaches the misspelt key.
    template = (
        "wire:\n  dialect: openai-chat\n  response: |\n"
        '    {"content": [{"type": "text", "text": "x"}]'
        '{% if response.get("rare") %}, "stop_reasn": "end_turn"{% endif %}}\n'
    )
    respx_mock.post(f"{UPSTREAM}/chat/completions").respond(json={"rare": True})
    app = create_app(provider(tmp_path, template), transport=httpx.AsyncHTTPTransport())
    with TestClient(app) as client:
        response = ask(client)
    assert response.status_code == 500
    message = response.json()["error"]["message"]
    assert "template p:response" in message
    assert "stop_reasn" in message


def test_log_lines_are_scrubbed_at_the_handler() -> None:
    from multiport.scrub import Scrubber, guard_logs

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        guard_logs(Scrubber([SECRET]))
        logging.getLogger("multiport.anything").warning("upstream said: bad key %s", SECRET)
    finally:
        root.removeHandler(handler)
    assert "bad key [redacted]" in stream.getvalue()
    assert SECRET not in stream.getvalue()


# request shapes real clients send


def test_valid_request_shapes_are_accepted(
    client: TestClient[Any], respx_mock: respx.MockRouter
) -> None:
    _ok(respx_mock)
    search = {
        "type": "search_result",
        "source": "https://docs.example/a",
        "title": "A",
        "content": [{"type": "text", "text": "important fact"}],
    }
    messages = [
        {"role": "user", "content": [search, {"type": "text", "text": "use it"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "t", "signature": None},
                {"type": "tool_use", "id": "t1", "name": "f", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "t1",
                    "is_error": None,
                    "content": [{"type": "tool_reference", "tool_name": "f"}, search],
                }
            ],
        },
    ]
    response = ask(
        client,
        messages=messages,
        tools=TOOLS,
        tool_choice={"type": "auto", "disable_parallel_tool_use": None},
    )
    assert response.status_code == 200, response.text
    sent = json.dumps(_sent(respx_mock))
    assert sent.count("important fact") == 2


def test_passthrough_forwards_what_it_does_not_read(
    tmp_path: Path, respx_mock: respx.MockRouter
) -> None:
    (tmp_path / "a.yaml").write_text(
        "port: 9402\nbase_url: http://anthropic.test\nauth:\n  value: key-0123456789\n"
        "  header: x-api-key\nwire:\n  dialect: anthropic\nmappings:\n"
        "  - match: ^claude-.*\n    target: \\g<0>\n"
    )
    answer = {"type": "message", "content": [{"type": "text", "text": "hi"}]}
    route = respx_mock.post("http://anthropic.test/v1/messages").respond(json=answer)
    body = {
        "model": "claude-x",
        "max_tokens": 5,
        "tools": [{"type": "mcp_toolset", "mcp_server_name": "s"}],
        "messages": [{"role": "user", "content": [{"type": "brand_new_block", "x": 1}]}],
    }
    passthrough = load_providers([str(tmp_path / "a.yaml")], {}).providers[0]
    app = create_app(passthrough, transport=httpx.AsyncHTTPTransport())
    with TestClient(app) as client:
        response = client.post("/v1/messages", json=body)
    assert response.status_code == 200, response.text
    assert json.loads(route.calls.last.request.content) == body


def test_a_passthrough_stream_cut_short_ends_with_an_error_event(
    tmp_path: Path, respx_mock: respx.MockRouter
) -> None:
    (tmp_path / "a.yaml").write_text(
        "port: 9403\nbase_url: http://anthropic.test\nwire:\n  dialect: anthropic\n"
        "auth:\n  value: key-0123456789\n  header: x-api-key\n"
        "mappings:\n  - match: ^claude-\n    target: claude-x\n"
    )
    cut = b'event: message_start\ndata: {"type":"message_start","message":{}}\n\n'
    respx_mock.post("http://anthropic.test/v1/messages").respond(content=cut)
    passthrough = load_providers([str(tmp_path / "a.yaml")], {}).providers[0]
    body = {
        "model": "claude-x",
        "max_tokens": 5,
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    with TestClient(create_app(passthrough, transport=httpx.AsyncHTTPTransport())) as client:
        response = client.post("/v1/messages", json=body)
    assert response.content.startswith(cut)
    names = [name for name, _ in parse_sse(response.content)]
    assert names == ["message_start", "error"]


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
