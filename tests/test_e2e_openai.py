"""End to end: `multiport serve --only openai` (the shipped openai.yaml, copied onto a free
ephemeral port) in front of a scripted OpenAI-style upstream, driven by the official
`anthropic` SDK."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import cast

import anthropic
import httpx
import pytest

from .gateway import Gateway, provider_copy
from .stream_checker import check_stream, parse_sse
from .upstream_server import Reply, ScriptedUpstream, chat_completion, text_chunks, tool_chunks

TOOLS: list[anthropic.types.ToolParam] = [
    {
        "name": "get_weather",
        "description": "Weather for a city",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    }
]


@pytest.fixture(scope="module")
def gateway(
    upstream: ScriptedUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("gw")
    openai_yaml, port = provider_copy("openai", tmp)
    env = {
        "OPENAI_BASE_URL": upstream.url + "/v1",
        "OPENAI_API_KEY": "sk-test-upstream-secret",
        "MULTIPORT_CACHE_DIR": str(tmp / "cache"),
    }
    gw = Gateway([str(openai_yaml.parent), "--only", "openai"], env, [port], tmp)
    yield gw
    log = gw.stop()
    assert "Traceback" not in log, log
    assert "sk-test-upstream-secret" not in log


@pytest.fixture
def client(gateway: Gateway, upstream: ScriptedUpstream) -> Iterator[anthropic.Anthropic]:
    upstream.reset()
    with anthropic.Anthropic(
        base_url=gateway.url(), api_key="client-key", max_retries=0
    ) as sdk_client:
        yield sdk_client


@pytest.fixture
async def aclient(
    gateway: Gateway, upstream: ScriptedUpstream
) -> AsyncIterator[anthropic.AsyncAnthropic]:
    upstream.reset()
    async with anthropic.AsyncAnthropic(
        base_url=gateway.url(), api_key="client-key", max_retries=0
    ) as sdk_client:
        yield sdk_client


def _echoed(message: anthropic.types.Message) -> list[anthropic.types.ContentBlockParam]:
    """The answer's blocks as a client sends them back: each block's full `model_dump()`.

    The dumps carry every field of the block (None ones too); they are the blocks' param
    shapes, which the type checker cannot see through a `dict[str, Any]`.
    """
    return cast(
        "list[anthropic.types.ContentBlockParam]", [b.model_dump() for b in message.content]
    )


def test_create_text(client: anthropic.Anthropic, upstream: ScriptedUpstream) -> None:
    upstream.reply(Reply(json=chat_completion("Hello from upstream", usage=(21, 4))))
    message = client.messages.create(
        model="claude-haiku-5-5", max_tokens=100, messages=[{"role": "user", "content": "Hi"}]
    )
    assert message.content[0].type == "text"
    assert message.content[0].text == "Hello from upstream"
    assert message.model == "claude-haiku-5-5"
    assert message.stop_reason == "end_turn"
    assert message.id.startswith("msg_")
    assert (message.usage.input_tokens, message.usage.output_tokens) == (21, 4)
    sent = upstream.seen[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.body["model"] == "gpt-4.1-mini"
    assert sent.body["messages"] == [{"role": "user", "content": "Hi"}]
    assert sent.headers["Authorization"] == "Bearer sk-test-upstream-secret"
    assert "x-api-key" not in {k.lower() for k in sent.headers}
    assert "anthropic-version" not in {k.lower() for k in sent.headers}


def test_stream_text(client: anthropic.Anthropic, upstream: ScriptedUpstream) -> None:
    upstream.reply(Reply(sse=text_chunks("Hel", "lo ", "wörld")))
    with client.messages.stream(
        model="claude-sonnet-5-5", max_tokens=50, messages=[{"role": "user", "content": "Hi"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Hello wörld"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 5
    sent = upstream.seen[-1].body
    assert sent["model"] == "gpt-4.1"
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}


def test_raw_stream_passes_invariants(gateway: Gateway, upstream: ScriptedUpstream) -> None:
    upstream.reset()
    upstream.reply(Reply(sse=tool_chunks("get_weather", '{"city": "Paris"}', text="Checking.")))
    body = {
        "model": "claude-sonnet-5-5",
        "max_tokens": 50,
        "stream": True,
        "tools": TOOLS,
        "messages": [{"role": "user", "content": "Weather?"}],
    }
    with httpx.stream(
        "POST", gateway.url() + "/v1/messages?beta=true", json=body, timeout=10
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = response.read()
    message = check_stream(parse_sse(raw))
    assert [b["type"] for b in message["content"]] == ["text", "tool_use"]
    assert message["content"][1]["input"] == {"city": "Paris"}
    assert message["stop_reason"] == "tool_use"


def test_stream_tool_use_and_round_trip(
    client: anthropic.Anthropic, upstream: ScriptedUpstream
) -> None:
    upstream.reply(Reply(sse=tool_chunks("get_weather", '{"city": "Paris"}', call_id="call_abc")))
    with client.messages.stream(
        model="claude-sonnet-5-5",
        max_tokens=50,
        tools=TOOLS,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    call = final.content[-1]
    assert call.type == "tool_use"
    assert call.name == "get_weather"
    assert call.input == {"city": "Paris"}
    sent = upstream.seen[-1].body
    assert sent["tools"][0] == {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": TOOLS[0]["input_schema"],
        },
    }

    upstream.reply(Reply(json=chat_completion("It is 18C in Paris.")))
    second = client.messages.create(
        model="claude-sonnet-5-5",
        max_tokens=50,
        tools=TOOLS,
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": _echoed(final)},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18C"}],
            },
        ],
    )
    assert isinstance(second.content[0], anthropic.types.TextBlock)
    assert second.content[0].text == "It is 18C in Paris."
    messages = upstream.seen[-1].body["messages"]
    assert messages[1]["role"] == "assistant"
    assert messages[1]["tool_calls"][0]["id"] == call.id
    assert json.loads(messages[1]["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}
    assert messages[2] == {"role": "tool", "tool_call_id": call.id, "content": "18C"}


def test_create_tool_use(client: anthropic.Anthropic, upstream: ScriptedUpstream) -> None:
    calls = [
        {
            "id": "call_9",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
        }
    ]
    # Gemini and Ollama say "stop" with tool calls: still tool_use.
    upstream.reply(Reply(json=chat_completion(None, tool_calls=calls, finish="stop")))
    message = client.messages.create(
        model="claude-opus-5-5",
        max_tokens=50,
        tools=TOOLS,
        tool_choice={"type": "any"},
        messages=[{"role": "user", "content": "Rome?"}],
    )
    assert message.stop_reason == "tool_use"
    assert message.content[0].type == "tool_use"
    assert message.content[0].input == {"city": "Rome"}
    assert upstream.seen[-1].body["tool_choice"] == "required"


async def test_async_create_and_stream(
    aclient: anthropic.AsyncAnthropic, upstream: ScriptedUpstream
) -> None:
    upstream.reply(Reply(json=chat_completion("async hello")), Reply(sse=text_chunks("a", "b")))
    message = await aclient.messages.create(
        model="claude-haiku-5-5", max_tokens=20, messages=[{"role": "user", "content": "x"}]
    )
    assert isinstance(message.content[0], anthropic.types.TextBlock)
    assert message.content[0].text == "async hello"
    async with aclient.messages.stream(
        model="claude-haiku-5-5", max_tokens=20, messages=[{"role": "user", "content": "x"}]
    ) as stream:
        final = await stream.get_final_message()
    assert isinstance(final.content[0], anthropic.types.TextBlock)
    assert final.content[0].text == "ab"


def test_image(client: anthropic.Anthropic, upstream: ScriptedUpstream) -> None:
    upstream.reply(Reply(json=chat_completion("a red pixel")))
    png = base64.b64encode(bytes.fromhex("89504e470d0a1a0a")).decode()
    message = client.messages.create(
        model="claude-sonnet-5-5",
        max_tokens=20,
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": png},
                    },
                    {"type": "text", "text": "What is it?"},
                ],
            }
        ],
    )
    assert isinstance(message.content[0], anthropic.types.TextBlock)
    assert message.content[0].text == "a red pixel"
    content = upstream.seen[-1].body["messages"][0]["content"]
    assert content[0] == {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}}
    assert content[1] == {"type": "text", "text": "What is it?"}


def test_upstream_error_reaches_client(
    client: anthropic.Anthropic, upstream: ScriptedUpstream
) -> None:
    upstream.reply(
        Reply(
            status=400,
            json={
                "error": {
                    "message": "Invalid value for 'temperature'",
                    "type": "invalid_request_error",
                }
            },
        )
    )
    with pytest.raises(anthropic.BadRequestError) as exc:
        client.messages.create(
            model="claude-haiku-5-5", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert "Invalid value for 'temperature'" in str(exc.value)
    assert isinstance(exc.value.body, dict)
    assert exc.value.body["error"]["type"] == "invalid_request_error"


def test_claude_code_fixture_streams(gateway: Gateway, upstream: ScriptedUpstream) -> None:
    upstream.reset()
    fixture = json.loads(
        (
            Path(__file__).parent / "data" / "claude-code" / "03-tool-roundtrip-turn2.json"
        ).read_text()
    )
    upstream.reply(Reply(sse=text_chunks("The secret word is banana.")))
    headers = {
        k: v for k, v in fixture["headers"].items() if k.lower() not in ("content-type", "accept")
    }
    with httpx.stream(
        "POST",
        gateway.url() + fixture["path"],
        json=fixture["body"],
        headers={**headers, "x-api-key": "dummy"},
        timeout=10,
    ) as response:
        assert response.status_code == 200
        message = check_stream(parse_sse(response.read()))
    assert message["content"][0]["text"] == "The secret word is banana."
    sent = upstream.seen[-1].body
    roles = [m["role"] for m in sent["messages"]]
    assert roles == ["system", "user", "assistant", "tool"]
    assert "thinking" not in sent
    assert "context_management" not in sent
    assert "output_config" not in sent
    assert "cache_control" not in json.dumps(sent)
    assert sent["max_tokens"] == 32768  # gpt-4.1's output limit, from openai.yaml


def test_count_tokens_models_health_info(gateway: Gateway) -> None:
    fixture = json.loads(
        (Path(__file__).parent / "data" / "claude-code" / "04-count-tokens.json").read_text()
    )
    counted = httpx.post(gateway.url() + fixture["path"], json=fixture["body"], timeout=5)
    assert counted.status_code == 200
    characters = len(json.dumps(fixture["body"]))
    assert characters / 8 < counted.json()["input_tokens"] < characters / 2
    models = httpx.get(gateway.url() + "/v1/models?limit=1000", timeout=5).json()
    ids = [m["id"] for m in models["data"]]
    assert "claude-haiku-5-5" in ids
    assert all(m["type"] == "model" for m in models["data"])
    health = httpx.get(gateway.url() + "/health", timeout=5).json()
    assert health["ready"] is True
    info = httpx.get(gateway.url() + "/info", timeout=5)
    assert info.json()["dialect"] == "openai-chat"
    assert "sk-test-upstream-secret" not in info.text
    assert httpx.head(gateway.url() + "/", timeout=5).status_code == 200


def test_bad_requests_get_anthropic_errors(gateway: Gateway) -> None:
    bad_json = httpx.post(gateway.url() + "/v1/messages", content=b"{not json", timeout=5)
    assert bad_json.status_code == 400
    assert bad_json.json()["type"] == "error"
    assert bad_json.json()["error"]["type"] == "invalid_request_error"
    missing = httpx.post(
        gateway.url() + "/v1/messages",
        json={"model": "claude-haiku-5-5", "messages": []},
        timeout=5,
    )
    assert missing.status_code == 400
    assert "max_tokens" in missing.json()["error"]["message"]
    wrong_type = httpx.post(
        gateway.url() + "/v1/messages",
        json={"model": "x", "max_tokens": "ten", "messages": []},
        timeout=5,
    )
    assert "$.max_tokens" in wrong_type.json()["error"]["message"]
    unknown = httpx.post(
        gateway.url() + "/v1/messages",
        json={"model": "llama-3", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
        timeout=5,
    )
    assert unknown.status_code == 404
    assert unknown.json()["error"]["type"] == "not_found_error"
    assert "gpt-4.1" in unknown.json()["error"]["message"]
    nowhere = httpx.get(gateway.url() + "/v2/unknown", timeout=5)
    assert nowhere.status_code == 404
    assert nowhere.json()["error"]["type"] == "not_found_error"


def test_openai_sdk_lists_models(gateway: Gateway) -> None:
    import openai

    with openai.OpenAI(base_url=gateway.url() + "/v1", api_key="x", max_retries=0) as client:
        ids = [m.id for m in client.models.list()]
        assert "gpt-4.1" in ids
        assert "claude-sonnet-5-5" in ids
        model = next(m for m in client.models.list() if m.id == "gpt-4.1")
    assert model.object == "model"


def test_gzip_upstream_answers(client: anthropic.Anthropic, upstream: ScriptedUpstream) -> None:
    upstream.reply(
        Reply(json=chat_completion("zipped answer"), gzip=True),
        Reply(sse=text_chunks("zipped ", "stream"), gzip=True),
    )
    message = client.messages.create(
        model="claude-haiku-5-5", max_tokens=10, messages=[{"role": "user", "content": "x"}]
    )
    assert isinstance(message.content[0], anthropic.types.TextBlock)
    assert message.content[0].text == "zipped answer"
    assert "gzip" in upstream.seen[-1].headers.get("Accept-Encoding", "")
    with client.messages.stream(
        model="claude-haiku-5-5", max_tokens=10, messages=[{"role": "user", "content": "x"}]
    ) as stream:
        streamed = stream.get_final_message().content[0]
    assert isinstance(streamed, anthropic.types.TextBlock)
    assert streamed.text == "zipped stream"


def test_reasoning_stream_reaches_sdk_as_thinking(
    client: anthropic.Anthropic, upstream: ScriptedUpstream
) -> None:
    chunks = [
        {
            "choices": [
                {"index": 0, "delta": {"role": "assistant", "reasoning_content": "Let me think."}}
            ]
        },
        {"choices": [{"index": 0, "delta": {"content": "Four."}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        "[DONE]",
    ]
    upstream.reply(Reply(sse=chunks))
    with client.messages.stream(
        model="claude-opus-5-5", max_tokens=50, messages=[{"role": "user", "content": "2+2?"}]
    ) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert isinstance(final.content[0], anthropic.types.ThinkingBlock)
    assert final.content[0].thinking == "Let me think."
    assert isinstance(final.content[1], anthropic.types.TextBlock)
    assert final.content[1].text == "Four."


def test_sdk_count_tokens(client: anthropic.Anthropic) -> None:
    counted = client.messages.count_tokens(
        model="claude-haiku-5-5",
        messages=[{"role": "user", "content": "Hello, how are you today?"}],
    )
    assert counted.input_tokens > 0
