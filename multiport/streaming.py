"""Upstream stream parsing (SSE, NDJSON) and the Anthropic event state machine.

No web framework here: bytes in, bytes out. The state machine receives neutral events
(what a dialect's stream template renders from one upstream chunk) and writes the
Anthropic SSE sequence, keeping the invariants of PROTOCOL.md §4: one block open at a
time, indexes in order, nothing after `message_stop`, and an `error` event instead of a
fake `end_turn` when the upstream stops early.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec

from .errors import UpstreamStreamError
from .normalize import ToolNames, safe_tool_id

__all__ = ["LineFramer", "StreamState", "error_frame", "new_message_id", "sse_frame"]

_encode = msgspec.json.Encoder().encode


def new_message_id() -> str:
    return "msg_" + secrets.token_hex(12)


def sse_frame(event: str, data: dict[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + _encode(data) + b"\n\n"


def error_frame(error_type: str, message: str) -> bytes:
    return sse_frame("error", {"type": "error", "error": {"type": error_type, "message": message}})


class LineFramer:
    """Incremental framing of an upstream byte stream into data payloads.

    `sse`: `data:` lines (with or without the space), CR, LF or CRLF line ends, `:`
    comments ignored, multi-line data joined, events dispatched on a blank line.
    `ndjson`: one JSON document per line. Bytes are split into lines before decoding, so
    a UTF-8 character split across reads is whole by then.
    """

    def __init__(self, framing: str) -> None:
        self._sse = framing == "sse"
        self._buffer = b""
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        """Payloads completed by this chunk of bytes."""
        buffer = self._buffer + chunk
        start = 0
        size = len(buffer)
        while True:
            lf = buffer.find(b"\n", start)
            cr = buffer.find(b"\r", start)
            if cr != -1 and (lf == -1 or cr < lf):
                if cr + 1 == size:
                    break  # a CR at the end may be the first half of CRLF
                end, nxt = cr, cr + (2 if buffer[cr + 1 : cr + 2] == b"\n" else 1)
            elif lf != -1:
                end, nxt = lf, lf + 1
            else:
                break
            payload = self._line(buffer[start:end])
            if payload is not None:
                yield payload
            start = nxt
        self._buffer = buffer[start:]

    def close(self) -> Iterator[bytes]:
        """Whatever the last, unterminated line or event held."""
        rest, self._buffer = self._buffer, b""
        if rest:
            payload = self._line(rest.rstrip(b"\r"))
            if payload is not None:
                yield payload
        if self._sse and self._data:
            yield b"\n".join(self._data)
            self._data = []

    def _line(self, line: bytes) -> bytes | None:
        if not self._sse:
            return line if line.strip() else None
        if not line:
            if self._data:
                data, self._data = b"\n".join(self._data), []
                return data
            return None
        if line.startswith(b":"):
            return None
        name, _, value = line.partition(b":")
        if name == b"data":
            self._data.append(value[1:] if value.startswith(b" ") else value)
        return None


@dataclass
class _Tool:
    key: Any
    id: str
    name: str
    arguments: str = ""
    index: int | None = None  # block index once opened
    raw_id: str = ""  # the id as the upstream sent it
    pending: str = ""  # arguments not yet sent


@dataclass
class StreamState:
    """Neutral events in, Anthropic SSE frames out."""

    model: str
    tool_names: ToolNames
    input_tokens: int = 0
    keep_thinking: bool = True
    message_id: str = field(default_factory=new_message_id)
    _next_index: int = 0
    _open: str | None = None  # "text", "thinking" or "tool"
    _open_tool: _Tool | None = None
    _tools: dict[Any, _Tool] = field(default_factory=dict)
    _waiting: list[_Tool] = field(default_factory=list)
    _aliases: dict[Any, Any] = field(default_factory=dict)  # index → key of its latest call
    _ids: set[str] = field(default_factory=set)
    _held: list[tuple[str, str]] = field(default_factory=list)  # text after a tool opened
    _complete_count: int = 0
    stop_reason: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    done: bool = False

    def start(self) -> bytes:
        return sse_frame(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": self.message_id,
                    "type": "message",
                    "role": "assistant",
                    "model": self.model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {
                        "input_tokens": self.input_tokens,
                        "output_tokens": 0,
                        "cache_creation_input_tokens": 0,
                        "cache_read_input_tokens": 0,
                    },
                },
            },
        )

    def feed(self, event: dict[str, Any]) -> bytes:
        """Frames for one neutral event; raises `UpstreamStreamError` for an in-band error."""
        if self.done:
            return b""
        out: list[bytes] = []
        error = event.get("error")
        if error:
            message = error.get("message") if isinstance(error, dict) else str(error)
            raise UpstreamStreamError(f"the upstream reported an error: {message or error}")
        thinking = event.get("thinking")
        if thinking and self.keep_thinking:
            self._content("thinking", thinking, out)
        text = event.get("text")
        if text:
            self._content("text", text, out)
        for call in event.get("tool_calls") or ():
            self._tool_delta(call, out)
        if event.get("stop_reason"):
            self.stop_reason = event["stop_reason"]
        usage = event.get("usage")
        if usage:
            self.usage = {k: v for k, v in usage.items() if isinstance(v, int)}
        return b"".join(out)

    def finish(self) -> bytes:
        """Close the message; an `error` event if the upstream never said it finished."""
        if self.done:
            return b""
        self.done = True
        if self.stop_reason is None:
            return error_frame(
                "api_error", "the upstream stream ended before it finished the message"
            )
        out: list[bytes] = []
        self._close_open(out)
        for tool in self._waiting:
            self._open_tool_block(tool, out)
            self._close_open(out)
        for kind, text in self._held:
            self._content(kind, text, out, hold=False)
        self._close_open(out)
        named = any(t.name for t in self._tools.values())
        stop = self.stop_reason
        if named and stop == "end_turn":
            stop = "tool_use"
        elif not named and stop == "tool_use":
            stop = "end_turn"  # "tool_calls" without a call: nothing for the client to run
        usage = {
            "input_tokens": self.usage.get("input_tokens", self.input_tokens),
            "output_tokens": self.usage.get("output_tokens", 0),
            "cache_creation_input_tokens": self.usage.get("cache_creation_input_tokens", 0),
            "cache_read_input_tokens": self.usage.get("cache_read_input_tokens", 0),
        }
        out.append(
            sse_frame(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop, "stop_sequence": None},
                    "usage": usage,
                },
            )
        )
        out.append(sse_frame("message_stop", {"type": "message_stop"}))
        return b"".join(out)

    # blocks

    def _content(self, kind: str, text: str, out: list[bytes], *, hold: bool = True) -> None:
        if hold and self._open == "tool":
            # A tool block is streaming; text waits so no block is ever reopened.
            self._held.append((kind, text))
            return
        if self._open != kind:
            self._close_open(out)
            index = self._next_index
            self._next_index += 1
            block: dict[str, Any] = (
                {"type": "text", "text": ""}
                if kind == "text"
                else {"type": "thinking", "thinking": "", "signature": ""}
            )
            out.append(
                sse_frame(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": block},
                )
            )
            self._open = kind
        delta = (
            {"type": "text_delta", "text": text}
            if kind == "text"
            else {"type": "thinking_delta", "thinking": text}
        )
        out.append(
            sse_frame(
                "content_block_delta",
                {"type": "content_block_delta", "index": self._next_index - 1, "delta": delta},
            )
        )

    def _close_open(self, out: list[bytes]) -> None:
        if self._open is None:
            return
        if self._open == "thinking":
            out.append(
                sse_frame(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": self._next_index - 1,
                        "delta": {"type": "signature_delta", "signature": ""},
                    },
                )
            )
        out.append(
            sse_frame(
                "content_block_stop", {"type": "content_block_stop", "index": self._next_index - 1}
            )
        )
        self._open = None
        self._open_tool = None

    def _tool_delta(self, call: dict[str, Any], out: list[bytes]) -> None:
        if call.get("complete"):
            key: Any = ("complete", self._complete_count)
            self._complete_count += 1
        else:
            index = call.get("index", 0)
            key = self._aliases.get(index, index)
        tool = self._tools.get(key)
        raw_id = call.get("id")
        if tool is not None and tool.name and call.get("name") and raw_id and raw_id != tool.raw_id:
            # Some servers give every call index 0: a new id with a name is a new call.
            key = self._aliases[call.get("index", 0)] = (key, len(self._tools))
            tool = None
        if tool is None:
            tool = self._tools[key] = _Tool(key, "", "")
        if raw_id and not tool.raw_id:
            tool.raw_id = tool.id = str(raw_id)
        name = call.get("name")
        if name and not tool.name:
            # Arguments that came before the name wait in `pending` until it is known.
            tool.name = self.tool_names.client(name)
            self._waiting.append(tool)
        fragment = call.get("arguments") or ""
        if not isinstance(fragment, str):
            fragment = _encode(fragment).decode()  # arguments sent as an object
        if fragment:
            so_far = tool.arguments
            if len(so_far) > 1 and fragment.startswith(so_far):
                fragment = fragment[len(so_far) :]  # a cumulative snapshot: send the suffix
            elif fragment == so_far:
                fragment = ""
            tool.arguments += fragment
            tool.pending += fragment
        if self._open != "tool" and self._waiting:
            self._open_tool_block(self._waiting[0], out)
        if self._open_tool is tool and tool.pending:
            self._send_arguments(tool, out)

    def _open_tool_block(self, tool: _Tool, out: list[bytes]) -> None:
        self._close_open(out)
        self._waiting.remove(tool)
        tool.id = safe_tool_id(tool.id or f"toolu_{secrets.token_hex(8)}", self._ids, 0)
        tool.index = self._next_index
        self._next_index += 1
        out.append(
            sse_frame(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": tool.index,
                    "content_block": {
                        "type": "tool_use",
                        "id": tool.id,
                        "name": tool.name,
                        "input": {},
                    },
                },
            )
        )
        self._open = "tool"
        self._open_tool = tool
        if tool.pending:
            self._send_arguments(tool, out)

    def _send_arguments(self, tool: _Tool, out: list[bytes]) -> None:
        out.append(
            sse_frame(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": tool.index,
                    "delta": {"type": "input_json_delta", "partial_json": tool.pending},
                },
            )
        )
        tool.pending = ""
