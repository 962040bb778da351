"""A local token estimate: no network, no tokenizer download, never 0 for real input."""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["count_body", "estimate_tokens"]

_encode = msgspec.json.Encoder().encode
_IMAGE_TOKENS = 1600  # Anthropic's guidance for a ~1 megapixel image


def _count(node: Any) -> tuple[int, int]:
    """Characters of text and number of images under `node`."""
    if isinstance(node, str):
        return len(node), 0
    if isinstance(node, list):
        chars = images = 0
        for item in node:
            c, i = _count(item)
            chars, images = chars + c, images + i
        return chars, images
    if isinstance(node, dict):
        if node.get("type") == "image":
            return 0, 1
        chars = images = 0
        for key, value in node.items():
            if key in ("type", "cache_control", "id", "tool_use_id"):
                continue
            if key in ("input", "input_schema"):
                chars += len(_encode(value))
                continue
            c, i = _count(value)
            chars, images = chars + c, images + i
        return chars, images
    return 0, 0


def estimate_tokens(system: Any, messages: list[Any], tools: list[Any] | None) -> int:
    """About 3.5 characters a token for English and code, plus framing per message."""
    # Plain data keeps the block types (`image`) that the typed request holds as tags.
    chars, images = _count(msgspec.to_builtins([system, messages, tools or []]))
    framing = 4 * len(messages) + (10 if system else 0)
    return max(1, int(chars / 3.5) + images * _IMAGE_TOKENS + framing)


def count_body(body: bytes) -> int:
    """The estimate for a `count_tokens` body; malformed or too deep input is a 400."""
    from .anthropic_wire import decode_count
    from .errors import InvalidRequest

    request = decode_count(body)
    try:
        return estimate_tokens(request.system, request.messages, request.tools)
    except RecursionError as exc:
        raise InvalidRequest("invalid request: the request is nested too deeply") from exc
