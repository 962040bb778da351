"""One checker for the Anthropic event-order invariants (docs/templates.md), used by every
streaming test."""

from __future__ import annotations

import json
import re
from typing import Any

_TOOL_ID = re.compile(r"^[a-zA-Z0-9_-]+$")


def parse_sse(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """Split an SSE byte stream into (event, data) pairs; checks the frame format."""
    events = []
    for frame in raw.decode("utf-8").split("\n\n"):
        if not frame.strip():
            continue
        lines = frame.split("\n")
        assert lines[0].startswith("event: "), f"frame without event line: {frame!r}"
        assert lines[1].startswith("data: "), f"frame without data line: {frame!r}"
        name = lines[0][len("event: ") :]
        data = json.loads(lines[1][len("data: ") :])
        assert data["type"] == name, f"event {name} carries type {data['type']}"
        events.append((name, data))
    return events


def check_stream(
    events: list[tuple[str, dict[str, Any]]], *, expect_error: bool = False
) -> dict[str, Any]:
    """Assert the invariants; return the message the events build."""
    names = [n for n, _ in events if n != "ping"]
    assert names, "empty stream"
    assert names[0] == "message_start", names
    if expect_error:
        assert names[-1] == "error", names
        assert "message_stop" not in names, "an error stream must not also stop normally"
        assert names.count("error") == 1
        return {}
    assert "error" not in names, [d for n, d in events if n == "error"]
    assert names[-1] == "message_stop", names
    assert names[-2] == "message_delta", names
    assert names.count("message_start") == 1
    assert names.count("message_delta") == 1
    start = events[0][1]["message"]
    assert start["id"].startswith("msg_")
    for key in (
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
    ):
        assert isinstance(start["usage"][key], int), key
    content: list[dict[str, Any]] = []
    open_index: int | None = None
    closed: set[int] = set()
    partial: dict[int, str] = {}
    ids: set[str] = set()
    for name, data in events:
        if name == "content_block_start":
            assert open_index is None, f"block {data['index']} opened while {open_index} is open"
            assert data["index"] == len(content), f"index {data['index']} out of order"
            block = dict(data["content_block"])
            if block["type"] == "tool_use":
                assert _TOOL_ID.match(block["id"]), block["id"]
                assert block["id"] not in ids, "duplicate tool id"
                ids.add(block["id"])
                assert block["input"] == {}
                partial[data["index"]] = ""
            content.append(block)
            open_index = data["index"]
        elif name == "content_block_delta":
            index = data["index"]
            assert index == open_index, f"delta into block {index} that is not open"
            assert index not in closed, f"delta into block {index} after its stop"
            delta = data["delta"]
            block = content[index]
            if delta["type"] == "text_delta":
                assert block["type"] == "text"
                assert delta["text"], "empty text delta"
                block["text"] += delta["text"]
            elif delta["type"] == "input_json_delta":
                assert block["type"] == "tool_use"
                partial[index] += delta["partial_json"]
            elif delta["type"] == "thinking_delta":
                assert block["type"] == "thinking"
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                assert block["type"] == "thinking"
            else:
                raise AssertionError(f"unknown delta {delta['type']}")
        elif name == "content_block_stop":
            assert data["index"] == open_index, "stop of a block that is not open"
            closed.add(open_index)
            open_index = None
        elif name == "message_delta":
            assert open_index is None, "message_delta with a block still open"
            assert data["delta"]["stop_reason"] in (
                "end_turn",
                "max_tokens",
                "tool_use",
                "stop_sequence",
                "refusal",
                "pause_turn",
            )
            for key in ("output_tokens",):
                assert isinstance(data["usage"][key], int)
    for index, text in partial.items():
        content[index]["input"] = json.loads(text) if text else {}
    for block in content:
        if block["type"] == "text":
            assert block["text"], "empty text block"
    delta = next(d for n, d in events if n == "message_delta")
    if any(b["type"] == "tool_use" for b in content):
        assert delta["delta"]["stop_reason"] == "tool_use"
    assert events[-1][0] == "message_stop", "nothing may follow message_stop"
    return {
        "content": content,
        "stop_reason": delta["delta"]["stop_reason"],
        "usage": delta["usage"],
        "model": start["model"],
    }
