"""The request pipeline in process: Litestar's test client in front, respx as upstream."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from litestar import Litestar
from litestar.testing import TestClient

from multiport.app import create_app
from multiport.compile import load_providers
from multiport.provider import Provider

from .stream_checker import check_stream, parse_sse

UPSTREAM = "http://upstream.test/v1"

PROVIDER = """\
port: 9400
base_url: http://upstream.test/v1
auth:
  value: Bearer ${PIPELINE_KEY:-sk-pipeline-secret}
mappings:
  - match: haiku
    target: small-model
  - match: ^claude-
    target: big-model
options:
  {options}
"""


def _provider(tmp_path: Path, options: str = "{}") -> Provider:
    (tmp_path / "p.yaml").write_text(PROVIDER.replace("{options}", options))
    result = load_providers([str(tmp_path / "p.yaml")], {})
    assert not result.errors, result.problems
    return result.providers[0]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient[Litestar]]:
    app = create_app(_provider(tmp_path), transport=httpx.AsyncHTTPTransport())
    with TestClient(app) as test_client:
        yield test_client


def _ask(client: TestClient[Litestar], **extra: object) -> httpx.Response:
    body = {
        "model": "claude-haiku-5-5",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "hi"}],
        **extra,
    }
    return client.post("/v1/messages?beta=true", json=body)


def test_create_goes_through_templates(
    client: TestClient[Litestar], respx_mock: respx.MockRouter
) -> None:
    route = respx_mock.post(f"{UPSTREAM}/chat/completions").respond(
        json={
            "choices": [
                {"message": {"role": "assistant", "content": "hey"}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1},
        }
    )
    response = _ask(client)
    assert response.status_code == 200
    message = response.json()
    assert message["content"] == [{"type": "text", "text": "hey"}]
    assert message["model"] == "claude-haiku-5-5"
    sent = json.loads(route.calls.last.request.content)
    assert sent == {
        "model": "small-model",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 64,
    }
    assert route.calls.last.request.headers["authorization"] == "Bearer sk-pipeline-secret"


def test_streaming_through_respx(
    client: TestClient[Litestar], respx_mock: respx.MockRouter
) -> None:
    stream = (
        b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":"a"}}]}\n\n'
        b'data: {"choices":[{"index":0,"delta":{"content":"b"},"finish_reason":"stop"}]}\n\n'
        b'data: {"choices":[],"usage":{"prompt_tokens":4,"completion_tokens":2}}\n\ndata: [DONE]\n\n'
    )
    respx_mock.post(f"{UPSTREAM}/chat/completions").respond(
        content=stream, headers={"content-type": "text/event-stream"}
    )
    response = _ask(client, stream=True)
    assert response.status_code == 200
    message = check_stream(parse_sse(response.content))
    assert message["content"][0]["text"] == "ab"
    assert message["usage"]["output_tokens"] == 2


def test_upstream_error_is_mapped_and_secret_scrubbed(
    client: TestClient[Litestar], respx_mock: respx.MockRouter
) -> None:
    respx_mock.post(f"{UPSTREAM}/chat/completions").respond(
        401, json={"error": {"message": "Incorrect API key provided: sk-pipeline-secret"}}
    )
    response = _ask(client)
    assert response.status_code == 401
    body = response.json()
    assert body["error"]["type"] == "authentication_error"
    assert "sk-pipeline-secret" not in response.text
    assert "[redacted]" in body["error"]["message"]


def test_connect_error_and_timeout(
    client: TestClient[Litestar], respx_mock: respx.MockRouter
) -> None:
    route = respx_mock.post(f"{UPSTREAM}/chat/completions")
    route.side_effect = httpx.ConnectError("refused")
    assert _ask(client).status_code == 502
    route.side_effect = httpx.ReadTimeout("slow")
    response = _ask(client)
    assert response.status_code == 504
    assert response.json()["error"]["type"] == "timeout_error"


def test_upstream_garbage_is_502_not_success(
    client: TestClient[Litestar], respx_mock: respx.MockRouter
) -> None:
    respx_mock.post(f"{UPSTREAM}/chat/completions").respond(200, content=b"<html>oops</html>")
    response = _ask(client)
    assert response.status_code == 502
    assert response.json()["type"] == "error"


def test_an_answer_the_template_cannot_read_is_the_upstreams_fault(
    tmp_path: Path, respx_mock: respx.MockRouter
) -> None:
    (tmp_path / "p.yaml").write_text(
        PROVIDER.replace("{options}", "{}")
        + 'wire:\n  dialect: openai-chat\n  response: |\n    {"content": [],\n    "stop_reason": {{ response.choices[5] }}}\n'
    )
    provider = load_providers([str(tmp_path / "p.yaml")], {}).providers[0]
    respx_mock.post(f"{UPSTREAM}/chat/completions").respond(json={"choices": []})
    with TestClient(create_app(provider, transport=httpx.AsyncHTTPTransport())) as client:
        response = _ask(client)
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["type"] == "api_error"
    assert "upstream upstream.test" in error["message"]
    assert "template p:response failed at " in error["message"]
    assert "p.yaml:16: list object has no element 5" in error["message"]


def test_cannot_stream_upstream_is_replayed(tmp_path: Path, respx_mock: respx.MockRouter) -> None:
    provider = _provider(tmp_path, "{can_stream: false}")
    calls = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]
    route = respx_mock.post(f"{UPSTREAM}/chat/completions").respond(
        json={
            "choices": [
                {
                    "message": {"role": "assistant", "content": "see", "tool_calls": calls},
                    "finish_reason": "tool_calls",
                }
            ]
        }
    )
    with TestClient(create_app(provider, transport=httpx.AsyncHTTPTransport())) as client:
        response = _ask(
            client,
            stream=True,
            tools=[{"name": "f", "description": "", "input_schema": {"type": "object"}}],
        )
    assert json.loads(route.calls.last.request.content).get("stream") is None
    message = check_stream(parse_sse(response.content))
    assert [b["type"] for b in message["content"]] == ["text", "tool_use"]
    assert message["content"][1]["input"] == {"a": 1}


def test_count_tokens_is_local(client: TestClient[Litestar]) -> None:
    response = client.post(
        "/v1/messages/count_tokens?beta=true",
        json={"model": "claude-haiku-5-5", "messages": [{"role": "user", "content": "x" * 350}]},
    )
    assert response.status_code == 200
    assert 90 < response.json()["input_tokens"] < 120
    empty = client.post(
        "/v1/messages/count_tokens",
        json={"model": "m", "messages": [{"role": "user", "content": "a"}]},
    )
    assert empty.json()["input_tokens"] >= 1


def test_models_pagination_and_openai_shape(client: TestClient[Litestar]) -> None:
    first = client.get("/v1/models?limit=2").json()
    assert len(first["data"]) == 2
    assert first["has_more"] is True
    rest = client.get(f"/v1/models?after_id={first['last_id']}&limit=100").json()
    assert first["last_id"] not in [m["id"] for m in rest["data"]]
    back = client.get(f"/v1/models?before_id={rest['first_id']}&limit=100").json()
    assert [m["id"] for m in back["data"]] == [m["id"] for m in first["data"]]
    openai_shape = client.get("/v1/models?format=openai").json()
    assert openai_shape["object"] == "list"
    assert {"id", "object", "created", "owned_by"} == set(openai_shape["data"][0])


def test_passthrough_forwards_client_key_and_headers(
    tmp_path: Path, respx_mock: respx.MockRouter
) -> None:
    (tmp_path / "a.yaml").write_text(
        "port: 9401\nbase_url: http://anthropic.test\nauth:\n  header: x-api-key\n  value: ${NO_SUCH_KEY}\n  passthrough: true\n"
        "wire:\n  dialect: anthropic\noptions:\n  forward_headers: [anthropic-version, anthropic-beta]\nmappings:\n  - match: haiku\n    target: claude-haiku-4-5\n"
    )
    provider = load_providers([str(tmp_path / "a.yaml")], {}).providers[0]
    sse = (
        b'event: message_start\ndata: {"type":"message_start"}\n\n'
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    )
    route = respx_mock.post("http://anthropic.test/v1/messages").respond(
        content=sse, headers={"content-type": "text/event-stream"}
    )
    with TestClient(create_app(provider, transport=httpx.AsyncHTTPTransport())) as client:
        body = {
            "model": "claude-haiku-5-5",
            "max_tokens": 5,
            "stream": True,
            "thinking": {"type": "adaptive"},
            "messages": [{"role": "user", "content": "x"}],
        }
        response = client.post(
            "/v1/messages",
            json=body,
            headers={
                "Authorization": "Bearer user-key",
                "anthropic-beta": "b1,b2",
                "anthropic-version": "2023-06-01",
            },
        )
        assert response.content == sse
        request = route.calls.last.request
        assert request.headers["x-api-key"] == "user-key"
        assert request.headers["anthropic-beta"] == "b1,b2"
        sent = json.loads(request.content)
        assert sent["model"] == "claude-haiku-4-5"
        assert sent["thinking"] == {"type": "adaptive"}
        no_key = client.post("/v1/messages", json=body)
        assert no_key.status_code == 401
        assert "NO_SUCH_KEY" in no_key.json()["error"]["message"]


def test_image_to_text_only_model_is_400(tmp_path: Path) -> None:
    provider = _provider(tmp_path)
    app = create_app(provider, transport=httpx.AsyncHTTPTransport())
    from multiport.catalog import ModelInfo

    app.state.engine.catalog.models = {
        "small-model": ModelInfo("small-model", input_modalities=("text",))
    }
    app.state.engine.catalog.source = "live"
    with TestClient(app) as client:
        image = {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}
        response = _ask(client, messages=[{"role": "user", "content": [image]}])
    assert response.status_code == 400
    assert "does not accept image input" in response.json()["error"]["message"]


def test_max_tokens_one_probe_is_answered(
    client: TestClient[Litestar], respx_mock: respx.MockRouter
) -> None:
    route = respx_mock.post(f"{UPSTREAM}/chat/completions").respond(
        json={
            "choices": [
                {"message": {"role": "assistant", "content": "H"}, "finish_reason": "length"}
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1},
        }
    )
    response = _ask(client, max_tokens=1)
    assert response.status_code == 200
    assert response.json()["stop_reason"] == "max_tokens"
    assert json.loads(route.calls.last.request.content)["max_tokens"] == 1


def test_answer_tool_ids_are_valid_unique_and_names_restored(
    client: TestClient[Litestar], respx_mock: respx.MockRouter
) -> None:
    long_name = "mcp__filesystem__" + "read_a_very_long_named_resource_" * 3
    calls: list[dict[str, Any]] = [
        {
            "id": "call:1/a",
            "type": "function",
            "function": {"name": "PLACEHOLDER", "arguments": '{"p": 1}'},
        },
        {
            "id": "call:1/a",
            "type": "function",
            "function": {"name": "PLACEHOLDER", "arguments": '{"q": [2]}'},
        },
    ]
    route = respx_mock.post(f"{UPSTREAM}/chat/completions")

    def answer(request: httpx.Request) -> httpx.Response:
        short = json.loads(request.content)["tools"][0]["function"]["name"]
        assert len(short) <= 64
        for call in calls:
            call["function"]["name"] = short
        return httpx.Response(
            200,
            json={
                "choices": [
                    {
                        "message": {"role": "assistant", "content": None, "tool_calls": calls},
                        "finish_reason": "stop",
                    }
                ]
            },
        )

    route.side_effect = answer
    response = _ask(
        client, tools=[{"name": long_name, "description": "", "input_schema": {"type": "object"}}]
    )
    message = response.json()
    ids = [b["id"] for b in message["content"]]
    assert len(set(ids)) == 2
    assert all(re.fullmatch(r"[a-zA-Z0-9_-]+", i) for i in ids)
    assert {b["name"] for b in message["content"]} == {long_name}
    assert message["content"][0]["input"] == {"p": 1}
    assert message["content"][1]["input"] == {"q": [2]}
    assert message["stop_reason"] == "tool_use"


def test_tool_arguments_that_are_not_an_object_are_an_upstream_error_both_ways(
    client: TestClient[Litestar], respx_mock: respx.MockRouter
) -> None:
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "not json"}}
    whole = {
        "choices": [
            {"message": {"role": "assistant", "tool_calls": [call]}, "finish_reason": "stop"}
        ]
    }
    piece = {"index": 0, **call}
    chunks = [
        {"choices": [{"index": 0, "delta": {"tool_calls": [piece]}, "finish_reason": None}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    ]
    stream = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks)
    respx_mock.post(f"{UPSTREAM}/chat/completions").mock(
        side_effect=lambda request: httpx.Response(
            200, content=stream if json.loads(request.content).get("stream") else json.dumps(whole)
        )
    )
    tools = [{"name": "f", "description": "", "input_schema": {"type": "object"}}]
    plain = _ask(client, tools=tools)
    assert plain.status_code == 502
    assert "'f' has arguments that are not a JSON object" in plain.json()["error"]["message"]
    events = parse_sse(_ask(client, tools=tools, stream=True).content)
    check_stream(events, expect_error=True)
    assert "'f' has arguments that are not a JSON object" in events[-1][1]["error"]["message"]


def test_max_tokens_clamped_to_catalog_limit(tmp_path: Path, respx_mock: respx.MockRouter) -> None:
    from multiport.catalog import ModelInfo

    app = create_app(_provider(tmp_path), transport=httpx.AsyncHTTPTransport())
    app.state.engine.catalog.models = {
        "small-model": ModelInfo("small-model", max_output_tokens=4096)
    }
    app.state.engine.catalog.source = "live"
    route = respx_mock.post(f"{UPSTREAM}/chat/completions").respond(
        json={
            "choices": [
                {"message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
            ]
        }
    )
    with TestClient(app) as client:
        assert _ask(client, max_tokens=128000).status_code == 200
    assert json.loads(route.calls.last.request.content)["max_tokens"] == 4096


def test_anthropic_dialect_passes_claude_code_request_through(
    tmp_path: Path, respx_mock: respx.MockRouter
) -> None:
    fixture = json.loads(
        (
            Path(__file__).parent / "data" / "claude-code" / "02-tool-roundtrip-turn1.json"
        ).read_text()
    )
    (tmp_path / "a.yaml").write_text(
        "port: 9402\nbase_url: http://anthropic.test\nauth:\n  header: x-api-key\n  value: sk-ant-gateway\n"
        "wire:\n  dialect: anthropic\noptions:\n  forward_headers: [anthropic-version, anthropic-beta]\n"
        "mappings:\n  - match: ^(claude-.*)$\n    target: \\1\n"
    )
    provider = load_providers([str(tmp_path / "a.yaml")], {}).providers[0]
    upstream_stream = (Path(__file__).parent / "data" / "anthropic-stream.sse").read_bytes()
    route = respx_mock.post("http://anthropic.test/v1/messages").respond(
        content=upstream_stream, headers={"content-type": "text/event-stream"}
    )
    body = json.dumps(fixture["body"]).encode()
    with TestClient(create_app(provider, transport=httpx.AsyncHTTPTransport())) as client:
        response = client.post(fixture["path"], content=body, headers=fixture["headers"])
    assert response.status_code == 200
    assert response.content == upstream_stream
    request = route.calls.last.request
    assert request.content == body  # same model: the bytes go through untouched
    assert request.headers["anthropic-beta"] == fixture["headers"]["anthropic-beta"]
    assert request.headers["x-api-key"] == "sk-ant-gateway"
    check_stream(parse_sse(response.content))


def test_response_without_choices_is_an_error_not_a_success(
    client: TestClient[Litestar], respx_mock: respx.MockRouter
) -> None:
    respx_mock.post(f"{UPSTREAM}/chat/completions").respond(json={"id": "x", "choices": []})
    response = _ask(client)
    assert response.status_code == 502
    assert "without choices" in response.json()["error"]["message"]


async def test_stream_stops_at_done_even_if_the_connection_stays_open(tmp_path: Path) -> None:
    import asyncio

    from multiport.relay import translate_stream
    from multiport.streaming import StreamState
    from multiport.toolids import ToolNames

    provider = _provider(tmp_path)

    async def source() -> AsyncIterator[bytes]:
        yield b'data: {"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
        await asyncio.sleep(3600)  # a server that never closes
        yield b""

    assert provider.wire.stream is not None
    frames = translate_stream(
        source(),
        StreamState("m", ToolNames(64)),
        provider.wire.stream,
        {"request": {}, "options": {}, "model": "m"},
        framing="sse",
        ping_interval=30,
        host="upstream.test",
    )

    async def collect() -> bytes:
        return b"".join([f async for f in frames])

    out = await asyncio.wait_for(collect(), 10)  # bounded: a hang fails the test
    message = check_stream(parse_sse(out))
    assert message["content"][0]["text"] == "hi"


def test_answer_content_as_parts_and_arguments_as_object(
    client: TestClient[Litestar], respx_mock: respx.MockRouter
) -> None:
    calls = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}]
    message = {
        "role": "assistant",
        "content": [{"type": "text", "text": "Hel"}, {"type": "text", "text": "lo"}],
        "tool_calls": calls,
    }
    respx_mock.post(f"{UPSTREAM}/chat/completions").respond(
        json={"choices": [{"message": message, "finish_reason": "tool_calls"}]}
    )
    answer = _ask(
        client, tools=[{"name": "f", "description": "", "input_schema": {"type": "object"}}]
    ).json()
    assert answer["content"][0] == {"type": "text", "text": "Hello"}
    assert answer["content"][1]["input"] == {"a": 1}
