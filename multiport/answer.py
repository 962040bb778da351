"""The Anthropic message built from what a response template rendered."""

from __future__ import annotations

from typing import Any

import msgspec

from .errors import TemplateRenderError, UpstreamProtocolError
from .normalize import ToolNames, safe_tool_id
from .streaming import new_message_id

__all__ = ["build_message", "replay_stream_events"]

_decode = msgspec.json.decode


def build_message(
    rendered: Any, *, model: str, tool_names: ToolNames, input_estimate: int
) -> dict[str, Any]:
    """Complete a rendered answer into an Anthropic message, enforcing its invariants.

    A template that renders an `error` says the upstream failed: never a success.
    """
    if isinstance(rendered, dict) and rendered.get("error"):
        error = rendered["error"]
        message = error.get("message") if isinstance(error, dict) else error
        raise UpstreamProtocolError(f"the upstream answer is an error: {message}")
    if not isinstance(rendered, dict) or not isinstance(rendered.get("content"), list):
        raise TemplateRenderError(
            "the response template must render an object with a `content` list"
        )
    content: list[dict[str, Any]] = []
    ids: set[str] = set()
    for block in rendered["content"]:
        kind = block.get("type")
        if kind == "tool_use":
            tool_input = block.get("input")
            if tool_input is None:
                tool_input = _arguments(block.get("arguments"))
            content.append(
                {
                    "type": "tool_use",
                    "id": safe_tool_id(
                        block.get("id") or f"toolu_{len(ids):04d}_{new_message_id()[4:16]}",
                        ids,
                        len(ids),
                    ),
                    "name": tool_names.client(str(block.get("name") or "")),
                    "input": tool_input,
                }
            )
        elif kind == "text" and block.get("text"):
            content.append({"type": "text", "text": block["text"]})
        elif kind == "thinking" and block.get("thinking"):
            content.append(
                {
                    "type": "thinking",
                    "thinking": block["thinking"],
                    "signature": block.get("signature") or "",
                }
            )
    stop_reason = rendered.get("stop_reason") or "end_turn"
    if any(b["type"] == "tool_use" for b in content):
        stop_reason = "tool_use"  # whatever finish_reason said (Gemini and Ollama say stop)
    elif stop_reason == "tool_use":
        stop_reason = "end_turn"  # "tool_calls" without a call: nothing for the client to run
    usage = rendered.get("usage") or {}
    return {
        "id": new_message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": int(usage.get("input_tokens") or input_estimate),
            "output_tokens": int(usage.get("output_tokens") or 0),
            "cache_creation_input_tokens": int(usage.get("cache_creation_input_tokens") or 0),
            "cache_read_input_tokens": int(usage.get("cache_read_input_tokens") or 0),
        },
    }


def _arguments(raw: Any) -> Any:
    if isinstance(raw, dict):
        return raw
    if not raw:
        return {}
    try:
        value = _decode(raw)
    except (msgspec.DecodeError, TypeError):
        return {"_raw_arguments": str(raw)}
    return value if isinstance(value, dict) else {"value": value}


def replay_stream_events(message: dict[str, Any]) -> list[dict[str, Any]]:
    """Neutral stream events that replay a complete message (for upstreams that cannot stream)."""
    events: list[dict[str, Any]] = []
    for i, block in enumerate(message["content"]):
        if block["type"] == "text":
            events.append({"text": block["text"]})
        elif block["type"] == "thinking":
            events.append({"thinking": block["thinking"]})
        elif block["type"] == "tool_use":
            arguments = msgspec.json.encode(block["input"]).decode()
            events.append(
                {
                    "tool_calls": [
                        {
                            "index": i,
                            "id": block["id"],
                            "name": block["name"],
                            "arguments": arguments,
                        }
                    ]
                }
            )
    events.append({"stop_reason": message["stop_reason"], "usage": message["usage"]})
    return events
