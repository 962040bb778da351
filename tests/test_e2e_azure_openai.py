"""providers.d/azure-openai.yaml served for real, in front of a loopback upstream that
answers like Azure OpenAI (deployment in the path, `api-version` query, `api-key` header)
and refuses anything else; the `anthropic` SDK as the client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from .gateway import Gateway, provider_copy
from .upstream_server import (
    Reply,
    ScriptedUpstream,
    Seen,
    chat_completion,
    serving,
    text_chunks,
    tool_chunks,
)

KEY = "azure-test-key-0123456789"
DEPLOYMENTS = {"claude-sonnet-5-5": "prod-gpt41", "claude-haiku-5-5": "prod-mini"}
VERSION = "2024-10-21"
TOOLS: list[anthropic.types.ToolParam] = [
    {
        "name": "get_weather",
        "description": "",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]


def azure(seen: Seen) -> Reply:
    deployment = seen.path.removeprefix("/openai/deployments/").removesuffix("/chat/completions")
    problems = [
        deployment not in DEPLOYMENTS.values() and f"no deployment {deployment!r}",
        seen.query != f"api-version={VERSION}" and f"query {seen.query!r}",
        seen.headers.get("api-key") != KEY and "api-key",
        "authorization" in {k.lower() for k in seen.headers} and "an Authorization header",
    ]
    found = [p for p in problems if p]
    if found:
        return Reply(
            status=404 if "deployment" in found[0] else 401,
            json={"error": {"message": "; ".join(found)}},
        )
    body: Any = seen.body
    last = body["messages"][-1]
    if body.get("tools") and last["role"] != "tool":
        if body.get("stream"):
            return Reply(sse=tool_chunks("get_weather", json.dumps({"city": "Oslo"})))
        call = {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
        }
        return Reply(json=chat_completion(None, tool_calls=[call], finish="tool_calls"))
    text = f"It is {last['content']}." if last["role"] == "tool" else f"Hello from {deployment}."
    return (
        Reply(sse=text_chunks(text[:4], text[4:]))
        if body.get("stream")
        else Reply(json=chat_completion(text))
    )


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedUpstream]:
    yield from serving(azure)


@pytest.fixture(scope="module")
def client(
    upstream: ScriptedUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[anthropic.Anthropic]:
    path, port = provider_copy("azure-openai", tmp_path_factory.mktemp("azure"))
    env = {
        "AZURE_OPENAI_BASE_URL": upstream.url,
        "AZURE_OPENAI_API_KEY": KEY,
        "AZURE_OPENAI_DEPLOYMENT": DEPLOYMENTS["claude-sonnet-5-5"],
        "AZURE_OPENAI_DEPLOYMENT_SMALL": DEPLOYMENTS["claude-haiku-5-5"],
        "MULTIPORT_CACHE_DIR": str(path.parent),
    }
    gateway = Gateway([str(path.parent)], env, [port], path.parent.parent)
    with anthropic.Anthropic(base_url=gateway.url(), api_key="unused", max_retries=0) as sdk:
        yield sdk
    assert "Traceback" not in gateway.stop()


def _text(message: anthropic.types.Message) -> str:
    block = message.content[-1]
    assert isinstance(block, anthropic.types.TextBlock)
    return block.text


@pytest.mark.parametrize(
    ("model", "streamed"), [("claude-sonnet-5-5", False), ("claude-haiku-5-5", True)]
)
def test_each_model_reaches_its_deployment(
    client: anthropic.Anthropic, upstream: ScriptedUpstream, model: str, streamed: bool
) -> None:
    ask: dict[str, Any] = {
        "model": model,
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "Hi"}],
    }
    if streamed:
        with client.messages.stream(**ask) as stream:
            message = stream.get_final_message()
    else:
        message = client.messages.create(**ask)
    assert _text(message) == f"Hello from {DEPLOYMENTS[model]}."
    assert message.stop_reason == "end_turn"
    assert upstream.seen[-1].path == f"/openai/deployments/{DEPLOYMENTS[model]}/chat/completions"
    assert not upstream.refused


def test_a_tool_round_trip(client: anthropic.Anthropic, upstream: ScriptedUpstream) -> None:
    ask: dict[str, Any] = {
        "model": "claude-sonnet-5-5",
        "max_tokens": 100,
        "tools": TOOLS,
        "messages": [{"role": "user", "content": "Weather in Oslo?"}],
    }
    with client.messages.stream(**ask) as stream:
        first = stream.get_final_message()
    call = first.content[-1]
    assert isinstance(call, anthropic.types.ToolUseBlock)
    assert (first.stop_reason, call.input) == ("tool_use", {"city": "Oslo"})
    ask["messages"] += [
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": call.id, "name": call.name, "input": call.input}
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "snowing"}],
        },
    ]
    second = client.messages.create(**ask)
    assert _text(second) == "It is snowing."
    sent = upstream.seen[-1].body["messages"]
    assert sent[-1] == {"role": "tool", "tool_call_id": call.id, "content": "snowing"}
    assert not upstream.refused
