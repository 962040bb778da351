"""The Anthropic Messages request as multiport reads it: only the fields it uses.

Fields a client adds that are not listed here are tolerated; wrong types are a 400 that
names the field's `$.path`.
"""

from __future__ import annotations

from typing import Any

import msgspec

from .errors import InvalidRequest

__all__ = ["CountTokensRequest", "Message", "MessagesRequest", "decode_count", "decode_messages"]

Block = dict[str, Any]


class Message(msgspec.Struct):
    role: str
    content: str | list[Block]


class MessagesRequest(msgspec.Struct):
    model: str
    max_tokens: int
    messages: list[Message]
    system: str | list[Block] | None = None
    tools: list[Block] | None = None
    tool_choice: Block | None = None
    stream: bool = False
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop_sequences: list[str] | None = None
    metadata: Block | None = None
    thinking: Block | None = None
    output_config: Block | None = None


class CountTokensRequest(msgspec.Struct):
    model: str
    messages: list[Message]
    system: str | list[Block] | None = None
    tools: list[Block] | None = None


_messages_decoder = msgspec.json.Decoder(MessagesRequest)
_count_decoder = msgspec.json.Decoder(CountTokensRequest)
_ROLES = frozenset({"user", "assistant", "system"})


def _decode(decoder: msgspec.json.Decoder[Any], body: bytes) -> Any:
    if not body.strip():
        raise InvalidRequest("the request body is empty; send a JSON Messages request")
    try:
        request = decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"invalid request: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"the request body is not valid JSON: {exc}") from exc
    for i, message in enumerate(request.messages):
        if message.role not in _ROLES:
            raise InvalidRequest(
                f"invalid request: role must be `user` or `assistant`, got "
                f"{message.role!r} - at `$.messages[{i}].role`"
            )
    return request


def decode_messages(body: bytes) -> MessagesRequest:
    """Decode and check a `POST /v1/messages` body."""
    request: MessagesRequest = _decode(_messages_decoder, body)
    if request.max_tokens < 1:
        raise InvalidRequest("invalid request: max_tokens must be at least 1 - at `$.max_tokens`")
    if not request.messages:
        raise InvalidRequest("invalid request: messages must not be empty - at `$.messages`")
    return request


def decode_count(body: bytes) -> CountTokensRequest:
    """Decode and check a `POST /v1/messages/count_tokens` body."""
    request: CountTokensRequest = _decode(_count_decoder, body)
    return request
