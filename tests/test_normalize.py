"""Requests reach the upstream in a shape it accepts: pairing, images, thinking, tools."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import respx
from litestar.testing import TestClient

from multiport.app import create_app

from .apps import (
    TOOLS,
    answer_ok,
    ask,
    provider,
    sent_body,
)
from .openai_strict import check_openai_request


def test_a_call_left_unanswered_before_another_assistant_turn_is_answered(
    client: TestClient[Any], respx_mock: respx.MockRouter
) -> None:
    answer_ok(respx_mock)
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
    sent = sent_body(respx_mock)
    check_openai_request(sent)
    roles = [m["role"] for m in sent["messages"]]
    assert roles == ["user", "assistant", "tool", "assistant", "user"]
    assert sent["messages"][2]["content"].startswith("Error:")


def test_images_in_a_tool_result_reach_the_upstream(
    client: TestClient[Any], respx_mock: respx.MockRouter
) -> None:
    answer_ok(respx_mock)
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
    sent = sent_body(respx_mock)
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
    answer_ok(respx_mock)
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
        assert sent_body(respx_mock)["messages"][1].get("reasoning_content") == expected


def test_server_tools_are_refused_by_default_and_dropped_visibly_on_request(
    tmp_path: Path, respx_mock: respx.MockRouter
) -> None:
    tools = [*TOOLS, {"type": "web_search_20250305", "name": "web_search", "max_uses": 2}]
    with TestClient(create_app(provider(tmp_path), transport=httpx.AsyncHTTPTransport())) as client:
        refused = ask(client, tools=tools)
    assert refused.status_code == 400
    assert "web_search" in refused.json()["error"]["message"]
    answer_ok(respx_mock)
    dropping = provider(tmp_path, "options:\n  server_tools: drop\n")
    with TestClient(create_app(dropping, transport=httpx.AsyncHTTPTransport())) as client:
        dropped = ask(client, tools=tools)
    assert dropped.status_code == 200
    assert dropped.headers["multiport-dropped-tools"] == "web_search"
    assert [t["function"]["name"] for t in sent_body(respx_mock)["tools"]] == ["f"]


def test_twenty_thousand_repeated_tool_ids_stay_unique(
    client: TestClient[Any], respx_mock: respx.MockRouter
) -> None:
    answer_ok(respx_mock)
    n = 20_000
    calls = [{"type": "tool_use", "id": "same", "name": "f", "input": {}} for _ in range(n)]
    results = [{"type": "tool_result", "tool_use_id": "same", "content": "r"} for _ in range(n)]
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": calls},
        {"role": "user", "content": results},
    ]
    assert ask(client, messages=messages, tools=TOOLS).status_code == 200
    sent = sent_body(respx_mock)
    ids = [c["id"] for c in sent["messages"][1]["tool_calls"]]
    assert len(set(ids)) == n
    check_openai_request(sent)


def test_valid_request_shapes_are_accepted(
    client: TestClient[Any], respx_mock: respx.MockRouter
) -> None:
    answer_ok(respx_mock)
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
    sent = json.dumps(sent_body(respx_mock))
    assert sent.count("important fact") == 2


def test_a_dropped_tool_with_any_name_is_a_clean_header(
    tmp_path: Path, respx_mock: respx.MockRouter
) -> None:
    answer_ok(respx_mock)
    tools = [*TOOLS, {"type": "web_search_20250305", "name": "ツール\r\nx-evil: 1"}]
    dropping = provider(tmp_path, "options:\n  server_tools: drop\n")
    with TestClient(create_app(dropping, transport=httpx.AsyncHTTPTransport())) as client:
        response = ask(client, tools=tools)
    assert response.status_code == 200
    assert response.headers["multiport-dropped-tools"] == "?????x-evil: 1"
    assert "x-evil" not in {k.lower() for k in response.headers}
