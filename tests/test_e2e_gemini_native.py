"""providers.d/gemini-native.yaml served for real, in front of a loopback upstream that
speaks Gemini's generateContent format and refuses anything else; the `anthropic` SDK as
the client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from .gateway import Gateway, provider_copy
from .upstream_server import Reply, ScriptedUpstream, Seen, serving

KEY = "gemini-test-key-0123456789"
MODEL = "gemini-2.5-pro"  # what claude-opus-* maps to
TOP = {"contents", "systemInstruction", "tools", "toolConfig", "generationConfig"}
PART_KEYS = {"text", "inlineData", "fileData", "functionCall", "functionResponse"}
TOOLS: list[anthropic.types.ToolParam] = [
    {
        "name": "get_weather",
        "description": "Weather in a city",
        "input_schema": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            # What Gemini's `parameters` subset refuses, and parametersJsonSchema takes.
            "properties": {
                "city": {"type": "string", "format": "uri"},
                "days": {"type": ["integer", "null"]},
            },
            "required": ["city"],
            "additionalProperties": False,
        },
    }
]


def _refusal(seen: Seen) -> str | None:
    """Why the real API would refuse this request, or None."""
    stream = seen.path.endswith(":streamGenerateContent")
    expected = f"/v1beta/models/{MODEL}:" + (
        "streamGenerateContent" if stream else "generateContent"
    )
    problems = [
        seen.path != expected and f"path {seen.path}",
        stream and seen.query != "alt=sse" and f"query {seen.query!r}",
        seen.headers.get("x-goog-api-key") != KEY and "x-goog-api-key",
        "authorization" in {k.lower() for k in seen.headers} and "an Authorization header",
    ]
    body: Any = seen.body
    if not isinstance(body, dict) or set(body) - TOP or "contents" not in body:
        problems.append(f"top-level keys {body if not isinstance(body, dict) else set(body)}")
    else:
        problems += _contents_problems(body["contents"])
        for tool in body.get("tools", []):
            for declaration in tool["functionDeclarations"]:
                schema = declaration.get("parametersJsonSchema")
                if (
                    "parameters" in declaration
                    or not isinstance(schema, dict)
                    or "$schema" in schema
                ):
                    problems.append(f"a declaration Gemini refuses: {declaration}")
    found = [p for p in problems if p]
    return "; ".join(found) if found else None


def _contents_problems(contents: list[dict[str, Any]]) -> list[str]:
    problems, called = [], []
    for turn in contents:
        if turn.get("role") not in ("user", "model") or not turn.get("parts"):
            problems.append(f"turn {turn}")
            continue
        for part in turn["parts"]:
            keys = set(part) - {"thoughtSignature"}
            if len(keys) != 1 or not keys <= PART_KEYS:
                problems.append(f"part {part}")
            if "functionCall" in part:
                called.append(part["functionCall"]["name"])
            if "functionResponse" in part and part["functionResponse"]["name"] not in called:
                problems.append(f"a functionResponse for no call: {part}")
    return problems


def _answer(parts: list[dict[str, Any]], finish: str = "STOP") -> dict[str, Any]:
    return {
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": finish}],
        "usageMetadata": {
            "promptTokenCount": 20,
            "candidatesTokenCount": 4,
            "cachedContentTokenCount": 5,
        },
        "modelVersion": MODEL,
    }


def gemini(seen: Seen) -> Reply:
    refusal = _refusal(seen)
    if refusal:
        return Reply(
            status=400,
            json={"error": {"code": 400, "message": refusal, "status": "INVALID_ARGUMENT"}},
        )
    body: Any = seen.body
    last = body["contents"][-1]["parts"]
    parts: list[dict[str, Any]]
    if body.get("tools") and not any("functionResponse" in p for p in last):
        parts = [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]
    elif any("functionResponse" in p for p in last):
        weather = next(p for p in last if "functionResponse" in p)["functionResponse"]
        parts = [{"text": f"It is {weather['response']['content']}."}]
    else:
        parts = [{"text": "Hello from Gemini."}]
    if not seen.path.endswith(":streamGenerateContent"):
        return Reply(json=_answer(parts))
    chunks: list[Any] = []
    if "text" in parts[0]:
        text = parts[0]["text"]
        chunks += [
            {"candidates": [{"content": {"role": "model", "parts": [{"text": t}]}}]}
            for t in (text[:5], text[5:])
        ]
    else:
        chunks.append({"candidates": [{"content": {"role": "model", "parts": parts}}]})
    chunks.append(_answer([], "STOP"))
    return Reply(sse=chunks)


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedUpstream]:
    yield from serving(gemini)


@pytest.fixture(scope="module")
def client(
    upstream: ScriptedUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[anthropic.Anthropic]:
    path, port = provider_copy("gemini-native", tmp_path_factory.mktemp("gemini"))
    folder = path.parent
    env = {
        "GEMINI_NATIVE_BASE_URL": upstream.url,
        "GEMINI_API_KEY": KEY,
        "MULTIPORT_CACHE_DIR": str(folder.parent),
    }
    gateway = Gateway([str(folder)], env, [port], folder.parent)
    with anthropic.Anthropic(base_url=gateway.url(), api_key="unused", max_retries=0) as sdk:
        yield sdk
    log = gateway.stop()
    assert "Traceback" not in log


def _text(message: anthropic.types.Message) -> str:
    block = message.content[-1]
    assert isinstance(block, anthropic.types.TextBlock)
    return block.text


ASK: dict[str, Any] = {
    "model": "claude-opus-5-5",
    "max_tokens": 256,
    "system": "Answer in one sentence.",
    "messages": [{"role": "user", "content": "Say hello"}],
}


def test_a_plain_answer(client: anthropic.Anthropic, upstream: ScriptedUpstream) -> None:
    message = client.messages.create(**ASK)
    assert _text(message) == "Hello from Gemini."
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == 15  # cached tokens are not input
    assert message.usage.cache_read_input_tokens == 5
    sent = upstream.seen[-1].body
    assert sent["systemInstruction"] == {"parts": [{"text": "Answer in one sentence."}]}
    assert sent["generationConfig"] == {"maxOutputTokens": 256}


def test_a_streamed_answer(client: anthropic.Anthropic) -> None:
    with client.messages.stream(**ASK) as stream:
        message = stream.get_final_message()
    assert _text(message) == "Hello from Gemini."
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 4


@pytest.mark.parametrize("streamed", [False, True])
def test_a_tool_round_trip(
    client: anthropic.Anthropic, upstream: ScriptedUpstream, streamed: bool
) -> None:
    ask = {**ASK, "tools": TOOLS, "messages": [{"role": "user", "content": "Weather in Paris?"}]}
    if streamed:
        with client.messages.stream(**ask) as stream:
            first = stream.get_final_message()
    else:
        first = client.messages.create(**ask)
    assert first.stop_reason == "tool_use"
    declaration = upstream.seen[-1].body["tools"][0]["functionDeclarations"][0]
    assert declaration["parametersJsonSchema"]["properties"]["city"]["format"] == "uri"
    assert declaration["parametersJsonSchema"]["additionalProperties"] is False
    call = first.content[-1]
    assert isinstance(call, anthropic.types.ToolUseBlock)
    assert (call.name, call.input) == ("get_weather", {"city": "Paris"})
    turn: list[anthropic.types.MessageParam] = [
        *ask["messages"],
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": call.id, "name": call.name, "input": call.input}
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}],
        },
    ]
    second = client.messages.create(**{**ask, "messages": turn})
    assert _text(second) == "It is sunny."
    contents = upstream.seen[-1].body["contents"]
    assert contents[1]["parts"][0]["functionCall"] == {
        "name": "get_weather",
        "args": {"city": "Paris"},
    }
    assert contents[2]["parts"] == [
        {"functionResponse": {"name": "get_weather", "response": {"content": "sunny"}}}
    ]
    assert not upstream.refused
