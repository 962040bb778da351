"""The Anthropic block writer: content blocks as events, one open at a time, in order."""

from __future__ import annotations

from typing import Any

from .toolcalls import Call
from .toolids import ToolIds

__all__ = ["BlockWriter", "Event"]

Event = dict[str, Any]


class BlockWriter:
    """Writes `content_block_*` events; never reopens or writes into a stopped block."""

    def __init__(self) -> None:
        self.open_kind: str | None = None  # "text", "thinking" or "tool_use"
        self.open_call: Call | None = None
        self._index = -1
        self._ids = ToolIds()

    def text(self, kind: str, text: str, out: list[Event]) -> None:
        """Append `text` to the open block of `kind` ("text" or "thinking"), opening one."""
        if self.open_kind != kind:
            self.close(out)
            block = (
                {"type": "text", "text": ""}
                if kind == "text"
                else {"type": "thinking", "thinking": "", "signature": ""}
            )
            self._start(kind, block, out)
        delta = (
            {"type": "text_delta", "text": text}
            if kind == "text"
            else {"type": "thinking_delta", "thinking": text}
        )
        out.append({"type": "content_block_delta", "index": self._index, "delta": delta})

    def tool(self, call: Call, out: list[Event]) -> None:
        """Open a `tool_use` block for `call` and write what it has received so far."""
        self.close(out)
        block = {
            "type": "tool_use",
            "id": self._ids.claim(call.raw_id),
            "name": call.name,
            "input": {},
        }
        self._start("tool_use", block, out)
        self.open_call = call
        self.arguments(out)

    def arguments(self, out: list[Event]) -> None:
        """Write the open call's unsent arguments."""
        call = self.open_call
        if call is None or not call.unsent:
            return
        delta = {"type": "input_json_delta", "partial_json": "".join(call.unsent)}
        out.append({"type": "content_block_delta", "index": self._index, "delta": delta})
        call.unsent.clear()

    def close(self, out: list[Event]) -> None:
        """Stop the open block, if any."""
        if self.open_kind is None:
            return
        if self.open_kind == "thinking":
            delta = {"type": "signature_delta", "signature": ""}
            out.append({"type": "content_block_delta", "index": self._index, "delta": delta})
        out.append({"type": "content_block_stop", "index": self._index})
        self.open_kind = None
        self.open_call = None

    def _start(self, kind: str, block: Event, out: list[Event]) -> None:
        self._index += 1
        self.open_kind = kind
        out.append({"type": "content_block_start", "index": self._index, "content_block": block})
