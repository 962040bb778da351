"""Neutral stream events → the Anthropic message events, for streams and whole answers.

The one state machine behind every answer: a streamed answer is written as SSE frames of
these events, a complete answer is the same events folded into a message (`answer.py`),
so both obey the same rules. Invariants: one block open at a time, indexes in order,
nothing after the end, and an error instead of a fake `end_turn` when the upstream stops
before it said it finished. Stop reason and usage are decided in `outcome.py`.
"""

from __future__ import annotations

import secrets
from typing import Any

import msgspec

from .blocks import BlockWriter, Event
from .contracts import StopReason, StreamEvent, Usage
from .errors import UpstreamStreamError
from .outcome import final_stop_reason, final_usage
from .spec import ToolStreamSpec
from .toolcalls import Call, ToolCallAssembler
from .toolids import ToolNames

__all__ = ["StreamState", "encode_events", "new_message_id", "sse_frame"]

_encode = msgspec.json.Encoder().encode
_decode_json = msgspec.json.decode


def new_message_id() -> str:
    return "msg_" + secrets.token_hex(12)


def sse_frame(event: str, data: Any) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + _encode(data) + b"\n\n"


def encode_events(events: list[Event]) -> bytes:
    """SSE frames of message events."""
    return b"".join(sse_frame(e["type"], e) for e in events)


class StreamState:
    """Neutral events in, Anthropic message events out."""

    def __init__(
        self,
        model: str,
        tool_names: ToolNames,
        input_tokens: int = 0,
        keep_thinking: bool = True,
        tool_stream: ToolStreamSpec | None = None,
    ) -> None:
        self.model = model
        self.input_tokens = input_tokens
        self.keep_thinking = keep_thinking
        self.message_id = new_message_id()
        self.stop_reason: StopReason | None = None
        self.done = False
        self._usage: Usage | None = None
        self._tools = ToolCallAssembler(tool_stream or ToolStreamSpec(), tool_names)
        self._writer = BlockWriter()
        self._held: list[tuple[str, str]] = []  # text that came while a tool block was open
        self._generated = 0  # characters generated, for an output estimate

    def start(self) -> Event:
        usage = final_usage(None, self.input_tokens, 0)
        message: Event = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        return {"type": "message_start", "message": message}

    def feed(self, event: StreamEvent) -> list[Event]:
        """Events for one neutral event; raises `UpstreamStreamError` for an in-band error."""
        out: list[Event] = []
        if self.done:
            return out
        if event.error is not None:
            raise UpstreamStreamError(f"the upstream reported an error: {event.error.message}")
        if event.thinking and self.keep_thinking:
            self._content("thinking", event.thinking, out)
        if event.text:
            self._content("text", event.text, out)
        for position, piece in enumerate(event.tool_calls):
            call, added = self._tools.feed(piece, position)
            self._generated += added
            self._open_ready_tool(out)
            if self._writer.open_call is call:
                self._writer.arguments(out)
        if event.stop_reason is not None:
            self.stop_reason = event.stop_reason
        if event.usage is not None:
            self._usage = _merged(self._usage, event.usage)
        return out

    def finish(self) -> list[Event]:
        """Close the message; raises `UpstreamStreamError` if the upstream never finished."""
        if self.done:
            return []
        self.done = True
        if self.stop_reason is None:
            raise UpstreamStreamError("the upstream stream ended before it finished the message")
        out: list[Event] = []
        writer = self._writer
        writer.close(out)
        for call in self._tools.ready:
            writer.tool(call, out)
            writer.close(out)
        self._tools.ready.clear()
        for kind, text in self._held:
            writer.text(kind, text, out)
        writer.close(out)
        named = [c for c in self._tools.calls if c.name]
        for call in named:
            _check_arguments(call)
        has_tool_use = bool(named)
        delta = {
            "stop_reason": final_stop_reason(self.stop_reason, has_tool_use),
            "stop_sequence": None,
        }
        usage = final_usage(self._usage, self.input_tokens, self._generated)
        out.append({"type": "message_delta", "delta": delta, "usage": usage})
        out.append({"type": "message_stop"})
        return out

    def _content(self, kind: str, text: str, out: list[Event]) -> None:
        self._generated += len(text)
        if self._writer.open_kind == "tool_use":
            # A tool block is streaming; text waits so no block is ever reopened.
            self._held.append((kind, text))
            return
        self._writer.text(kind, text, out)

    def _open_ready_tool(self, out: list[Event]) -> None:
        ready = self._tools.ready
        if self._writer.open_kind != "tool_use" and ready:
            self._writer.tool(ready.popleft(), out)


def _merged(old: Usage | None, new: Usage) -> Usage:
    """Counts reported in pieces (input first, output at the end) add up; newest wins."""
    if old is None:
        return new
    changes = {f: v for f in Usage.__struct_fields__ if (v := getattr(new, f)) is not None}
    return msgspec.structs.replace(old, **changes)


def _check_arguments(call: Call) -> None:
    """A call the client would run must carry a JSON object, streamed or not."""
    text = call.arguments
    if not text.strip():
        return
    try:
        value = _decode_json(text)
    except (msgspec.DecodeError, RecursionError):
        value = None
    if not isinstance(value, dict):
        raise UpstreamStreamError(
            f"the upstream's call to tool {call.name!r} has arguments that are not a JSON "
            f"object: {text[:2000]!r}"
        )
