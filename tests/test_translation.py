"""Anthropic → upstream request translation: golden files and the translation rules."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import msgspec
import pytest

from multiport.anthropic_wire import decode_messages
from multiport.compile import load_providers
from multiport.errors import InvalidRequest
from multiport.provider import Provider
from multiport.render import render_request

from .conftest import DATA, PROVIDERS_DIR
from .openai_strict import check_openai_request

GOLDEN = DATA / "golden"
FIXTURES = sorted(
    p.name for p in (DATA / "claude-code").glob("*.json") if "count-tokens" not in p.name
)
UPDATE = os.environ.get("MULTIPORT_UPDATE_GOLDEN") == "1"


def _providers() -> dict[str, Provider]:
    result = load_providers([str(PROVIDERS_DIR)], {})
    return {p.name: p for p in result.providers}


PROVIDERS = _providers()
OPENAI_STYLE = sorted(name for name, p in PROVIDERS.items() if p.wire.dialect == "openai-chat")


def render(
    provider: Provider, body: dict[str, Any], target: str = "target-model"
) -> dict[str, Any]:
    request = decode_messages(msgspec.json.encode(body))
    rendered = render_request(provider, request, target, stream=request.stream)
    sent: dict[str, Any] = msgspec.json.decode(rendered.body)
    return sent


@pytest.mark.parametrize("fixture", FIXTURES)
@pytest.mark.parametrize("name", OPENAI_STYLE)
def test_claude_code_fixture_golden(name: str, fixture: str) -> None:
    body = json.loads((DATA / "claude-code" / fixture).read_text())["body"]
    rendered = render(PROVIDERS[name], body)
    extra = (
        frozenset({"cache_control"}) if PROVIDERS[name].spec.options.cache_control else frozenset()
    )
    check_openai_request(rendered, extra_part_keys=extra)
    golden = GOLDEN / name / fixture
    if UPDATE:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(json.dumps(rendered, indent=1, ensure_ascii=False) + "\n")
    assert golden.exists(), (
        f"missing golden file {golden}: run with MULTIPORT_UPDATE_GOLDEN=1 and review it"
    )
    assert rendered == json.loads(golden.read_text())


def test_goldens_carry_the_rules() -> None:
    rendered = json.loads((GOLDEN / "openai" / "03-tool-roundtrip-turn2.json").read_text())
    messages = rendered["messages"]
    assert messages[0]["role"] == "system"
    assert "lorem" in messages[0]["content"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool"]
    assert messages[3]["content"] == "1\tThe secret word is banana.\n2\t"
    assert messages[2]["tool_calls"][0]["function"]["name"] == "Read"
    assert {"thinking", "context_management", "output_config", "metadata", "system"}.isdisjoint(
        rendered
    )
    assert "defer_loading" not in json.dumps(rendered)
    gemini = json.loads((GOLDEN / "gemini" / "03-tool-roundtrip-turn2.json").read_text())
    assert "$schema" not in json.dumps(gemini)
    assert "additionalProperties" not in json.dumps(gemini)
    assert gemini["reasoning_effort"] == "medium"


def _body(**extra: Any) -> dict[str, Any]:
    return {
        "model": "claude-sonnet-5-5",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
        **extra,
    }


def test_system_message_inside_messages_is_hoisted() -> None:
    body = _body(
        system=[{"type": "text", "text": "A", "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": "q"}, {"role": "system", "content": "B"}],
    )
    out = render(PROVIDERS["openai"], body)
    assert out["messages"] == [
        {"role": "system", "content": "A\n\nB"},
        {"role": "user", "content": "q"},
    ]


def test_tool_results_go_right_after_calls_and_orphans_become_text() -> None:
    body = _body(
        messages=[
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "t1", "name": "a", "input": {}},
                    {"type": "tool_use", "id": "t2", "name": "b", "input": {"x": 1}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "and also"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "t2",
                        "content": [{"type": "text", "text": "two"}],
                        "is_error": True,
                    },
                    {"type": "tool_result", "tool_use_id": "ghost", "content": "boo"},
                ],
            },
        ]
    )
    out = render(PROVIDERS["openai"], body)
    check_openai_request(out)
    roles = [m["role"] for m in out["messages"]]
    assert roles == ["user", "assistant", "tool", "tool", "user"]
    assert out["messages"][2] == {"role": "tool", "tool_call_id": "t2", "content": "Error: two"}
    assert out["messages"][3]["tool_call_id"] == "t1"  # a call without result gets one
    assert "ghost" in out["messages"][4]["content"]
    assert "boo" in out["messages"][4]["content"]


def _with_options(provider: Provider, **options: Any) -> Provider:
    spec = provider.spec
    new = msgspec.structs.replace(spec, options=msgspec.structs.replace(spec.options, **options))
    return dataclasses.replace(provider, spec=new)


def test_server_tools_are_refused_by_default_naming_the_tool_and_the_option() -> None:
    tools = [
        {"name": "a", "description": "d", "input_schema": {"type": "object"}},
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
    ]
    with pytest.raises(InvalidRequest) as caught:
        render(PROVIDERS["openai"], _body(tools=tools))
    assert caught.value.status_code == 400
    assert "'web_search'" in caught.value.message
    assert "options.server_tools: drop" in caught.value.message
    assert "$.tools[1]" in caught.value.message


def test_tool_choice_and_parallel_and_dropped_server_tools() -> None:
    tools = [
        {"name": "a", "description": "d", "input_schema": {"type": "object"}},
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
    ]
    dropping = _with_options(PROVIDERS["openai"], server_tools="drop")
    out = render(
        dropping,
        _body(
            tools=tools,
            tool_choice={"type": "tool", "name": "a", "disable_parallel_tool_use": True},
        ),
    )
    assert [t["function"]["name"] for t in out["tools"]] == ["a"]
    assert out["tool_choice"] == {"type": "function", "function": {"name": "a"}}
    assert out["parallel_tool_calls"] is False
    dropped = render(
        dropping, _body(tools=tools, tool_choice={"type": "tool", "name": "web_search"})
    )
    assert "tool_choice" not in dropped
    none = render(dropping, _body(tools=tools, tool_choice={"type": "none"}))
    assert none["tool_choice"] == "none"


def test_long_tool_names_are_shortened_consistently() -> None:
    name = "mcp__" + "very_long_server_name__" * 4
    tools = [{"name": name, "description": "", "input_schema": {"type": "object"}}]
    messages = [
        {"role": "user", "content": "x"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t", "name": name, "input": {}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "ok"}]},
    ]
    out = render(PROVIDERS["openai"], _body(tools=tools, messages=messages))
    short = out["tools"][0]["function"]["name"]
    assert len(short) <= 64
    assert out["messages"][1]["tool_calls"][0]["function"]["name"] == short


def test_sampling_fields_and_dropped_fields() -> None:
    out = render(
        PROVIDERS["openai"],
        _body(
            temperature=0.2,
            top_p=0.9,
            top_k=5,
            stop_sequences=["END"],
            metadata={"user_id": "u1"},
            thinking={"type": "enabled", "budget_tokens": 2000},
        ),
    )
    assert (out["temperature"], out["top_p"], out["stop"]) == (0.2, 0.9, ["END"])
    many = render(PROVIDERS["openai"], _body(stop_sequences=["a", "b", "c", "d", "e"]))
    assert many["stop"] == ["a", "b", "c", "d"]
    assert "top_k" not in out
    assert "user" not in out
    assert "reasoning_effort" not in out
    openrouter = render(PROVIDERS["openrouter"], _body(top_k=5))
    assert openrouter["top_k"] == 5


def test_max_completion_tokens_for_reasoning_models() -> None:
    assert "max_completion_tokens" in render(PROVIDERS["openai"], _body(), target="o3-mini")
    assert "max_tokens" in render(PROVIDERS["openai"], _body(), target="gpt-4.1")
    assert render(PROVIDERS["deepseek"], _body(max_tokens=128000))["max_tokens"] == 8192


def test_llamacpp_empty_assistant_content_and_joined_text() -> None:
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "r"}]},
    ]
    out = render(PROVIDERS["llamacpp"], _body(messages=messages, stream=True))
    assert out["messages"][0]["content"] == "a\n\nb"
    assert out["messages"][1]["content"] == ""
    assert "stream_options" not in out


def test_openrouter_keeps_cache_control() -> None:
    body = _body(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "big", "cache_control": {"type": "ephemeral"}}
                ],
            }
        ]
    )
    assert render(PROVIDERS["openrouter"], body)["messages"][0]["content"][0]["cache_control"] == {
        "type": "ephemeral"
    }
    assert render(PROVIDERS["openai"], body)["messages"][0]["content"] == "big"


def test_schema_stripping_keeps_property_names() -> None:
    schema = {
        "$schema": "x",
        "type": "object",
        "additionalProperties": False,
        "properties": {"const": {"type": "string", "const": "a"}},
    }
    out = render(
        PROVIDERS["gemini"], _body(tools=[{"name": "f", "description": "", "input_schema": schema}])
    )
    assert out["tools"][0]["function"]["parameters"] == {
        "type": "object",
        "properties": {"const": {"type": "string"}},
    }


def test_documents_flattened_or_refused(tmp_path: Path) -> None:
    doc = {
        "type": "document",
        "source": {"type": "text", "media_type": "text/plain", "data": "file body"},
        "title": "notes.txt",
    }
    out = render(
        PROVIDERS["openai"],
        _body(messages=[{"role": "user", "content": [doc, {"type": "text", "text": "sum up"}]}]),
    )
    assert out["messages"][0]["content"] == "notes.txt\n\nfile body\n\nsum up"
    from multiport.errors import InvalidRequest

    pdf = {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
    }
    with pytest.raises(InvalidRequest, match="cannot read 'base64' documents"):
        render(PROVIDERS["openai"], _body(messages=[{"role": "user", "content": [pdf]}]))


def test_output_limits_by_model() -> None:
    openai = PROVIDERS["openai"]
    assert render(openai, _body(max_tokens=128000), target="gpt-4.1")["max_tokens"] == 32768
    assert render(openai, _body(max_tokens=128000), target="gpt-4o-mini")["max_tokens"] == 16384
    assert render(openai, _body(max_tokens=128000), target="o3")["max_completion_tokens"] == 100000
    assert render(openai, _body(max_tokens=100), target="gpt-4.1")["max_tokens"] == 100
    assert openai.output_limit("gpt-4.1", 9000) == 9000  # the catalog's limit wins
