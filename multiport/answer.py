"""Complete answers: a rendered answer runs through the stream state machine, then folds.

A response template's `RenderedAnswer` becomes the same neutral events a stream would
give, so `StreamState` applies the one set of rules; `fold` turns the resulting message
events into the Anthropic message a non-streaming client receives.
"""

from __future__ import annotations

from typing import Any

import msgspec

from .blocks import Event
from .contracts import AnswerText, AnswerThinking, RenderedAnswer, StreamEvent, ToolCallDelta
from .errors import UpstreamError
from .streaming import StreamState

__all__ = ["answer_events", "fold", "message_events"]

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.decode


def answer_events(answer: RenderedAnswer) -> list[StreamEvent]:
    """The neutral events that stream `answer`; an `error` is never a success."""
    if answer.error is not None:
        raise UpstreamError(f"the upstream answered an error: {answer.error.message}")
    events: list[StreamEvent] = []
    for block in answer.content:
        if isinstance(block, AnswerText):
            events.append(StreamEvent(text=block.text))
        elif isinstance(block, AnswerThinking):
            events.append(StreamEvent(thinking=block.thinking))
        else:
            arguments = block.input if block.input is not None else block.arguments
            piece = ToolCallDelta(id=block.id, name=block.name, arguments=arguments, complete=True)
            events.append(StreamEvent(tool_calls=[piece]))
    events.append(StreamEvent(stop_reason=answer.stop_reason or "end_turn", usage=answer.usage))
    return events


def message_events(state: StreamState, answer: RenderedAnswer) -> list[Event]:
    """Every message event of a complete answer, `message_start` to `message_stop`."""
    out = [state.start()]
    for event in answer_events(answer):
        out.extend(state.feed(event))
    out.extend(state.finish())
    return out


def fold(events: list[Event]) -> dict[str, Any]:
    """The Anthropic message that a sequence of message events builds."""
    message: dict[str, Any] = {}
    content: list[dict[str, Any]] = []
    partial: dict[int, list[str]] = {}
    for event in events:
        kind = event["type"]
        if kind == "message_start":
            message = dict(event["message"])
        elif kind == "content_block_start":
            content.append(dict(event["content_block"]))
        elif kind == "content_block_delta":
            _apply(content[-1], event["delta"], partial.setdefault(event["index"], []))
        elif kind == "content_block_stop":
            block = content[-1]
            if block["type"] == "tool_use":
                block["input"] = _arguments("".join(partial.pop(event["index"], [])))
        elif kind == "message_delta":
            message.update(event["delta"])
            message["usage"] = event["usage"]
    message["content"] = content
    return message


def _apply(block: dict[str, Any], delta: dict[str, Any], partial: list[str]) -> None:
    kind = delta["type"]
    if kind == "text_delta":
        block["text"] += delta["text"]
    elif kind == "thinking_delta":
        block["thinking"] += delta["thinking"]
    elif kind == "signature_delta":
        block["signature"] += delta["signature"]
    elif kind == "input_json_delta":
        partial.append(delta["partial_json"])


def _arguments(raw: str) -> Any:
    # The state machine let only a JSON object (or nothing) through.
    return _decode(raw) if raw.strip() else {}
