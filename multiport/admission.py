"""What a request may ask of a provider: its size, its model name, a place in flight, and
time on the event loop.

Each check is one limit of `LimitsSpec`; a request past one is refused at once, before
any upstream call, with the error a client can act on.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import AsyncIterator, Callable
from typing import ParamSpec, TypeVar

from .anthropic_wire import MessagesRequest, ToolResultBlock
from .errors import InvalidRequest, Overloaded
from .limits_spec import LimitsSpec

__all__ = ["OFFLOAD_BYTES", "Gate", "Ticket", "check_model", "check_request", "offload"]

P = ParamSpec("P")
T = TypeVar("T")


def check_model(model: str, limits: LimitsSpec, where: str) -> None:
    """A model name longer than `limits.model_chars` is refused (regexes read it)."""
    if len(model) > limits.model_chars:
        raise InvalidRequest(
            f"model name of {len(model)} characters is over {limits.model_chars} "
            f"(`limits.model_chars` of {where}); ask for a model by its real name"
        )


def check_request(request: MessagesRequest, limits: LimitsSpec, where: str) -> None:
    """Refuse a request with more blocks or tools than the limits allow."""
    tools = len(request.tools or ())
    if tools > limits.tools:
        raise InvalidRequest(
            f"the request has {tools} tools, over {limits.tools} (`limits.tools` of {where}); "
            "send fewer tools"
        )
    blocks = _blocks(request)
    if blocks > limits.blocks:
        raise InvalidRequest(
            f"the request has {blocks} content blocks, over {limits.blocks} (`limits.blocks` "
            f"of {where}); merge or drop blocks, e.g. compact the conversation"
        )


def _blocks(request: MessagesRequest) -> int:
    system = request.system
    count = 0 if system is None or isinstance(system, str) else len(system)
    for message in request.messages:
        content = message.content
        if isinstance(content, str):
            count += 1
            continue
        count += len(content)
        for block in content:
            if isinstance(block, ToolResultBlock) and isinstance(block.content, list):
                count += len(block.content)
    return count


class Ticket:
    """One place in flight; `release` is safe to call more than once."""

    __slots__ = ("_gate", "handed_over")

    def __init__(self, gate: Gate) -> None:
        self._gate: Gate | None = gate
        self.handed_over = False

    def hand_over(
        self, stream: AsyncIterator[bytes], stack: contextlib.AsyncExitStack
    ) -> AsyncIterator[bytes]:
        """`stream` holds the place until it ends (`stack` closes) or is dropped unread."""
        self.handed_over = True
        stack.callback(self.release)
        weakref.finalize(stream, self.release)
        return stream

    def release(self) -> None:
        gate, self._gate = self._gate, None
        if gate is not None:
            gate.in_flight -= 1


class Gate:
    """At most `limit` upstream calls in flight for one provider; one more is a 529."""

    def __init__(self, name: str, limit: int) -> None:
        self.name = name
        self.limit = limit
        self.in_flight = 0

    def enter(self) -> Ticket:
        if self.in_flight >= self.limit:
            raise Overloaded(
                f"provider {self.name} has {self.limit} requests in flight, its "
                "`limits.concurrent_requests`; retry shortly"
            )
        self.in_flight += 1
        return Ticket(self)


# A body this large is decoded and rendered on a worker thread, so the loop (every port)
# keeps answering meanwhile; smaller ones cost less than the hand-off. Two such bodies are
# worked on at once, the others wait their turn: what decoding holds in memory is bounded.
OFFLOAD_BYTES = 256 << 10
_BIG_WORK = threading.BoundedSemaphore(2)


async def offload(size: int, work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`work(*args)`, on a worker thread when `size` bytes make it long."""
    if size < OFFLOAD_BYTES:
        return work(*args, **kwargs)

    def one_of_two() -> T:
        with _BIG_WORK:
            return work(*args, **kwargs)

    return await asyncio.to_thread(one_of_two)
