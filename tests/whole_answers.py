"""A recorded stream folded back into the complete answer the same upstream would give.

OpenAI and Ollama answer a non-streaming request with what their chunks add up to; this
is that sum, written from their formats, to check that a streamed and a complete answer
translate the same.
"""

from __future__ import annotations

import json
from typing import Any

from multiport.framing import LineFramer


def payloads(raw: bytes, framing: str) -> list[bytes]:
    framer = LineFramer(framing)
    return [*framer.feed(raw), *framer.close()]


def _compact(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


class _OpenAICalls:
    def __init__(self, snapshots: bool) -> None:
        self.snapshots = snapshots
        self.calls: list[dict[str, Any]] = []
        self.by_index: dict[int, dict[str, Any]] = {}

    def add(self, position: int, piece: dict[str, Any]) -> None:
        function = piece.get("function") or {}
        index = piece.get("index", position)
        call = self.by_index.get(index)
        new_id = piece.get("id") and call and call["id"] and piece["id"] != call["id"]
        if call is None or (function.get("name") and new_id):
            call = {
                "id": piece.get("id"),
                "type": "function",
                "function": {"name": None, "arguments": ""},
            }
            self.by_index[index] = call
            self.calls.append(call)
        call["id"] = call["id"] or piece.get("id")
        call["function"]["name"] = call["function"]["name"] or function.get("name")
        arguments = function.get("arguments")
        if arguments:
            so_far = call["function"]["arguments"]
            text = _compact(arguments)
            replace = self.snapshots and text.startswith(so_far)
            call["function"]["arguments"] = text if replace else so_far + text


def openai_whole(raw: bytes, *, snapshots: bool = False) -> dict[str, Any]:
    text, reasoning = [], []
    calls = _OpenAICalls(snapshots)
    finish, usage = None, None
    for payload in payloads(raw, "sse"):
        if payload.strip() == b"[DONE]":
            break
        chunk = json.loads(payload)
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            text.append(delta.get("content") or "")
            reasoning.append(delta.get("reasoning_content") or delta.get("reasoning") or "")
            for position, piece in enumerate(delta.get("tool_calls") or []):
                calls.add(position, piece)
            finish = choice.get("finish_reason") or finish
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) or None}
    if "".join(reasoning):
        message["reasoning_content"] = "".join(reasoning)
    named = [c for c in calls.calls if c["function"]["name"]]
    if named:
        message["tool_calls"] = named
    answer: dict[str, Any] = {
        "choices": [{"index": 0, "message": message, "finish_reason": finish}]
    }
    if usage:
        answer["usage"] = usage
    return answer


def ollama_whole(raw: bytes) -> dict[str, Any]:
    text: list[str] = []
    thinking: list[str] = []
    calls: list[dict[str, Any]] = []
    last: dict[str, Any] = {}
    for payload in payloads(raw, "ndjson"):
        line = json.loads(payload)
        message = line.get("message") or {}
        text.append(message.get("content") or "")
        thinking.append(message.get("thinking") or "")
        calls.extend(message.get("tool_calls") or [])
        if line.get("done"):
            last = line
            break
    whole = {k: v for k, v in last.items() if k != "message"}
    whole["message"] = {"role": "assistant", "content": "".join(text), "tool_calls": calls}
    if "".join(thinking):
        whole["message"]["thinking"] = "".join(thinking)
    return whole
