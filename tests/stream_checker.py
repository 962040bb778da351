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


_STOP_REASONS = ("end_turn", "max_tokens", "tool_use", "stop_sequence", "refusal", "pause_turn")
_USAGE_KEYS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
)


class _Blocks:
    """Content blocks rebuilt from the events, checking each against the open block."""

    def __init__(self) -> None:
        self.content: list[dict[str, Any]] = []
        self.open_index: int | None = None
        self.closed: set[int] = set()
        self.partial: dict[int, str] = {}
        self.ids: set[str] = set()

    def start(self, data: dict[str, Any]) -> None:
        assert self.open_index is None, (
            f"block {data['index']} opened while {self.open_index} is open"
        )
        assert data["index"] == len(self.content), f"index {data['index']} out of order"
        block = dict(data["content_block"])
        if block["type"] == "tool_use":
            assert _TOOL_ID.match(block["id"]), block["id"]
            assert block["id"] not in self.ids, "duplicate tool id"
            self.ids.add(block["id"])
            assert block["input"] == {}
            self.partial[data["index"]] = ""
        self.content.append(block)
        self.open_index = data["index"]

    def delta(self, data: dict[str, Any]) -> None:
        index = data["index"]
        assert index == self.open_index, f"delta into block {index} that is not open"
        assert index not in self.closed, f"delta into block {index} after its stop"
        delta = data["delta"]
        block = self.content[index]
        kind = delta["type"]
        if kind == "text_delta":
            assert block["type"] == "text"
            assert delta["text"], "empty text delta"
            block["text"] += delta["text"]
        elif kind == "input_json_delta":
            assert block["type"] == "tool_use"
            self.partial[index] += delta["partial_json"]
        elif kind == "thinking_delta":
            assert block["type"] == "thinking"
            block["thinking"] += delta["thinking"]
        else:
            assert kind == "signature_delta", f"unknown delta {kind}"
            assert block["type"] == "thinking"

    def stop(self, data: dict[str, Any]) -> None:
        assert data["index"] == self.open_index, "stop of a block that is not open"
        self.closed.add(data["index"])
        self.open_index = None

    def finished(self) -> list[dict[str, Any]]:
        for index, text in self.partial.items():
            self.content[index]["input"] = json.loads(text) if text else {}
        for block in self.content:
            if block["type"] == "text":
                assert block["text"], "empty text block"
        return self.content


def _check_order(names: list[str], expect_error: bool) -> None:
    assert names, "empty stream"
    assert names[0] == "message_start", names
    if expect_error:
        assert names[-1] == "error", names
        assert "message_stop" not in names, "an error stream must not also stop normally"
        assert names.count("error") == 1
        return
    assert "error" not in names, names
    assert names[-1] == "message_stop", names
    assert names[-2] == "message_delta", names
    assert names.count("message_start") == 1
    assert names.count("message_delta") == 1


def check_stream(
    events: list[tuple[str, dict[str, Any]]], *, expect_error: bool = False
) -> dict[str, Any]:
    """Assert the invariants; return the message the events build."""
    names = [n for n, _ in events if n != "ping"]
    _check_order(names, expect_error)
    if expect_error:
        return {}
    start = events[0][1]["message"]
    assert start["id"].startswith("msg_")
    for key in _USAGE_KEYS:
        assert isinstance(start["usage"][key], int), key
    blocks = _Blocks()
    handlers = {
        "content_block_start": blocks.start,
        "content_block_delta": blocks.delta,
        "content_block_stop": blocks.stop,
    }
    for name, data in events:
        if name in handlers:
            handlers[name](data)
        elif name == "message_delta":
            assert blocks.open_index is None, "message_delta with a block still open"
            assert data["delta"]["stop_reason"] in _STOP_REASONS
            assert isinstance(data["usage"]["output_tokens"], int)
    content = blocks.finished()
    delta = next(d for n, d in events if n == "message_delta")
    if any(b["type"] == "tool_use" for b in content):
        assert delta["delta"]["stop_reason"] == "tool_use"
    return {
        "content": content,
        "stop_reason": delta["delta"]["stop_reason"],
        "usage": delta["usage"],
        "model": start["model"],
    }
