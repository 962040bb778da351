"""Streamed tool-call pieces → whole calls, keyed the way the provider's options say."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import msgspec

from .contracts import ToolCallDelta
from .errors import UpstreamStreamError
from .spec import ToolStreamSpec
from .toolids import ToolNames

__all__ = ["Call", "ToolCallAssembler"]

_encode = msgspec.json.Encoder().encode


@dataclass(eq=False)
class Call:
    """One tool call being assembled."""

    raw_id: str = ""  # the id as the upstream sent it
    name: str = ""  # the client's name for the tool, once known

    def __post_init__(self) -> None:
        self.parts: list[str] = []  # everything received, joined only when needed
        self.unsent: list[str] = []  # received, not yet written to the client

    @property
    def arguments(self) -> str:
        if len(self.parts) > 1:
            self.parts = ["".join(self.parts)]
        return self.parts[0] if self.parts else ""


class ToolCallAssembler:
    """Assembles pieces into calls; `ready` holds named calls, in the order they were named."""

    def __init__(self, spec: ToolStreamSpec, names: ToolNames) -> None:
        self._snapshots = spec.arguments == "snapshots"
        self._new_call_on_new_id = spec.reused_index == "new-call-on-new-id"
        self._hold_unnamed = spec.arguments_before_name == "hold"
        self._names = names
        self._by_index: dict[int, Call] = {}
        self.calls: list[Call] = []
        self.ready: deque[Call] = deque()  # named, not yet opened as a block

    def feed(self, piece: ToolCallDelta, position: int) -> tuple[Call, int]:
        """Add one piece; `position` is its place in its event (the index when none is given).

        Returns the call and how many characters of arguments the piece added.
        """
        call = self._call_for(piece, position)
        if piece.id and not call.raw_id:
            call.raw_id = piece.id
        if piece.name and not call.name:
            call.name = self._names.client(piece.name)
            self.ready.append(call)
        fragment = piece.arguments
        if isinstance(fragment, dict):
            fragment = _encode(fragment).decode()  # arguments sent as an object
        if fragment:
            if not call.name and not self._hold_unnamed:
                raise UpstreamStreamError(
                    "the upstream streamed tool arguments before the tool's name; set "
                    "`options.tool_stream.arguments_before_name: hold` to accept that"
                )
            if self._snapshots:
                fragment = _new_suffix(call.arguments, fragment)
            call.parts.append(fragment)
            call.unsent.append(fragment)
        return call, len(fragment or "")

    def _call_for(self, piece: ToolCallDelta, position: int) -> Call:
        if piece.complete:
            return self._new()
        index = piece.index if piece.index is not None else position
        call = self._by_index.get(index)
        if call is None or (
            self._new_call_on_new_id
            and call.name
            and piece.name
            and piece.id
            and piece.id != call.raw_id
        ):
            call = self._by_index[index] = self._new()
        return call

    def _new(self) -> Call:
        call = Call()
        self.calls.append(call)
        return call


def _new_suffix(so_far: str, snapshot: str) -> str:
    """The part of a cumulative snapshot not sent yet."""
    if snapshot.startswith(so_far):
        return snapshot[len(so_far) :]
    return snapshot  # not a continuation of what came: take it as new text
